// PCI addresses on the pc (i440fx) machine, honoured and assigned the way
// libvirt does, so a guest sees the same slots whether libvirt or vmferry
// started it, and across save, restore and migration (QEMU names a PCI
// device's migration state by its slot). Explicit addresses are taken first and
// checked (bad value: XmlError; two devices on one function: XmlError; off the
// root bus: ConfigUnsupported). Slot 1 is the PIIX3 (ISA bridge .0, IDE .1,
// USB .2, ACPI .3). The primary video card gets slot 2 when it is free. Every
// other device without an address gets the next fully free slot after the last
// one handed out, in libvirt's order of device kinds (pciUsers below).
import { ErrorType } from '../common/errors.js';
import type { DeviceAddress, DomainDef, TreeForm } from './domain-model.js';
import { isI440fx, parsePciAddress, pciAddressAttrs, pciKey, type PciAddress } from './pci-address.js';
import { childElements, getAttr } from '../xml/xml-edit.js';
import { locatedError, pathStep, xmlError } from '../xml/xml-errors.js';
import type { XmlElement } from '../xml/xml-tree.js';

/** One device that sits (or may sit) on the PCI bus. */
export interface PciUser {
  what: string;
  path: string;
  address(): DeviceAddress | undefined;
  assign(a: DeviceAddress): void;
  /** A fixed place the machine gives it (IDE and UHCI of the PIIX3). */
  fixed?: PciAddress;
  /** The first <video>: slot 2 when free, as QEMU placed the VGA before libvirt named slots. */
  primaryVideo?: boolean;
}

const PIIX3_SLOT = 1;
const VIDEO_SLOT = 2;
const MAX_SLOT = 31;
const D = '/domain/devices';
const MODELLED = new Set([
  'disk',
  'interface',
  'graphics',
  'serial',
  'console',
  'video',
  'input',
  'controller',
  'channel',
  'rng',
  'watchdog',
  'panic',
  'memballoon',
]);

function step(name: string, i: number, n: number): string {
  return `${D}/${pathStep(name, i, n)}`;
}

/** Controllers (USB and others) in libvirt's array order: grouped by type in order of first appearance, by index within a type. */
function controllerUsers(def: DomainDef<TreeForm>, doc: XmlElement | undefined): PciUser[] {
  const usb = def.devices.usbControllers ?? [];
  const other = def.devices.controllers ?? [];
  const docTypes = doc === undefined ? [] : childElements(doc, 'controller').map((c) => getAttr(c, 'type') === 'usb');
  const refs: { usb: boolean; i: number }[] = [];
  let u = 0;
  let o = 0;
  for (const isUsb of docTypes) refs.push(isUsb ? { usb: true, i: u++ } : { usb: false, i: o++ });
  while (u < usb.length) refs.push({ usb: true, i: u++ });
  while (o < other.length) refs.push({ usb: false, i: o++ });
  const total = refs.length;
  const rows = refs.flatMap((ref, k) => {
    const c = ref.usb ? usb[ref.i] : other[ref.i];
    if (c === undefined) return [];
    const type = ref.usb ? 'usb' : (other[ref.i]?.type ?? '');
    return [{ c, type, index: c.index ?? 0, path: step('controller', k, total), usb: ref.usb }];
  });
  const firstSeen = new Map<string, number>();
  rows.forEach((r, k) => firstSeen.has(r.type) || firstSeen.set(r.type, k));
  rows.sort((a, b) => (firstSeen.get(a.type) ?? 0) - (firstSeen.get(b.type) ?? 0) || a.index - b.index);
  return rows.flatMap(({ c, type, index, path }) => {
    const model = c.model;
    if (type === 'pci' || model === 'none') return [];
    const user: PciUser = { what: `controller type='${type}' index='${index}'`, path, address: () => c.address, assign: (a) => (c.address = a) };
    if (type === 'ide' && index === 0) user.fixed = { slot: PIIX3_SLOT, function: 1 };
    if (type === 'usb' && index === 0 && (model === undefined || model === 'piix3-uhci')) user.fixed = { slot: PIIX3_SLOT, function: 2 };
    return [user];
  });
}

/** Every device on the PCI bus, in the order libvirt hands out free slots. */
export function pciUsers(def: DomainDef<TreeForm>, doc: XmlElement | undefined): PciUser[] {
  const d = def.devices;
  const users: PciUser[] = [];
  const list = <T extends { address?: DeviceAddress }>(items: T[] | undefined, name: string, wanted: (t: T) => boolean, what: (t: T) => string): void => {
    const all = items ?? [];
    all.forEach((t, i) => {
      if (wanted(t)) users.push({ what: what(t), path: step(name, i, all.length), address: () => t.address, assign: (a) => (t.address = a) });
    });
  };
  // (Filesystems and sound cards come before interfaces in libvirt's order; vmferry builds neither.)
  // Every interface model vmferry builds (virtio, e1000, e1000e, rtl8139) is a PCI card.
  list(
    d.interfaces,
    'interface',
    () => true,
    (x) => `interface type '${x.type}'`,
  );
  users.push(...controllerUsers(def, doc));
  list(
    d.disks,
    'disk',
    (x) => (x.target.bus ?? (x.target.dev.startsWith('vd') ? 'virtio' : 'ide')) === 'virtio',
    (x) => `disk ${x.target.dev}`,
  );
  const balloon = d.memballoon;
  if (balloon !== undefined && balloon.model.startsWith('virtio')) {
    users.push({ what: 'memballoon', path: `${D}/memballoon`, address: () => balloon.address, assign: (a) => (balloon.address = a) });
  }
  list(
    d.rngs,
    'rng',
    () => true,
    (x) => `rng model '${x.model}'`,
  );
  list(
    d.watchdogs,
    'watchdog',
    (x) => x.model === 'i6300esb',
    (x) => `watchdog ${x.model}`,
  );
  list(
    d.videos,
    'video',
    (x) => x.model !== 'none',
    (x) => `video ${x.model}`,
  );
  const primary = users.find((u) => u.path === step('video', 0, d.videos?.length ?? 0) && d.videos?.[0]?.model !== 'none');
  if (primary !== undefined) primary.primaryVideo = true;
  list(
    d.inputs,
    'input',
    (x) => x.bus === 'virtio',
    (x) => `input ${x.type} (virtio)`,
  );
  list(
    d.panics,
    'panic',
    (x) => x.model === 'pvpanic',
    () => 'panic pvpanic',
  );
  return users;
}

/** PCI addresses of devices vmferry does not model (kept so no assigned device lands on them). */
function otherPciAddresses(doc: XmlElement | undefined): { address: DeviceAddress; path: string; what: string }[] {
  if (doc === undefined) return [];
  const out: { address: DeviceAddress; path: string; what: string }[] = [];
  const counts = new Map<string, number>();
  const kids = childElements(doc);
  for (const k of kids) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
  const seen = new Map<string, number>();
  for (const k of kids) {
    const i = seen.get(k.name) ?? 0;
    seen.set(k.name, i + 1);
    if (MODELLED.has(k.name)) continue;
    const a = childElements(k, 'address')[0];
    if (a === undefined || getAttr(a, 'type') !== 'pci') continue;
    const address: DeviceAddress = { type: 'pci' };
    for (const attr of a.attrs) address[attr.name] = getAttr(a, attr.name) ?? attr.raw;
    out.push({ address, path: step(k.name, i, counts.get(k.name) ?? 1), what: `<${k.name}>` });
  }
  return out;
}

class SlotMap {
  private readonly used = new Map<string, string>();
  private last = 0;

  take(a: PciAddress, what: string, path: string): void {
    const key = pciKey(a);
    const other = this.used.get(key);
    if (other !== undefined) throw xmlError(`${what}: PCI address ${key} is already used by ${other}`, { path: `${path}/address` });
    this.used.set(key, what);
  }

  /** Marks the functions of a slot nobody named as used. */
  reserveRest(slot: number, what: string): void {
    for (let f = 0; f < 8; f++) {
      const key = pciKey({ slot, function: f });
      if (!this.used.has(key)) this.used.set(key, what);
    }
  }

  slotFree(slot: number): boolean {
    for (let f = 0; f < 8; f++) if (this.used.has(pciKey({ slot, function: f }))) return false;
    return true;
  }

  /** The next fully free slot after the last one handed out, wrapping once (libvirt's search). */
  next(what: string, path: string): PciAddress {
    const order = [...Array(MAX_SLOT).keys()].map((k) => k + 1);
    const start = Math.max(this.last, 1);
    for (const slot of [...order.filter((s) => s >= start), ...order.filter((s) => s < start)]) {
      if (!this.slotFree(slot)) continue;
      this.last = slot;
      const a = { slot, function: 0 };
      this.take(a, what, path);
      return a;
    }
    throw locatedError(ErrorType.ConfigUnsupported, `${what}: no free slot left on the root PCI bus (PCI bridges are not supported)`, { path });
  }
}

/** Fills in every missing PCI address of a pc machine in place; checks the given ones. */
export function assignPciAddresses(def: DomainDef<TreeForm>, doc: XmlElement | undefined): void {
  const users = pciUsers(def, doc);
  if (!isI440fx(def.os.machine)) {
    // Other machines get QEMU's own placement; the command line refuses an explicit address there.
    return;
  }
  const slots = new SlotMap();
  for (const o of otherPciAddresses(doc)) slots.take(parsePciAddress(o.address, o.what, o.path), o.what, o.path);
  const wanting: PciUser[] = [];
  for (const u of users) {
    const given = u.address();
    if (given === undefined) {
      if (u.fixed !== undefined) {
        slots.take(u.fixed, u.what, u.path);
        u.assign(pciAddressAttrs(u.fixed));
      } else {
        wanting.push(u);
      }
      continue;
    }
    if (given.type !== 'pci')
      throw locatedError(ErrorType.ConfigUnsupported, `${u.what}: address type '${given.type}' is not supported, only 'pci'`, {
        path: `${u.path}/address/@type`,
      });
    const a = parsePciAddress(given, u.what, u.path);
    if (u.fixed !== undefined && (a.slot !== u.fixed.slot || a.function !== u.fixed.function)) {
      throw xmlError(`${u.what} is part of the PIIX3 and must be at PCI address ${pciKey(u.fixed)}, not ${pciKey(a)}`, { path: `${u.path}/address` });
    }
    if (u.fixed === undefined && a.slot === PIIX3_SLOT) {
      throw xmlError(`${u.what}: PCI slot 1 belongs to the PIIX3 (ISA bridge, IDE, USB, ACPI)`, { path: `${u.path}/address/@slot` });
    }
    slots.take(a, u.what, u.path);
  }
  slots.reserveRest(PIIX3_SLOT, 'the PIIX3');
  const video = wanting.find((u) => u.primaryVideo === true);
  if (video !== undefined) {
    // Slot 2 when free; otherwise the next free one, still ahead of every other device.
    const a = slots.slotFree(VIDEO_SLOT) ? { slot: VIDEO_SLOT, function: 0 } : undefined;
    if (a !== undefined) slots.take(a, video.what, video.path);
    video.assign(pciAddressAttrs(a ?? slots.next(video.what, video.path)));
  }
  for (const u of wanting) if (u.address() === undefined) u.assign(pciAddressAttrs(slots.next(u.what, u.path)));
}
