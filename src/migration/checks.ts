// Is this domain allowed to migrate? Run at Begin on the source and again at
// Prepare on the destination (an older source may have skipped them). Each
// check throws a typed error before anything has changed.
import { readdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import type { MigrateFlag } from '../common/migration-types.js';
import { normalizeUuid } from '../domain/uuid.js';
import type { DiskDef, DomainDef } from '../domain/index.js';
import { unsharedDisks } from './storage-plan.js';

// Filesystems that coordinate caching between hosts themselves (libvirt's
// "cluster filesystems"): a host page cache on them is safe to migrate with.
const CLUSTER_FS_MAGIC: ReadonlySet<number> = new Set([
  0x01161970, // GFS2
  0x7461636f, // OCFS2
]);

const SAFE_CACHE = new Set(['none', 'directsync']);

function onClusterFs(path: string): boolean {
  try {
    return CLUSTER_FS_MAGIC.has(Number(statfsSync(path).type));
  } catch {
    return false;
  }
}

/** Why migrating with `disk` could corrupt it, or undefined when it is safe. */
export function unsafeDiskReason(disk: DiskDef): string | undefined {
  const path = disk.source?.file ?? disk.source?.dev;
  // Empty drives, read-only media and disks the definition shares between guests carry no dirty host cache.
  if (disk.type !== 'network' && path === undefined) return undefined;
  if (disk.readonly || disk.shareable) return undefined;
  const cache = disk.driver?.cache ?? 'default';
  if (SAFE_CACHE.has(cache)) return undefined;
  if (path !== undefined && onClusterFs(path)) return undefined;
  return `disk ${disk.target.dev} uses cache mode '${cache}' on storage that is not marked shared`;
}

export interface DiskSafetyOptions {
  /** The source's view (its config): a writable disk on storage it does not share must be copied. */
  sharedStoragePaths?: readonly string[];
  /** Targets of the disks this migration copies over NBD: neither rule applies to them. */
  copied?: ReadonlySet<string>;
}

/**
 * libvirt's rules for the disks a migration does not copy: a host page cache in front of a
 * disk the destination also opens loses writes, and a disk on storage the destination does
 * not see would be left behind (checked where the host's shared storage is known: Begin).
 */
export function checkDiskSafety(def: DomainDef, flags: readonly MigrateFlag[], opts: DiskSafetyOptions = {}): void {
  if (flags.includes('unsafe')) return;
  const stays = def.devices.disks.filter((d) => !opts.copied?.has(d.target.dev));
  const reasons = stays.map(unsafeDiskReason).filter((r): r is string => r !== undefined);
  if (reasons.length > 0) {
    throw vmError(
      ErrorType.MigrateUnsafe,
      `migration may lead to data corruption if disks use a cache other than none or directsync: ${reasons.join('; ')} (use 'unsafe' to override)`,
      { domain: def.name, disks: reasons },
    );
  }
  if (opts.sharedStoragePaths === undefined) return;
  const local = unsharedDisks({ ...def, devices: { ...def.devices, disks: stays } }, opts.sharedStoragePaths);
  if (local.length > 0) {
    const names = local.map((d) => `${d.target.dev} (${d.source?.file ?? d.source?.dev ?? d.type})`);
    throw vmError(
      ErrorType.MigrateUnsafe,
      `migration without shared storage is unsafe: disk ${names.join(', ')} is on storage this host does not mark shared; ` +
        `copy it with 'copy-storage-all' or 'copy-storage-inc', or list its directory in VMFERRY_SHARED_STORAGE_PATHS (use 'unsafe' to override)`,
      { domain: def.name, disks: local.map((d) => d.target.dev) },
    );
  }
}

/** Snapshot metadata lives in <stateDir>/snapshots/<name>/; it does not travel, so such a domain stays. */
export function snapshotCount(stateDir: string, name: string): number {
  try {
    return readdirSync(join(stateDir, 'snapshots', name)).length;
  } catch {
    return 0;
  }
}

export function checkNoSnapshots(stateDir: string, name: string): void {
  const n = snapshotCount(stateDir, name);
  if (n > 0)
    throw vmError(ErrorType.OperationInvalid, `cannot migrate domain '${name}' with ${n} snapshot${n === 1 ? '' : 's'}`, { domain: name, snapshots: n });
}

/** The same host answers to two names (or the cookie came from here): migrating there is refused. */
export function checkNotSameHost(localHostUuid: string, remoteHostUuid: string, remoteName: string): void {
  const a = normalizeUuid(localHostUuid);
  const b = normalizeUuid(remoteHostUuid);
  if (a === undefined || b === undefined) throw vmError(ErrorType.InternalError, `bad host UUID '${localHostUuid}' / '${remoteHostUuid}'`);
  if (a === b) {
    throw vmError(ErrorType.OperationInvalid, `attempt to migrate a domain to the same host: '${remoteName}' has this host's UUID ${a}`, { hostUuid: a });
  }
}

/** State checks on the source: only a live, settled domain migrates live. */
export function checkSourceState(name: string, state: string, reason: string, flags: readonly MigrateFlag[]): void {
  if (flags.includes('offline')) return;
  if (reason === 'incoming migration') throw vmError(ErrorType.OperationInvalid, `domain '${name}' is still being migrated in`, { domain: name });
  if (state !== 'running' && state !== 'paused') {
    throw vmError(
      ErrorType.OperationInvalid,
      `domain '${name}' is ${state}: only a running or paused domain migrates live (use 'offline' for the definition alone)`,
      { domain: name, state },
    );
  }
  // Post-copy hands the running guest over mid-stream: a paused or stopped guest has nothing to hand over.
  if (flags.includes('postcopy') && (!flags.includes('live') || state !== 'running')) {
    throw vmError(ErrorType.OperationInvalid, "'postcopy' needs 'live' and a running domain", { domain: name, state });
  }
}
