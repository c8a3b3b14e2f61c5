// <disk> on QEMU's command line: a -drive backend and the device on its bus.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DiskDef } from '../../domain/domain-model.js';
import { q } from './quote.js';

export function diskArgs(disk: DiskDef, index: number, state: { ahci: boolean }): string[] {
  const dev = disk.target.dev;
  if (disk.type !== 'file') throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: only type='file' disks are supported`);
  const drive = [`if=none`, `id=drive-${dev}`];
  if (disk.source?.file) drive.unshift(`file=${q(disk.source.file)}`);
  // An empty drive (a cdrom without a medium) takes no format: QEMU refuses one without a file.
  if (disk.driver?.type && disk.source?.file) drive.push(`format=${disk.driver.type}`);
  if (disk.driver?.cache && disk.driver.cache !== 'default') drive.push(`cache=${disk.driver.cache}`);
  if (disk.readonly || disk.device === 'cdrom') drive.push('readonly=on');
  const bus = disk.target.bus ?? (dev.startsWith('vd') ? 'virtio' : 'ide');
  const args = ['-drive', drive.join(',')];
  const id = `ua-${dev}`;
  switch (bus) {
    case 'virtio':
      if (disk.device === 'cdrom') throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: a cdrom cannot sit on a virtio bus`);
      return [...args, '-device', `virtio-blk-pci,drive=drive-${dev},id=${id}`];
    case 'ide':
      return [...args, '-device', `${disk.device === 'cdrom' ? 'ide-cd' : 'ide-hd'},drive=drive-${dev},id=${id}`];
    case 'sata': {
      const pre = state.ahci ? [] : ['-device', 'ahci,id=sata0'];
      state.ahci = true;
      return [...pre, ...args, '-device', `${disk.device === 'cdrom' ? 'ide-cd' : 'ide-hd'},drive=drive-${dev},id=${id},bus=sata0.${index}`];
    }
    default:
      throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: bus '${bus}' is not supported`);
  }
}
