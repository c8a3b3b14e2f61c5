// libvirt's disk startupPolicy, applied before QEMU starts: what happens when a
// disk's source file is missing. mandatory (the default) refuses always;
// requisite refuses a cold start and drops the disk when the guest arrives
// from a save image or a migration; optional drops it always. Dropping a cdrom
// or floppy leaves the drive empty (the medium is gone); dropping a hard disk
// removes the device, which only a cold start can do: a saved or migrated
// guest's state names the device, so there it is an error instead.
import { existsSync } from 'node:fs';
import { ErrorType, vmError } from '../common/errors.js';
import type { DiskDef, DomainDef } from '../domain/domain-model.js';

/** start: a cold boot; incoming: restore or migration Prepare (the guest's state comes with it). */
export type StartKind = 'start' | 'incoming';

export interface PolicyOutcome {
  def: DomainDef;
  /** Target names of the disks whose medium or device was dropped. */
  dropped: string[];
}

function isRemovable(d: DiskDef): boolean {
  return d.device === 'cdrom' || d.device === 'floppy';
}

/**
 * The definition QEMU should get, given which source files exist now. Throws
 * OperationFailed for a missing disk that may not be dropped; `def` is not changed.
 */
export function applyStartupPolicy(def: DomainDef, kind: StartKind, exists: (path: string) => boolean = existsSync): PolicyOutcome {
  const out = structuredClone(def);
  const dropped: string[] = [];
  const kept: DiskDef[] = [];
  for (const d of out.devices.disks) {
    const file = d.type === 'file' ? d.source?.file : undefined;
    if (file === undefined || exists(file)) {
      kept.push(d);
      continue;
    }
    const policy = d.source?.startupPolicy ?? 'mandatory';
    const dev = d.target.dev;
    const drop = policy === 'optional' || (policy === 'requisite' && kind === 'incoming');
    if (!drop) {
      throw vmError(ErrorType.OperationFailed, `disk ${dev}: source file '${file}' does not exist (startupPolicy '${policy}')`, {
        domain: def.name,
        disk: dev,
        path: file,
      });
    }
    if (isRemovable(d)) {
      delete d.source!.file;
      kept.push(d);
    } else if (kind === 'incoming') {
      throw vmError(
        ErrorType.OperationFailed,
        `disk ${dev}: source file '${file}' does not exist, and a hard disk cannot be dropped from a guest whose saved or migrated state includes it (startupPolicy '${policy}')`,
        { domain: def.name, disk: dev, path: file },
      );
    }
    dropped.push(dev);
  }
  out.devices.disks = kept;
  return { def: out, dropped };
}
