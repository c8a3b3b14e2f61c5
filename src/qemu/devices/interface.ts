// <interface> on QEMU's command line: a -netdev backend (user-mode network, or
// a tap the host worker made ready beforehand: host/taps.ts) and the NIC on
// the PCI root bus. The PCI slot is the XML's when it names one; otherwise
// QEMU places the NIC in the next free slot of the root bus.
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { INTERFACE_TYPES, NIC_MODELS, type InterfaceDef, type NicModel } from '../../domain/interface-model.js';

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

function where(i: number, count: number): string {
  return `/domain/devices/interface${count > 1 ? `[${i + 1}]` : ''}`;
}

/**
 * Refuses, with ConfigUnsupported naming the element, any interface the command
 * line would not build as written: run before anything is made for the domain
 * (taps included). Nothing of <interface> is ever silently dropped.
 */
export function checkInterfacesBuildable(def: DomainDef): void {
  const list = def.devices.interfaces ?? [];
  list.forEach((n, i) => {
    const p = where(i, list.length);
    const refuse = (msg: string, at: string): never => {
      throw vmError(ErrorType.ConfigUnsupported, `${msg} at ${p}${at}`, { path: `${p}${at}` });
    };
    // Named first: on a type='direct' interface this says more than the type's refusal would.
    const vp = n.virtualport;
    if (vp !== undefined && vp.type !== 'openvswitch') {
      refuse(
        `virtualport type '${vp.type}' is not supported: libvirt associates it over VDP (lldpad, a real 802.1Qbg/Qbh switch) on a macvtap <interface type='direct'>, which vmferry does not build`,
        '/virtualport/@type',
      );
    }
    if (vp !== undefined && n.type !== 'bridge') refuse(`an openvswitch virtualport is built on <interface type='bridge'> only`, '/virtualport');
    if (!(INTERFACE_TYPES as readonly string[]).includes(n.type))
      refuse(`interface type '${n.type}' is not supported (only ${INTERFACE_TYPES.join(', ')})`, '/@type');
    if (n.model !== undefined && !(NIC_MODELS as readonly string[]).includes(n.model)) {
      refuse(`NIC model '${n.model}' is not supported (only ${NIC_MODELS.join(', ')})`, '/model/@type');
    }
    for (const child of n.unbuilt ?? []) refuse(`<interface><${child}> is not supported`, `/${child}`);
    if (n.type === 'user' && n.targetDev !== undefined) refuse(`<target dev> is not supported for type 'user'`, '/target/@dev');
    const a = n.address;
    if (a !== undefined) {
      if (a.type !== 'pci') refuse(`an interface address of type '${a.type}' is not supported (only pci)`, '/address/@type');
      // Only the root bus of the pc machine is built.
      if (a.bus !== undefined && Number(a.bus) !== 0) refuse(`an interface on PCI bus ${a.bus} is not supported (only bus 0)`, '/address/@bus');
      if (a.domain !== undefined && Number(a.domain) !== 0) refuse(`an interface in PCI domain ${a.domain} is not supported`, '/address/@domain');
    }
  });
}

/**
 * Arguments for every interface. `taps[i]` is the host tap of interface i
 * (ethernet and bridge types), which the host worker has created or found.
 */
export function interfaceArgs(def: DomainDef, taps: readonly (string | undefined)[] = []): string[] {
  checkInterfacesBuildable(def);
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
    const device = [DEVICE_FOR_MODEL[(n.model ?? DEFAULT_MODEL) as NicModel], `netdev=${netdev}`, `id=${id}`, `mac=${n.mac}`, ...pciPlacement(n, i)];
    if (n.bootOrder !== undefined) device.push(`bootindex=${n.bootOrder}`);
    args.push('-device', device.join(','));
  });
  return args;
}
