// <disk> on QEMU's command line: a -drive backend and the device on its bus at
// the disk's address: a PCI slot for virtio, the IDE bus and unit, the AHCI
// port of a SATA controller, or channel/target/lun of a virtio-scsi
// controller. A cdrom is read-only and may be empty (no source: an empty tray
// the guest or change-media fills later). Image locking is always on (see
// host/leases/ for the lease that also holds across hosts).
import { ErrorType, vmError } from '../../common/errors.js';
import type { DiskDef, DomainDef } from '../../domain/domain-model.js';
import { diskBus, driveAddressOf } from '../../domain/bus-addresses.js';
import { pciPlacement } from './pci.js';
import { q } from './quote.js';

/** The qdev id of a disk's device (what QMP's eject and blockdev-change-medium name). */
export function diskDeviceId(dev: string): string {
  return `ua-${dev}`;
}

export function diskArgs(def: DomainDef, disk: DiskDef): string[] {
  const dev = disk.target.dev;
  if (disk.type !== 'file' && disk.type !== 'block')
    throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: only type='file' and type='block' disks are supported`);
  if (disk.device !== 'disk' && disk.device !== 'cdrom') throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: device '${disk.device}' is not supported`);
  const drive = [`if=none`, `id=drive-${dev}`];
  const source = disk.type === 'file' ? disk.source?.file : disk.source?.dev;
  if (source) drive.unshift(`file=${q(source)}`);
  if (source && disk.driver?.type) drive.push(`format=${disk.driver.type}`);
  if (disk.driver?.cache && disk.driver.cache !== 'default') drive.push(`cache=${disk.driver.cache}`);
  if (disk.readonly || disk.device === 'cdrom') drive.push('readonly=on');
  // QEMU's own image locking, asked for rather than left to 'auto' (which quietly goes without where locks fail):
  // a second QEMU on this host cannot open a disk for writing that one already writes.
  if (source) drive.push('file.locking=on');
  const bus = diskBus(disk);
  const args = ['-drive', drive.join(',')];
  // A <shareable/> disk may be written by several guests at once: QEMU's write lock must let them (libvirt does the same).
  const ids = `drive=drive-${dev},id=${diskDeviceId(dev)}${disk.shareable ? ',share-rw=on' : ''}`;
  const cd = disk.device === 'cdrom';
  switch (bus) {
    case 'virtio':
      if (cd) throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: a cdrom cannot sit on a virtio bus`);
      return [...args, '-device', `virtio-blk-pci,${ids}${pciPlacement(def, disk.address, `disk ${dev}`)}`];
    case 'ide': {
      const a = driveAddressOf(disk);
      return [...args, '-device', `${cd ? 'ide-cd' : 'ide-hd'},bus=ide.${a.bus},unit=${a.unit},${ids}`];
    }
    case 'sata': {
      const a = driveAddressOf(disk);
      return [...args, '-device', `${cd ? 'ide-cd' : 'ide-hd'},bus=sata${a.controller}.${a.unit},${ids}`];
    }
    case 'scsi': {
      const a = driveAddressOf(disk);
      return [...args, '-device', `${cd ? 'scsi-cd' : 'scsi-hd'},bus=scsi${a.controller}.0,channel=${a.bus},scsi-id=${a.target},lun=${a.unit},${ids}`];
    }
    default:
      throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: bus '${bus}' is not supported`);
  }
}
