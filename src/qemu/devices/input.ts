// <input> on QEMU's command line. PS/2 mouse and keyboard are the pc machine's
// own i8042 (always there, nothing to add); USB ones go on the USB controller
// at their port, virtio ones on the PCI bus.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { pciPlacement } from './pci.js';

const USB = { tablet: 'usb-tablet', mouse: 'usb-mouse', keyboard: 'usb-kbd' } as const;
const VIRTIO = { tablet: 'virtio-tablet-pci', mouse: 'virtio-mouse-pci', keyboard: 'virtio-keyboard-pci' } as const;

export function inputArgs(def: DomainDef): string[] {
  const args: string[] = [];
  (def.devices.inputs ?? []).forEach((x, i) => {
    const bus = x.bus ?? (x.type === 'tablet' ? 'usb' : 'ps2');
    if (bus === 'ps2') {
      if (x.type === 'tablet') throw vmError(ErrorType.XmlError, 'a tablet cannot be on the ps2 bus');
      return;
    }
    if (bus === 'usb') {
      const a = x.address;
      if (a !== undefined && a.type !== 'usb') throw vmError(ErrorType.XmlError, `USB input ${x.type}: address type '${a.type}' is not 'usb'`);
      const port = a?.port === undefined ? '' : `,port=${Number(a.port)}`;
      args.push('-device', `${USB[x.type]},id=input${i},bus=usb.0${port}`);
      return;
    }
    args.push('-device', `${VIRTIO[x.type]},id=input${i}${pciPlacement(def, x.address, `input ${x.type} (virtio)`)}`);
  });
  return args;
}
