// DAC: QEMU runs as an unprivileged user, so what it must open is handed to that
// user and group (and made owner-readable and -writable); the original owner and
// mode are remembered and put back when the domain is done with it.
import { chmod, chown, stat } from 'node:fs/promises';
import { fchmod, fchown, fstat, type Stats } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ErrorType, vmError } from '../common/errors.js';
import type { ProcessIdentity, SecurityConfig, SecurityContext, SecurityDriver } from './driver.js';
import { errnoMessage, labelFailed, restoreFailed } from './errors.js';
import { resolveGroup, resolveUser, type IdFiles } from './ids.js';
import { RememberedLabels } from './remembered.js';

const fchownP = promisify(fchown);
const fchmodP = promisify(fchmod);
const fstatP = promisify(fstat);

export interface DacOriginal {
  uid: number;
  gid: number;
  mode: number;
}

interface Ops {
  stat(): Promise<Stats>;
  chown(uid: number, gid: number): Promise<void>;
  chmod(mode: number): Promise<void>;
}

export function requireAbsolute(driver: string, path: string): string {
  if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0')) {
    throw vmError(ErrorType.OperationInvalid, `security driver '${driver}' labels absolute paths only, got ${JSON.stringify(path)}`, { driver, path });
  }
  return resolve(path);
}

/** Key for a descriptor: the file it refers to, so a later descriptor on the same file finds it. */
export async function inodeKey(fd: number): Promise<string> {
  const st = await fstatP(fd);
  return `inode:${st.dev}:${st.ino}`;
}

/** FNV-1a of the UUID's hex digits: spreads UUIDs over a uid range the same way on every host and restart. */
function uuidHash(uuid: string): number {
  let h = 0x811c9dc5;
  for (const c of uuid.toLowerCase().replace(/[^0-9a-f]/g, '')) {
    h ^= c.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class DacDriver implements SecurityDriver {
  readonly name = 'dac';
  /** The one uid every QEMU runs as, unless a range gives each domain its own. */
  readonly uid: number;
  readonly gid: number;
  readonly uidRange?: { min: number; max: number };
  private readonly remembered: RememberedLabels<DacOriginal>;

  constructor(config: SecurityConfig, files: IdFiles = {}) {
    const range = config.uidRange;
    if (range !== undefined) {
      if (!Number.isInteger(range.min) || !Number.isInteger(range.max) || range.min < 1 || range.max < range.min || range.max > 0xfffffffe)
        throw vmError(ErrorType.ConfigUnsupported, `security driver 'dac': uid range ${range.min}-${range.max} is not a range of non-root uids`);
      if (config.group === undefined) throw vmError(ErrorType.ConfigUnsupported, "security driver 'dac' with a uid range needs the group (VMFERRY_QEMU_GROUP)");
      this.uidRange = { min: range.min, max: range.max };
      this.uid = range.min;
      this.gid = resolveGroup(config.group, files);
    } else {
      if (config.user === undefined) throw vmError(ErrorType.ConfigUnsupported, "security driver 'dac' needs the user QEMU runs as (VMFERRY_QEMU_USER)");
      const user = resolveUser(config.user, files);
      this.uid = user.uid;
      if (config.group !== undefined) this.gid = resolveGroup(config.group, files);
      else if (user.primaryGid !== undefined) this.gid = user.primaryGid;
      else
        throw vmError(
          ErrorType.ConfigUnsupported,
          `security driver 'dac': user ${String(config.user)} has no primary group; set the group (VMFERRY_QEMU_GROUP)`,
        );
    }
    this.remembered = new RememberedLabels('dac', config.rememberDir);
  }

  /** The domain's own uid from the range, or the one configured user. */
  uidFor(ctx: SecurityContext): number {
    const r = this.uidRange;
    return r ? r.min + (uuidHash(ctx.uuid) % (r.max - r.min + 1)) : this.uid;
  }

  processIdentity(ctx: SecurityContext): ProcessIdentity {
    return { uid: this.uidFor(ctx), gid: this.gid };
  }

  async labelPath(path: string, ctx: SecurityContext): Promise<void> {
    const p = requireAbsolute(this.name, path);
    await this.label(`path:${p}`, p, ctx, {
      stat: () => stat(p),
      chown: (u, g) => chown(p, u, g),
      chmod: (m) => chmod(p, m),
    });
  }

  async restorePath(path: string, ctx: SecurityContext): Promise<void> {
    const p = requireAbsolute(this.name, path);
    await this.restore(`path:${p}`, p, ctx, { stat: () => stat(p), chown: (u, g) => chown(p, u, g), chmod: (m) => chmod(p, m) });
  }

  async labelFd(fd: number, ctx: SecurityContext): Promise<void> {
    const key = await inodeKey(fd).catch((err: unknown) => {
      throw labelFailed(this.name, `fd ${fd}`, err);
    });
    await this.label(key, `fd ${fd}`, ctx, this.fdOps(fd));
  }

  async restoreFd(fd: number, ctx: SecurityContext): Promise<void> {
    let key: string;
    try {
      key = await inodeKey(fd);
    } catch (err) {
      throw restoreFailed([{ driver: this.name, target: `fd ${fd}`, message: errnoMessage(err) }]);
    }
    await this.restore(key, `fd ${fd}`, ctx, this.fdOps(fd));
  }

  /**
   * Nothing: DAC is checked when a file is opened, and a descriptor QEMU is
   * handed is already open (libvirt's DAC driver skips these too).
   */
  async labelHandedFd(): Promise<void> {}

  /** What this driver still remembers for a path (tests, diagnostics). */
  rememberedFor(path: string): DacOriginal | undefined {
    return this.remembered.get(`path:${resolve(path)}`)?.original;
  }

  private fdOps(fd: number): Ops {
    return { stat: () => fstatP(fd), chown: (u, g) => fchownP(fd, u, g), chmod: (m) => fchmodP(fd, m) };
  }

  private async label(key: string, target: string, ctx: SecurityContext, ops: Ops): Promise<void> {
    const uid = this.uidFor(ctx);
    const other = this.remembered.get(key)?.holders.find((h) => h !== ctx.uuid && this.uidFor({ domain: '', uuid: h }) !== uid);
    // One owner at a time: relabelling for this domain would lock the other domain's QEMU out.
    if (other !== undefined)
      throw vmError(ErrorType.OperationInvalid, `${target} is in use by the QEMU of domain ${other}, which runs as another uid; it cannot be shared`, {
        driver: this.name,
        target,
        holder: other,
      });
    try {
      await this.remembered.label(
        key,
        ctx.uuid,
        async () => {
          const st = await ops.stat();
          return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
        },
        async () => {
          const st = await ops.stat();
          await ops.chown(this.uidFor(ctx), this.gid);
          // QEMU opens as the owner: it needs the owner's bits (and search on a directory).
          await ops.chmod((st.mode & 0o7777) | (st.isDirectory() ? 0o700 : 0o600));
        },
        (orig) => this.put(ops, orig),
      );
    } catch (err) {
      throw labelFailed(this.name, target, err);
    }
  }

  private async restore(key: string, target: string, ctx: SecurityContext, ops: Ops): Promise<void> {
    try {
      await this.remembered.restore(key, ctx.uuid, (orig) => this.put(ops, orig));
    } catch (err) {
      throw restoreFailed([{ driver: this.name, target, message: errnoMessage(err) }]);
    }
  }

  /** Owner and mode both get their try; the first failure is reported. */
  private async put(ops: Ops, orig: DacOriginal): Promise<void> {
    let first: unknown;
    await ops.chown(orig.uid, orig.gid).catch((err: unknown) => {
      first ??= err;
    });
    await ops.chmod(orig.mode).catch((err: unknown) => {
      first ??= err;
    });
    if (first !== undefined) throw first;
  }
}
