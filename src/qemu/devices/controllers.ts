// <controller> other than USB on QEMU's command line: virtio-serial,
// virtio-scsi and SATA (AHCI) are PCI devices; the root PCI bus and the first
// IDE controller are the pc machine's own (PIIX3) and add nothing. Every other
// type and model is refused before QEMU runs.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import type { ControllerDef } from '../../domain/devices-more-model.js';
import { pciPlacement } from './pci.js';

function unsupported(c: ControllerDef, why: string): Error {
  return vmError(ErrorType.ConfigUnsupported, `controller type '${c.type}' index ${c.index ?? 0}${c.model ? ` model '${c.model}'` : ''}: ${why}`);
}

function controllerDevice(c: ControllerDef): string | undefined {
  const index = c.index ?? 0;
  switch (c.type) {
    case 'pci':
      if (c.model !== 'pci-root' || index !== 0) throw unsupported(c, 'only the root bus (pci-root, index 0) of the pc machine is supported');
      return undefined;
    case 'ide':
      if (index !== 0) throw unsupported(c, "only the PIIX3's IDE controller (index 0) is supported");
      return undefined;
    case 'virtio-serial':
      if (c.model !== undefined && c.model !== 'virtio') throw unsupported(c, "only model 'virtio' is supported");
      return `virtio-serial-pci,id=virtio-serial${index}${c.ports === undefined ? '' : `,max_ports=${c.ports}`}`;
    case 'scsi':
      if (c.model !== 'virtio-scsi') throw unsupported(c, "only model 'virtio-scsi' is supported (libvirt's default, lsilogic, is not)");
      return `virtio-scsi-pci,id=scsi${index}`;
    case 'sata':
      return `ich9-ahci,id=sata${index}`;
    default:
      throw unsupported(c, 'not supported');
  }
}

export function controllerArgs(def: DomainDef): string[] {
  const args: string[] = [];
  for (const c of def.devices.controllers ?? []) {
    const device = controllerDevice(c);
    if (device !== undefined) args.push('-device', `${device}${pciPlacement(def, c.address, `controller type='${c.type}'`)}`);
    else if (c.type === 'ide' && c.address !== undefined) pciPlacement(def, c.address, "controller type='ide'");
  }
  return args;
}
