// The USB controller on QEMU's command line: libvirt's default for the pc
// (i440fx) machine, piix3-uhci, index 0, at the XML's address (libvirt puts it
// at slot 1 function 2, next to the PIIX3 ISA bridge and IDE), or a qemu-xhci.
// The device must sit at the address the guest saw: a saved or migrated stream
// names it by its PCI path, and QEMU refuses a stream with a section it has no
// device for. Every other model is refused before QEMU runs.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef, UsbControllerDef } from '../../domain/domain-model.js';
import { isI440fx, pciAddressAttrs } from '../../domain/pci-address.js';
import { pciPlacement } from './pci.js';

const QEMU_DEVICES: Partial<Record<string, string>> = { 'piix3-uhci': 'piix3-usb-uhci', 'qemu-xhci': 'qemu-xhci' };

function unsupported(message: string): Error {
  return vmError(ErrorType.ConfigUnsupported, message);
}

function describe(u: UsbControllerDef): string {
  return `model '${u.model ?? 'default'}' index ${u.index ?? 0}`;
}

const DEFAULT_CONTROLLER: UsbControllerDef = { index: 0, model: 'piix3-uhci' };

/**
 * The -device arguments for the domain's USB controllers. In libvirt's XML a
 * pc (i440fx) domain without any <controller type='usb'> has the default
 * piix3-uhci: libvirt adds it when it parses the XML, and leaves it out of the
 * XML it writes into save images and migration streams (dumpxml --migratable),
 * so an image of a typical libvirt guest names no controller while its stream
 * carries the controller's state. vmferry reads the XML the same way, so
 * images cross in both directions. model='none' is how a domain says it has
 * no USB. Other machine types keep no controller when none is named (their
 * libvirt default is one vmferry cannot build).
 */
export function usbControllerArgs(def: DomainDef): string[] {
  const machine = def.os.machine ?? 'pc';
  const named = def.devices.usbControllers ?? [];
  const controllers = named.length === 0 && isI440fx(machine) ? [DEFAULT_CONTROLLER] : named;
  const built = controllers.filter((u) => u.model !== 'none');
  if (built.length === 0) return [];
  const [u] = built;
  if (u === undefined || built.length > 1) {
    throw unsupported(
      `only one USB controller is supported (piix3-uhci or qemu-xhci, index 0), the domain has ${built.length}: ${built.map(describe).join(', ')}`,
    );
  }
  const model = u.model ?? 'piix3-uhci';
  const device = QEMU_DEVICES[model];
  if (device === undefined) throw unsupported(`USB controller model '${model}' is not supported (only piix3-uhci, qemu-xhci, or model='none' for no USB)`);
  if (!isI440fx(machine)) {
    throw unsupported(`a USB controller (${describe(u)}) is only supported on the pc (i440fx) machine, not '${machine}'`);
  }
  if ((u.index ?? 0) !== 0) throw unsupported(`USB controller index ${u.index} is not supported (only index 0)`);
  // The PIIX3's own UHCI is function 2 of slot 1 when the XML does not say.
  const address = u.address ?? (model === 'piix3-uhci' ? pciAddressAttrs({ slot: 1, function: 2 }) : undefined);
  return ['-device', `${device},id=usb${pciPlacement(def, address, `USB controller ${describe(u)}`)}`];
}
