// What libvirt rejects across devices: duplicate user aliases (ua-*), two
// devices on one PCI address, <os><boot> mixed with per-device boot order, two
// devices with one boot order. Reads the model where it has the value and the
// preserved elements for everything else.
import type { DomainDef, TreeForm } from './domain-model.js';
import type { Checker } from './validate-checker.js';
import { childElements, getAttr } from '../xml/xml-edit.js';
import { pathStep } from '../xml/xml-errors.js';
import type { XmlElement } from '../xml/xml-tree.js';

interface DeviceView {
  path: string;
  alias?: string;
  /** PCI address as domain:bus:slot.function when the device has one. */
  pci?: { key: string; path: string };
  bootOrder?: { order: string; path: string };
}

function pciKey(attrs: (name: string) => string | undefined): string | undefined {
  if (attrs('type') !== 'pci' || attrs('slot') === undefined) return undefined;
  const num = (v: string | undefined): number => (v === undefined ? 0 : Number(v));
  const [dom, bus, slot, fn] = [num(attrs('domain')), num(attrs('bus')), num(attrs('slot')), num(attrs('function'))];
  if (![dom, bus, slot, fn].every((n) => Number.isInteger(n) && n >= 0)) return undefined;
  const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
  return `${hex(dom, 4)}:${hex(bus, 2)}:${hex(slot, 2)}.${fn.toString(16)}`;
}

function viewOf(el: XmlElement | undefined, path: string, model?: { alias?: string; address?: Record<string, string> }): DeviceView {
  const view: DeviceView = { path };
  const aliasEl = el === undefined ? undefined : childElements(el, 'alias')[0];
  const alias = model !== undefined ? model.alias : aliasEl === undefined ? undefined : getAttr(aliasEl, 'name');
  if (alias !== undefined) view.alias = alias;
  const addrEl = el === undefined ? undefined : childElements(el, 'address')[0];
  const key =
    model !== undefined
      ? model.address === undefined
        ? undefined
        : pciKey((n) => model.address?.[n])
      : addrEl === undefined
        ? undefined
        : pciKey((n) => getAttr(addrEl, n));
  if (key !== undefined) view.pci = { key, path: `${path}/address` };
  const bootEl = el === undefined ? undefined : childElements(el, 'boot')[0];
  const order = bootEl === undefined ? undefined : getAttr(bootEl, 'order');
  if (order !== undefined) view.bootOrder = { order, path: `${path}/boot/@order` };
  return view;
}

export function checkAcrossDevices(c: Checker, def: DomainDef<TreeForm>): void {
  const D = '/domain/devices';
  const views: DeviceView[] = [];
  const { disks, graphics, serials } = def.devices;
  disks.forEach((d, i) => views.push(viewOf(d.preserved, `${D}/${pathStep('disk', i, disks.length)}`, d)));
  graphics.forEach((g, i) => views.push(viewOf(g.preserved, `${D}/${pathStep('graphics', i, graphics.length)}`)));
  serials.forEach((s, i) => views.push(viewOf(s.preserved, `${D}/${pathStep('serial', i, serials.length)}`, s)));
  // Consoles are left out: libvirt's console[0] mirrors serial[0], alias included.

  const root = def.preserved?.find((n): n is XmlElement => n.kind === 'element');
  const devicesEl = root === undefined ? undefined : childElements(root, 'devices')[0];
  if (devicesEl !== undefined) {
    const others = childElements(devicesEl);
    const counts = new Map<string, number>();
    for (const o of others) counts.set(o.name, (counts.get(o.name) ?? 0) + 1);
    const seen = new Map<string, number>();
    for (const o of others) {
      const i = seen.get(o.name) ?? 0;
      seen.set(o.name, i + 1);
      views.push(viewOf(o, `${D}/${pathStep(o.name, i, counts.get(o.name) ?? 1)}`));
    }
  }

  const aliases = new Map<string, string>();
  const pci = new Map<string, string>();
  const orders = new Map<string, string>();
  for (const v of views) {
    if (v.alias !== undefined && v.alias.startsWith('ua-')) {
      const other = aliases.get(v.alias);
      if (other !== undefined) c.fail(`device alias '${v.alias}' is already used by ${other}`, `${v.path}/alias/@name`);
      aliases.set(v.alias, v.path);
    }
    if (v.pci !== undefined) {
      const other = pci.get(v.pci.key);
      if (other !== undefined) c.fail(`PCI address ${v.pci.key} is already used by ${other}`, v.pci.path);
      pci.set(v.pci.key, v.path);
    }
    if (v.bootOrder !== undefined) {
      if (def.os.boot.length > 0) c.fail('per-device boot elements cannot be used together with <os><boot>', v.bootOrder.path);
      const other = orders.get(v.bootOrder.order);
      if (other !== undefined) c.fail(`boot order ${v.bootOrder.order} is already used by ${other}`, v.bootOrder.path);
      orders.set(v.bootOrder.order, v.path);
    }
  }
}
