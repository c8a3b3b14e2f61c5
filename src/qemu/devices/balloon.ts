// <memballoon> on QEMU's command line.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { pciPlacement } from './pci.js';

/** libvirt's virtio models and the QEMU device each one is. */
const DEVICES: Record<string, string> = {
  virtio: 'virtio-balloon-pci',
  'virtio-transitional': 'virtio-balloon-pci-transitional',
  'virtio-non-transitional': 'virtio-balloon-pci-non-transitional',
};

export function balloonArgs(def: DomainDef): string[] {
  const balloon = def.devices.memballoon;
  if (!balloon || balloon.model === 'none') return [];
  const device = DEVICES[balloon.model];
  if (device === undefined) throw vmError(ErrorType.ConfigUnsupported, `memballoon model '${balloon.model}' is not supported`);
  return ['-device', `${device},id=balloon0${pciPlacement(def, balloon.address, 'memballoon')}`];
}
