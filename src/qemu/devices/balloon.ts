// <memballoon> on QEMU's command line.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';

export function balloonArgs(def: DomainDef): string[] {
  const balloon = def.devices.memballoon?.model;
  if (!balloon || balloon === 'none') return [];
  if (!balloon.startsWith('virtio')) throw vmError(ErrorType.ConfigUnsupported, `memballoon model '${balloon}' is not supported`);
  return ['-device', 'virtio-balloon-pci,id=balloon0'];
}
