// The lockspace: a directory on storage every host shares, holding one lease
// file per disk, named by the SHA-256 of the disk's canonical path (virtlockd's
// indirect lockspace). A lease is an flock(2) on an open file description of
// that file: exclusive for a writable disk, shared for a <shareable/> one;
// read-only disks and cdroms take none. flock rather than fcntl locks because a
// POSIX lock belongs to the process and is dropped when any of its descriptors
// of the file closes (writing the owner record would drop it), while an flock
// belongs to the open file description, wherever it is passed on to.
//
// Node has no flock: util-linux's `flock` takes it on the descriptor it is
// handed as fd 3 (no shell), and the lock outlives that helper because it lives
// on the description, which the worker then hands to QEMU (domain-leases.ts).
//
// The holder of an exclusive lease writes who it is into the lease file. The
// record means something only while the lock is held: a holder that died left
// its record behind, so a record is read only to name a holder the lock proved.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, ftruncateSync, linkSync, mkdirSync, rmSync, openSync, readFileSync, realpathSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { childStdio } from '../../qemu/inherited-fds.js';

export type LeaseMode = 'exclusive' | 'shared';

export interface DiskLease {
  /** SHA-256 (hex) of the disk's canonical path: the lease file's name. */
  key: string;
  /** The lease file. */
  path: string;
  /** The disk's canonical path, and its target on the domain (for messages). */
  disk: string;
  target: string;
  mode: LeaseMode;
}

export interface LeaseHolder {
  host: string;
  hostUuid: string;
  domain: string;
  uuid: string;
  disk: string;
  acquiredAtMs: number;
}

/** Who takes a lease: a domain on this host. */
export interface LeaseTaker {
  domain: string;
  uuid: string;
}

const CONFLICT = 75;
const ID_FILE = 'lockspace-id';
const RECORD_MAX = 4096;

/** The path the lease names: the target of every symlink, so two spellings of one file share one lease. */
export function canonicalDiskPath(source: string): string {
  try {
    return realpathSync(source);
  } catch {
    return resolve(source);
  }
}

function exitOf(child: ReturnType<typeof spawn>): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-500)));
  return new Promise((res, rej) => {
    child.once('error', rej);
    child.once('close', (code) => res({ code, stderr }));
  });
}

/** flock(2) on `fd`'s open file description; false when another holder kept it past `waitMs`. */
export async function flockFd(fd: number, mode: LeaseMode, waitMs: number): Promise<boolean> {
  const wait = waitMs > 0 ? ['-w', (waitMs / 1000).toFixed(3)] : ['-n'];
  const child = spawn('flock', ['-E', String(CONFLICT), ...wait, mode === 'shared' ? '-s' : '-x', '3'], {
    stdio: childStdio(['ignore', 'ignore', 'pipe', fd]),
  });
  const { code, stderr } = await exitOf(child).catch((err: unknown) => {
    throw vmError(ErrorType.OperationFailed, `disk leases need util-linux flock, which could not run: ${(err as Error).message}`);
  });
  if (code === 0) return true;
  if (code === CONFLICT) return false;
  throw vmError(ErrorType.OperationFailed, `flock on a lease file failed (exit ${code}): ${stderr.trim() || 'no output'}`);
}

export class Lockspace {
  private cachedId?: string;
  private realDir?: string;

  constructor(
    readonly dir: string,
    private readonly self: { host: string; hostUuid: string },
  ) {}

  /** The directory as /proc shows the lease files QEMU holds open: created on first use, symlinks resolved. */
  private base(): string {
    if (this.realDir !== undefined) return this.realDir;
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    this.realDir = realpathSync(this.dir);
    return this.realDir;
  }

  /** The lockspace's identity, made by the first host to use it: two hosts agree on leases only if they share it. */
  id(): string {
    if (this.cachedId !== undefined) return this.cachedId;
    const path = join(this.base(), ID_FILE);
    // Written aside and linked into place: another host never reads a half-written identity.
    const tmp = `${path}.${randomBytes(8).toString('hex')}`;
    writeFileSync(tmp, `${randomBytes(16).toString('hex')}\n`, { mode: 0o644 });
    try {
      linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(tmp, { force: true });
    }
    const id = readFileSync(path, 'utf8').trim();
    if (!/^[0-9a-f]{32}$/.test(id)) throw vmError(ErrorType.OperationFailed, `lockspace ${this.dir}: ${ID_FILE} is not a lockspace identity`);
    this.cachedId = id;
    return id;
  }

  /** The leases a domain's disks need: one per writable disk with a source (shared when shareable). */
  leasesOf(def: DomainDef): DiskLease[] {
    const byKey = new Map<string, DiskLease>();
    for (const d of def.devices.disks) {
      const source = d.type === 'file' ? d.source?.file : d.type === 'block' ? d.source?.dev : undefined;
      if (!source || d.readonly || d.device === 'cdrom') continue;
      const disk = canonicalDiskPath(source);
      const key = createHash('sha256').update(disk).digest('hex');
      const mode: LeaseMode = d.shareable ? 'shared' : 'exclusive';
      const seen = byKey.get(key);
      if (seen === undefined || (seen.mode === 'shared' && mode === 'exclusive'))
        byKey.set(key, { key, path: join(this.base(), key), disk, target: d.target.dev, mode });
    }
    return [...byKey.values()];
  }

  private open(lease: DiskLease): number {
    this.base();
    try {
      // Not through a symlink someone planted: the lease is this file, in this directory.
      return openSync(lease.path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    } catch (err) {
      throw vmError(ErrorType.OperationFailed, `cannot open the lease file of ${lease.disk} in ${this.dir}: ${(err as Error).message}`, { disk: lease.disk });
    }
  }

  /**
   * Takes every lease, or none: a lease another holder keeps is refused with
   * DiskLeaseHeld naming it. The caller owns the returned descriptors (hands
   * them to QEMU, then closes them); closing one releases its lease.
   */
  async acquire(leases: DiskLease[], taker: LeaseTaker, waitMs: number): Promise<Map<DiskLease, number>> {
    const held = new Map<DiskLease, number>();
    try {
      for (const lease of leases) {
        const fd = this.open(lease);
        held.set(lease, fd);
        if (!(await flockFd(fd, lease.mode, waitMs))) throw this.heldError(lease, taker);
        if (lease.mode === 'exclusive') this.writeRecord(fd, lease, taker);
      }
      return held;
    } catch (err) {
      for (const fd of held.values()) closeSync(fd);
      throw err;
    }
  }

  /** Whether the lease could be taken in its mode now (taken and let go at once). */
  async isFree(lease: DiskLease): Promise<boolean> {
    const fd = this.open(lease);
    try {
      return await flockFd(fd, lease.mode, 0);
    } finally {
      closeSync(fd);
    }
  }

  /** The last exclusive holder's record, if readable; it is current only while the lease is held. */
  holder(lease: DiskLease): LeaseHolder | undefined {
    try {
      const text = readFileSync(lease.path, 'utf8');
      if (text.length === 0 || text.length > RECORD_MAX) return undefined;
      const r = JSON.parse(text) as Partial<LeaseHolder>;
      const str = (v: unknown): v is string => typeof v === 'string' && v.length < 512;
      if (!str(r.host) || !str(r.hostUuid) || !str(r.domain) || !str(r.uuid) || !str(r.disk) || typeof r.acquiredAtMs !== 'number') return undefined;
      return r as LeaseHolder;
    } catch {
      return undefined;
    }
  }

  heldError(lease: DiskLease, taker: LeaseTaker): Error {
    const h = this.holder(lease);
    const who = h ? `domain '${h.domain}' (${h.uuid}) on host ${h.host}` : 'another domain (no holder recorded: a shared lease, or a holder outside vmferry)';
    return vmError(
      ErrorType.DiskLeaseHeld,
      `disk ${lease.disk}${lease.target ? ` (${lease.target})` : ''} of '${taker.domain}' is in use: its lease is held by ${who}`,
      { disk: lease.disk, lease: lease.key, domain: taker.domain, ...(h ? { holderHost: h.host, holderDomain: h.domain, holderUuid: h.uuid } : {}) },
    );
  }

  private writeRecord(fd: number, lease: DiskLease, taker: LeaseTaker): void {
    const record: LeaseHolder = { ...this.self, domain: taker.domain, uuid: taker.uuid, disk: lease.disk, acquiredAtMs: Date.now() };
    ftruncateSync(fd, 0);
    writeSync(fd, `${JSON.stringify(record)}\n`, 0);
  }
}
