// Which disks a migration copies (libvirt's --copy-storage-all / -inc and
// --migrate-disks) and which storage counts as shared. A disk is shared when it
// sits below a directory the host config lists, or on a file system that is
// shared by nature (NFS, CIFS, cluster file systems); everything else is local
// to this host. Without --migrate-disks the copy takes every writable disk with
// a source on local storage, as libvirt does; read-only disks, shareable disks
// and empty drives never move.
import { statfsSync } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import type { MigrateFlag } from '../common/migration-types.js';
import type { DiskDef, DomainDef } from '../domain/index.js';

// statfs f_type of file systems every host mounts the same way (libvirt's virFileIsSharedFS list).
const SHARED_FS_MAGIC: ReadonlySet<number> = new Set([
  0x6969, // NFS
  0xff534d42, // CIFS
  0xfe534d42, // SMB2
  0x517b, // SMB
  0x01161970, // GFS2
  0x7461636f, // OCFS2
  0x00c36400, // CephFS
  0x0bd00bd0, // Lustre
  0x47504653, // GPFS
  0x5346414f, // AFS
]);

/** Image formats the destination can create with qemu-img (and the mirror writes as is). */
const COPYABLE_FORMATS = new Set(['raw', 'qcow2']);

export type StorageSync = 'full' | 'top';

export interface StoragePlan {
  /** full: whole disks (copy-storage-all); top: the top image only, the backing chain is already there (copy-storage-inc). */
  sync: StorageSync;
  disks: DiskDef[];
}

/** The path a disk's data lives at (file or block device), if any. */
export function diskPath(disk: DiskDef): string | undefined {
  return disk.source?.file ?? disk.source?.dev;
}

function sharedFsType(path: string): boolean {
  // A path that does not exist yet is judged by the directory it would be in.
  for (let p = path; ; p = dirname(p)) {
    try {
      return SHARED_FS_MAGIC.has(Number(statfsSync(p).type));
    } catch {
      if (dirname(p) === p) return false;
    }
  }
}

/** Is `path` on storage every host sees: below a configured directory, or on a shared file system? */
export function isSharedStorage(path: string, sharedPaths: readonly string[]): boolean {
  const abs = resolve(path);
  if (sharedPaths.some((d) => abs === d || abs.startsWith(d.endsWith(sep) ? d : d + sep))) return true;
  return sharedFsType(abs);
}

/** A disk whose data must exist on both hosts: writable, with a source, not shared between guests. */
function carriesData(disk: DiskDef): boolean {
  return diskPath(disk) !== undefined && !disk.readonly && !disk.shareable && disk.device !== 'cdrom';
}

/** Local (unshared) writable disks: what a migration without a copy flag would leave behind. */
export function unsharedDisks(def: DomainDef, sharedPaths: readonly string[]): DiskDef[] {
  // Network disks live on their server, which every host reaches: shared by nature.
  return def.devices.disks.filter((d) => d.type !== 'network' && carriesData(d) && !isSharedStorage(diskPath(d)!, sharedPaths));
}

/**
 * The disks this migration copies, or undefined without a copy flag. Refuses (before anything
 * changes) a --migrate-disks name the domain does not have, and a disk that cannot be copied.
 */
export function planStorageCopy(
  def: DomainDef,
  flags: readonly MigrateFlag[],
  migrateDisks: readonly string[] | undefined,
  sharedPaths: readonly string[],
): StoragePlan | undefined {
  const sync: StorageSync | undefined = flags.includes('copy-storage-all') ? 'full' : flags.includes('copy-storage-inc') ? 'top' : undefined;
  if (sync === undefined) return undefined;
  let disks: DiskDef[];
  if (migrateDisks !== undefined) {
    disks = migrateDisks.map((target) => {
      const disk = def.devices.disks.find((d) => d.target.dev === target);
      if (!disk) throw vmError(ErrorType.OperationInvalid, `migrate-disks: domain '${def.name}' has no disk with target '${target}'`, { disk: target });
      if (!carriesData(disk)) {
        throw vmError(ErrorType.OperationInvalid, `migrate-disks: disk '${target}' is empty, read-only or shareable and cannot be copied`, { disk: target });
      }
      return disk;
    });
  } else {
    disks = unsharedDisks(def, sharedPaths);
  }
  for (const disk of disks) {
    const target = disk.target.dev;
    if (disk.type !== 'file') {
      throw vmError(ErrorType.ConfigUnsupported, `disk '${target}': copying a ${disk.type} disk is not built (only file disks are copied)`, { disk: target });
    }
    const format = disk.driver?.type ?? 'raw';
    if (!COPYABLE_FORMATS.has(format)) {
      throw vmError(ErrorType.ConfigUnsupported, `disk '${target}': copying a '${format}' image is not built (raw and qcow2 are)`, { disk: target });
    }
    if (sync === 'top' && format !== 'qcow2') {
      throw vmError(ErrorType.ConfigUnsupported, `disk '${target}': copy-storage-inc copies a qcow2 top image over its backing file; '${format}' has none`, {
        disk: target,
      });
    }
  }
  return { sync, disks };
}
