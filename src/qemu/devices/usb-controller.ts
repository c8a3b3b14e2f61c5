// The USB controller on QEMU's command line. Only libvirt's default for the pc
// (i440fx) machine is built: piix3-uhci, index 0, on the root PCI bus at the
// XML's address (libvirt puts it at slot 1 function 2, next to the PIIX3 ISA
// bridge and IDE). The device must sit at the address the guest saw: a saved
// or migrated stream names it by its PCI path, and QEMU refuses a stream with a
// section it has no device for. Every other model is refused before QEMU runs.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DeviceAddress, DomainDef, UsbControllerDef } from '../../domain/domain-model.js';

const DEFAULT_SLOT = 1;
const DEFAULT_FUNCTION = 2;

function unsupported(message: string): Error {
  return vmError(ErrorType.ConfigUnsupported, message);
}

function isI440fx(machine: string): boolean {
  return machine === 'pc' || machine.startsWith('pc-i440fx-') || /^pc-[0-9]/.test(machine);
}

/** libvirt writes PCI address parts in hex (0x01); decimal is accepted as well. */
function addressNumber(address: DeviceAddress, name: string, max: number): number {
  const text = address[name];
  if (text === undefined) return 0;
  const n = /^(0x[0-9a-f]+|[0-9]+)$/i.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n > max) throw unsupported(`USB controller address ${name} '${text}' is not a PCI ${name} number (0..${max})`);
  return n;
}

function pciAddr(address: DeviceAddress | undefined): string {
  if (address === undefined) return `0x${DEFAULT_SLOT.toString(16)}.0x${DEFAULT_FUNCTION.toString(16)}`;
  if (address.type !== 'pci') throw unsupported(`USB controller address type '${address.type}' is not supported (only 'pci')`);
  if (addressNumber(address, 'domain', 0xffff) !== 0 || addressNumber(address, 'bus', 0xff) !== 0) {
    throw unsupported('a USB controller is only supported on the root PCI bus (domain 0, bus 0)');
  }
  const slot = addressNumber(address, 'slot', 31);
  const fn = addressNumber(address, 'function', 7);
  return `0x${slot.toString(16)}.0x${fn.toString(16)}`;
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
    throw unsupported(`only one USB controller is supported (piix3-uhci, index 0), the domain has ${built.length}: ${built.map(describe).join(', ')}`);
  }
  if (u.model !== undefined && u.model !== 'piix3-uhci') {
    throw unsupported(`USB controller model '${u.model}' is not supported (only piix3-uhci, or model='none' for no USB)`);
  }
  if (!isI440fx(machine)) {
    throw unsupported(`a USB controller (${describe(u)}) is only supported on the pc (i440fx) machine, not '${machine}'`);
  }
  if ((u.index ?? 0) !== 0) throw unsupported(`USB controller index ${u.index} is not supported (only index 0)`);
  return ['-device', `piix3-usb-uhci,id=usb,bus=pci.0,addr=${pciAddr(u.address)}`];
}
