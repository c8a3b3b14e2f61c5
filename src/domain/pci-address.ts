// One reading of `<address type='pci' domain bus slot function multifunction>`
// for the whole code base: numbers in libvirt's hex (0x05) or decimal, checked
// against what a PCI address can be (XmlError) and against what vmferry builds,
// the root bus of the pc machine only (ConfigUnsupported: libvirt could add a
// pci-bridge, vmferry cannot).
import { ErrorType } from '../common/errors.js';
import type { DeviceAddress } from './domain-model.js';
import { locatedError, xmlError } from '../xml/xml-errors.js';

export interface PciAddress {
  slot: number;
  function: number;
  multifunction?: boolean;
}

const LIMITS = { domain: 0xffff, bus: 0xff, slot: 31, function: 7 } as const;

function part(address: DeviceAddress, name: keyof typeof LIMITS, what: string, path: string): number {
  const text = address[name];
  if (text === undefined) return 0;
  const n = /^(0x[0-9a-f]{1,8}|[0-9]{1,10})$/i.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n > LIMITS[name]) {
    throw xmlError(`${what}: PCI address ${name} '${text}' is not a number in 0..${LIMITS[name]}`, { path: `${path}/address/@${name}` });
  }
  return n;
}

/** The slot and function of a PCI address on the root bus; `what` names the device in errors. */
export function parsePciAddress(address: DeviceAddress, what: string, path: string): PciAddress {
  if (address.type !== 'pci') throw xmlError(`${what}: expected a PCI address, not type '${address.type}'`, { path: `${path}/address/@type` });
  const domain = part(address, 'domain', what, path);
  const bus = part(address, 'bus', what, path);
  const slot = part(address, 'slot', what, path);
  const fn = part(address, 'function', what, path);
  if (domain !== 0 || bus !== 0) {
    throw locatedError(
      ErrorType.ConfigUnsupported,
      `${what}: PCI address ${pciKey({ slot, function: fn }, domain, bus)} is not on the root PCI bus; only domain 0, bus 0 is supported (no PCI bridges)`,
      {
        path: `${path}/address`,
      },
    );
  }
  if (slot === 0) throw xmlError(`${what}: PCI slot 0 of the root bus belongs to the host bridge`, { path: `${path}/address/@slot` });
  const multi = address.multifunction;
  if (multi !== undefined && multi !== 'on' && multi !== 'off') {
    throw xmlError(`${what}: multifunction must be 'on' or 'off', got '${multi}'`, { path: `${path}/address/@multifunction` });
  }
  return { slot, function: fn, ...(multi === undefined ? {} : { multifunction: multi === 'on' }) };
}

/** libvirt's spelling of an address it assigned. */
export function pciAddressAttrs(a: PciAddress): DeviceAddress {
  const out: DeviceAddress = {
    type: 'pci',
    domain: '0x0000',
    bus: '0x00',
    slot: `0x${a.slot.toString(16).padStart(2, '0')}`,
    function: `0x${a.function.toString(16)}`,
  };
  if (a.multifunction !== undefined) out.multifunction = a.multifunction ? 'on' : 'off';
  return out;
}

export function pciKey(a: PciAddress, domain = 0, bus = 0): string {
  const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
  return `${hex(domain, 4)}:${hex(bus, 2)}:${hex(a.slot, 2)}.${a.function.toString(16)}`;
}

/** The pc machine (i440fx + PIIX3), the only one whose PCI layout vmferry builds. */
export function isI440fx(machine: string | undefined): boolean {
  const m = machine ?? 'pc';
  return m === 'pc' || m.startsWith('pc-i440fx-') || /^pc-[0-9]/.test(m);
}
