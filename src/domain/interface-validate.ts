// Value checks for <interface> (interface-model.ts). Any libvirt interface parses;
// what vmferry does not build is refused where it would be built
// (qemu/devices/interface.ts checkInterfacesBuildable), with ConfigUnsupported.
import type { DeviceAddress } from './domain-model.js';
import { LIBVIRT_INTERFACE_TYPES, LIBVIRT_NIC_MODEL, LINK_STATES, type InterfaceDef } from './interface-model.js';
import type { Checker } from './validate-checker.js';
import { pathStep } from '../xml/xml-errors.js';
import { checkVirtualPort } from './virtualport.js';

const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
/** A Linux interface name: at most 15 bytes, no '/', no whitespace, not '.' or '..'. */
const IFNAME = /^(?!\.{1,2}$)[A-Za-z0-9_.:-]{1,15}$/;
const ALIAS = /^[A-Za-z0-9._:-]{1,255}$/;

function checkPciAddress(c: Checker, a: DeviceAddress | undefined, p: string): void {
  if (a === undefined || a.type !== 'pci') return;
  const slot = Number(a.slot);
  if (a.slot === undefined || !Number.isInteger(slot) || slot < 0 || slot > 31) c.fail(`invalid PCI slot '${String(a.slot)}'`, `${p}/address/@slot`);
  const fn = a.function === undefined ? 0 : Number(a.function);
  if (!Number.isInteger(fn) || fn < 0 || fn > 7) c.fail(`invalid PCI function '${String(a.function)}'`, `${p}/address/@function`);
}

export function checkInterface(c: Checker, n: InterfaceDef, p: string): void {
  c.object(n, p, 'interface');
  c.oneOf(LIBVIRT_INTERFACE_TYPES, n.type, `${p}/@type`, 'interface type', true);
  const mac = c.str(n.mac, `${p}/mac/@address`, 'MAC address');
  if (!MAC.test(mac.toLowerCase())) c.fail(`invalid MAC address '${mac}'`, `${p}/mac/@address`);
  // The group bit: a multicast MAC can never be a NIC's own address.
  else if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) c.fail(`MAC address '${mac}' is a multicast address`, `${p}/mac/@address`);
  c.pattern(n.model, LIBVIRT_NIC_MODEL, `${p}/model/@type`, 'NIC model');
  c.pattern(n.sourceBridge, IFNAME, `${p}/source/@bridge`, 'bridge name');
  c.pattern(n.targetDev, IFNAME, `${p}/target/@dev`, 'target device');
  if (n.type === 'bridge' && n.sourceBridge === undefined) c.fail(`an interface of type 'bridge' needs <source bridge='...'>`, `${p}/source/@bridge`);
  c.oneOf(LINK_STATES, n.linkState, `${p}/link/@state`, 'link state');
  c.optInt(n.bootOrder, 1, 2 ** 31 - 1, `${p}/boot/@order`, 'boot order');
  checkPciAddress(c, n.address, p);
  c.pattern(n.alias, ALIAS, `${p}/alias/@name`, 'device alias');
  if (n.virtualport !== undefined) checkVirtualPort(c, n.virtualport, n.type, p);
}

export function checkInterfaces(c: Checker, list: InterfaceDef[] | undefined, D: string): void {
  if (list === undefined) return;
  const items = c.list<InterfaceDef>(list, D, 'interfaces');
  const macs = new Map<string, string>();
  items.forEach((n, i) => {
    const p = `${D}/${pathStep('interface', i, items.length)}`;
    checkInterface(c, n, p);
    const other = macs.get(n.mac);
    if (other !== undefined) c.fail(`MAC address ${n.mac} is already used by ${other}`, `${p}/mac/@address`);
    macs.set(n.mac, p);
  });
}
