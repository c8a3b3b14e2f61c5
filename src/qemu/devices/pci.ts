// Where a PCI device goes on QEMU's command line: `bus=pci.0,addr=0xS.0xF` from
// its `<address type='pci'>` (parsed once, in domain/pci-address.ts). Without
// an address QEMU picks a slot itself; the host assigns every address before it
// starts QEMU, so that only happens for a definition handed straight to the
// command line (tests). Only the pc machine's root bus is built.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DeviceAddress, DomainDef } from '../../domain/domain-model.js';
import { isI440fx, parsePciAddress } from '../../domain/pci-address.js';

/** The `,bus=...,addr=...` suffix for a device's -device option ('' without an address). */
export function pciPlacement(def: DomainDef, address: DeviceAddress | undefined, what: string, path = '/domain/devices'): string {
  if (address === undefined) return '';
  if (!isI440fx(def.os.machine)) {
    throw vmError(ErrorType.ConfigUnsupported, `${what}: PCI addresses are only supported on the pc (i440fx) machine, not '${def.os.machine}'`);
  }
  const a = parsePciAddress(address, what, path);
  const multi = a.multifunction === undefined ? '' : `,multifunction=${a.multifunction ? 'on' : 'off'}`;
  return `,bus=pci.0,addr=0x${a.slot.toString(16)}.0x${a.function.toString(16)}${multi}`;
}
