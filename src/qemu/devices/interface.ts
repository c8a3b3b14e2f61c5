// <interface> on QEMU's command line: a -netdev backend (user-mode network, or
// a tap the host worker made ready beforehand: host/taps.ts) and the NIC on
// the PCI root bus. The PCI slot is the XML's when it names one; otherwise
// QEMU places the NIC in the next free slot of the root bus.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import type { InterfaceDef, NicModel } from '../../domain/interface-model.js';

/** libvirt's model names -> QEMU device types. */
const DEVICE_FOR_MODEL: Record<NicModel, string> = {
  virtio: 'virtio-net-pci',
  e1000: 'e1000',
  e1000e: 'e1000e',
  rtl8139: 'rtl8139',
};
/** libvirt's default NIC model on the pc machine. */
const DEFAULT_MODEL: NicModel = 'rtl8139';

/** The QEMU device id of the i-th interface: its alias when it has one (set_link and query-rx-filter use it). */
export function nicDeviceId(n: InterfaceDef, i: number): string {
  return n.alias ?? `net${i}`;
}

function pciPlacement(n: InterfaceDef, i: number): string[] {
  const a = n.address;
  if (a === undefined) return [];
  if (a.type !== 'pci' || a.slot === undefined) throw vmError(ErrorType.ConfigUnsupported, `interface ${i}: only a PCI address with a slot is supported`);
  const slot = Number(a.slot);
  const fn = a.function === undefined ? 0 : Number(a.function);
  const addr = `0x${slot.toString(16)}${fn === 0 ? '' : `.0x${fn.toString(16)}`}`;
  return ['bus=pci.0', `addr=${addr}`];
}

/**
 * Arguments for every interface. `taps[i]` is the host tap of interface i
 * (ethernet and bridge types), which the host worker has created or found.
 */
export function interfaceArgs(def: DomainDef, taps: readonly (string | undefined)[] = []): string[] {
  const args: string[] = [];
  (def.devices.interfaces ?? []).forEach((n, i) => {
    const id = nicDeviceId(n, i);
    const netdev = `host${id}`;
    if (n.type === 'user') {
      args.push('-netdev', `user,id=${netdev}`);
    } else {
      const tap = taps[i];
      if (tap === undefined) throw vmError(ErrorType.InternalError, `interface ${i} (${n.type}) has no host tap`);
      // The worker owns the tap's life (creation, bridge, removal): QEMU runs no scripts.
      args.push('-netdev', `tap,id=${netdev},ifname=${tap},script=no,downscript=no`);
    }
    const device = [DEVICE_FOR_MODEL[n.model ?? DEFAULT_MODEL], `netdev=${netdev}`, `id=${id}`, `mac=${n.mac}`, ...pciPlacement(n, i)];
    if (n.bootOrder !== undefined) device.push(`bootindex=${n.bootOrder}`);
    args.push('-device', device.join(','));
  });
  return args;
}
