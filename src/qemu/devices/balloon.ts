// <memballoon> on QEMU's command line.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { pciPlacement } from './pci.js';

export function balloonArgs(def: DomainDef): string[] {
  const balloon = def.devices.memballoon;
  if (!balloon || balloon.model === 'none') return [];
  if (!balloon.model.startsWith('virtio')) throw vmError(ErrorType.ConfigUnsupported, `memballoon model '${balloon.model}' is not supported`);
  return ['-device', `virtio-balloon-pci,id=balloon0${pciPlacement(def, balloon.address, 'memballoon')}`];
}
