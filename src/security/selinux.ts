// SELinux: files QEMU touches get the domain's image label in their
// security.selinux attribute; the original attribute (or its absence) is
// remembered and put back afterwards. Descriptors are labelled through the
// worker's /proc/<pid>/fd/<n> link, which resolves to the open file itself.
import { createHash } from 'node:crypto';
import { existsSync, fstat } from 'node:fs';
import { promisify } from 'node:util';
import { ErrorType, vmError } from '../common/errors.js';
import { requireAbsolute } from './dac.js';
import type { SecurityConfig, SecurityContext, SecurityDriver } from './driver.js';
import { errnoMessage, labelFailed, restoreFailed } from './errors.js';
import { RememberedLabels } from './remembered.js';
import { AttrToolsXattr, type XattrBackend } from './xattr.js';

const fstatP = promisify(fstat);

export const SELINUX_ATTR = 'security.selinux';

export interface SelinuxOptions {
  /** Another attribute standing in for security.selinux (a user.* one, for a fake on kernels without SELinux). */
  attrName?: string;
  xattr?: XattrBackend;
  /** Refuse to start without an SELinux kernel; on by default for the real attribute. */
  requireKernel?: boolean;
}

/** Original value as hex; null when the file had no such attribute. */
interface SelinuxOriginal {
  hex: string | null;
}

export function selinuxKernelEnabled(): boolean {
  return existsSync('/sys/fs/selinux/enforce');
}

/** Two distinct MCS categories from the domain UUID, so each domain's files get their own label. */
export function mcsCategories(uuid: string): [number, number] {
  const h = createHash('sha256').update(uuid.toLowerCase()).digest();
  const a = h.readUInt16BE(0) % 1024;
  let b = h.readUInt16BE(2) % 1024;
  if (b === a) b = (a + 1) % 1024;
  return a < b ? [a, b] : [b, a];
}

export function defaultImageLabel(uuid: string): string {
  const [a, b] = mcsCategories(uuid);
  return `system_u:object_r:svirt_image_t:s0:c${a},c${b}`;
}

export class SelinuxDriver implements SecurityDriver {
  readonly name = 'selinux';
  readonly attrName: string;
  private readonly xattr: XattrBackend;
  private readonly remembered: RememberedLabels<SelinuxOriginal>;

  constructor(
    private readonly config: SecurityConfig,
    opts: SelinuxOptions = {},
  ) {
    this.attrName = opts.attrName ?? SELINUX_ATTR;
    if ((opts.requireKernel ?? this.attrName === SELINUX_ATTR) && !selinuxKernelEnabled()) {
      throw vmError(ErrorType.ConfigUnsupported, "security driver 'selinux' needs a kernel with SELinux enabled (no /sys/fs/selinux here)");
    }
    if (config.imageLabel !== undefined && !/^[^\s:]+:[^\s:]+:[^\s:]+:\S+$/.test(config.imageLabel)) {
      throw vmError(ErrorType.ConfigUnsupported, `SELinux image label ${JSON.stringify(config.imageLabel)} is not user:role:type:level`);
    }
    this.xattr = opts.xattr ?? new AttrToolsXattr();
    this.remembered = new RememberedLabels(this.attrName === SELINUX_ATTR ? 'selinux' : 'selinux-fake', config.rememberDir);
  }

  /** The label files of this domain get (the kernel expects a NUL-terminated context). */
  imageLabel(ctx: SecurityContext): string {
    return this.config.imageLabel ?? defaultImageLabel(ctx.uuid);
  }

  async labelPath(path: string, ctx: SecurityContext): Promise<void> {
    const p = requireAbsolute(this.name, path);
    await this.label(`path:${p}`, p, p, ctx);
  }

  async restorePath(path: string, ctx: SecurityContext): Promise<void> {
    const p = requireAbsolute(this.name, path);
    await this.restore(`path:${p}`, p, p, ctx);
  }

  async labelFd(fd: number, ctx: SecurityContext): Promise<void> {
    const key = await this.fdKey(fd).catch((err: unknown) => {
      throw labelFailed(this.name, `fd ${fd}`, err);
    });
    await this.label(key, fdPath(fd), `fd ${fd}`, ctx);
  }

  async restoreFd(fd: number, ctx: SecurityContext): Promise<void> {
    let key: string;
    try {
      key = await this.fdKey(fd);
    } catch (err) {
      throw restoreFailed([{ driver: this.name, target: `fd ${fd}`, message: errnoMessage(err) }]);
    }
    await this.restore(key, fdPath(fd), `fd ${fd}`, ctx);
  }

  /** The domain's image label on the descriptor's object, kept: QEMU uses it from now on, and nobody restores it. */
  async labelHandedFd(fd: number, ctx: SecurityContext): Promise<void> {
    try {
      await this.xattr.set(fdPath(fd), this.attrName, Buffer.from(`${this.imageLabel(ctx)}\0`));
    } catch (err) {
      throw labelFailed(this.name, `fd ${fd}`, err);
    }
  }

  private async fdKey(fd: number): Promise<string> {
    const st = await fstatP(fd);
    return `inode:${st.dev}:${st.ino}`;
  }

  private async label(key: string, path: string, target: string, ctx: SecurityContext): Promise<void> {
    const value = Buffer.from(`${this.imageLabel(ctx)}\0`);
    try {
      await this.remembered.label(
        key,
        ctx.uuid,
        async () => {
          const v = await this.xattr.get(path, this.attrName);
          return { hex: v === undefined ? null : v.toString('hex') };
        },
        () => this.xattr.set(path, this.attrName, value),
        (orig) => this.put(path, orig),
      );
    } catch (err) {
      throw labelFailed(this.name, target, err);
    }
  }

  private async restore(key: string, path: string, target: string, ctx: SecurityContext): Promise<void> {
    try {
      await this.remembered.restore(key, ctx.uuid, (orig) => this.put(path, orig));
    } catch (err) {
      throw restoreFailed([{ driver: this.name, target, message: errnoMessage(err) }]);
    }
  }

  private async put(path: string, orig: SelinuxOriginal): Promise<void> {
    if (orig.hex === null) await this.xattr.remove(path, this.attrName);
    else await this.xattr.set(path, this.attrName, Buffer.from(orig.hex, 'hex'));
  }
}

function fdPath(fd: number): string {
  return `/proc/${process.pid}/fd/${fd}`;
}
