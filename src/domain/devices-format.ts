// Writes the modelled devices back into their elements (the preserved one, or a
// fresh one for a device added in code) and the device lists into <devices>.
import { applyMoreDevices, hasMoreDevices } from './devices-more-format.js';
import { isUsbController } from './devices-parse.js';
import { applyInterfaces } from './interface-parse.js';
import type { CharDevDef, DeviceAddress, DevicesDef, DiskDef, GraphicsDef, TreeForm, UsbControllerDef } from './domain-model.js';
import {
  childElements,
  createElement,
  ensureChild,
  findChild,
  getAttr,
  insertChild,
  isBlank,
  removeChild,
  removeIfEmpty,
  setAttr,
  setChildAttr,
  setChildText,
  setFlagChild,
  setIntAttr,
  syncChild,
  syncChildAttrs,
} from '../xml/xml-edit.js';
import type { XmlElement, XmlNode } from '../xml/xml-tree.js';

/** libvirt's order of device kinds inside <devices>. */
export const DEVICE_ORDER = [
  'emulator',
  'disk',
  'controller',
  'lease',
  'filesystem',
  'interface',
  'smartcard',
  'serial',
  'parallel',
  'console',
  'channel',
  'input',
  'tpm',
  'graphics',
  'sound',
  'audio',
  'video',
  'hostdev',
  'redirdev',
  'redirfilter',
  'hub',
  'watchdog',
  'memballoon',
  'rng',
  'panic',
  'shmem',
  'memory',
  'iommu',
  'vsock',
  'crypto',
  'pstore',
] as const;
const DISK_ORDER = [
  'driver',
  'source',
  'backingStore',
  'backenddomain',
  'target',
  'blockio',
  'iotune',
  'readonly',
  'shareable',
  'transient',
  'serial',
  'wwn',
  'vendor',
  'product',
  'encryption',
  'boot',
  'alias',
  'address',
] as const;
const GRAPHICS_ORDER = ['listen', 'channel', 'image', 'jpeg', 'zlib', 'playback', 'streaming', 'clipboard', 'mouse', 'filetransfer', 'gl', 'audio'] as const;
const CHARDEV_ORDER = ['source', 'protocol', 'log', 'target', 'alias', 'address'] as const;
const CONTROLLER_ORDER = ['model', 'driver', 'master', 'target', 'pcihole64', 'alias', 'address'] as const;
export const DEVICE_DEPTH = 2;

function setAttrDefault(el: XmlElement, name: string, value: string, dflt: string, fresh: boolean): void {
  if (fresh || (getAttr(el, name) ?? dflt) !== value) setAttr(el, name, value);
}

function applyAlias(el: XmlElement, alias: string | undefined, order: readonly string[]): void {
  setChildAttr(el, 'alias', 'name', alias, DEVICE_DEPTH, order);
}

function sameAddress(el: XmlElement | undefined, address: DeviceAddress | undefined): boolean {
  if (el === undefined || address === undefined) return el === undefined && address === undefined;
  const keys = Object.keys(address);
  return el.attrs.length === keys.length && keys.every((k) => getAttr(el, k) === address[k]);
}

export function applyAddress(el: XmlElement, address: DeviceAddress | undefined, order: readonly string[]): void {
  if (sameAddress(findChild(el, 'address'), address)) return;
  syncChild(el, 'address', address, DEVICE_DEPTH, order, (target, a) => {
    target.attrs = [];
    setAttr(target, 'type', a.type);
    for (const [k, v] of Object.entries(a)) if (k !== 'type') setAttr(target, k, v);
  });
}

export function formatDisk(d: DiskDef<TreeForm>): XmlElement {
  const fresh = d.preserved === undefined;
  const el = d.preserved !== undefined ? structuredClone(d.preserved) : createElement('disk');
  setAttrDefault(el, 'type', d.type, 'file', fresh);
  setAttrDefault(el, 'device', d.device, 'disk', fresh);

  syncChild(el, 'driver', d.driver, DEVICE_DEPTH, DISK_ORDER, (driver, v) => {
    setAttr(driver, 'name', v.name);
    setAttr(driver, 'type', v.type);
    setAttr(driver, 'cache', v.cache);
  });
  if (d.type === 'file' || d.type === 'block') {
    const attr = d.type === 'file' ? 'file' : 'dev';
    syncChild(el, 'source', d.source, DEVICE_DEPTH, DISK_ORDER, (source, v) => {
      setAttr(source, attr, v[attr]);
      setAttr(source, 'startupPolicy', v.startupPolicy);
    });
  }

  const target = ensureChild(el, 'target', DEVICE_DEPTH, DISK_ORDER);
  setAttr(target, 'dev', d.target.dev);
  setAttr(target, 'bus', d.target.bus);
  setFlagChild(el, 'readonly', d.readonly, DEVICE_DEPTH, DISK_ORDER);
  setFlagChild(el, 'shareable', d.shareable, DEVICE_DEPTH, DISK_ORDER);
  applyAlias(el, d.alias, DISK_ORDER);
  applyAddress(el, d.address, DISK_ORDER);
  return el;
}

export function formatGraphics(g: GraphicsDef<TreeForm>): XmlElement {
  const el = g.preserved !== undefined ? structuredClone(g.preserved) : createElement('graphics');
  setAttr(el, 'type', g.type);
  setIntAttr(el, 'port', g.port);
  setIntAttr(el, 'tlsPort', g.tlsPort);
  setAttr(el, 'autoport', g.autoport === undefined ? undefined : g.autoport ? 'yes' : 'no');
  setAttr(el, 'listen', g.listen);
  setAttr(el, 'passwd', g.passwd);

  const existing = childElements(el, 'listen');
  g.listens.forEach((l, i) => {
    let le = existing[i];
    if (le === undefined) {
      le = createElement('listen');
      insertChild(el, le, DEVICE_DEPTH, GRAPHICS_ORDER);
    }
    setAttr(le, 'type', l.type);
    setAttr(le, 'address', l.address);
    setAttr(le, 'network', l.network);
    setAttr(le, 'socket', l.socket);
  });
  for (const extra of existing.slice(g.listens.length)) removeChild(el, extra);
  return el;
}

export function formatCharDev(name: 'serial' | 'console', d: CharDevDef<TreeForm>): XmlElement {
  const fresh = d.preserved === undefined;
  const el = d.preserved !== undefined ? structuredClone(d.preserved) : createElement(name);
  setAttrDefault(el, 'type', d.type, 'pty', fresh);
  setAttr(el, 'tty', d.tty);

  syncChildAttrs(el, 'source', { path: d.sourcePath, append: d.sourceAppend }, DEVICE_DEPTH, CHARDEV_ORDER);
  syncChildAttrs(el, 'target', { type: d.targetType, port: d.targetPort }, DEVICE_DEPTH, CHARDEV_ORDER);
  applyAlias(el, d.alias, CHARDEV_ORDER);
  return el;
}

/**
 * USB controllers stay in the document: the i-th one in the model is written
 * into the i-th `<controller type='usb'>`, extra ones are added after the other
 * controllers, missing ones removed. Undefined leaves them all as they are.
 */
function applyUsbControllers(devices: XmlElement, list: UsbControllerDef[] | undefined): void {
  if (list === undefined) return;
  const existing = childElements(devices).filter(isUsbController);
  list.forEach((u, i) => {
    let el = existing[i];
    if (el === undefined) {
      el = createElement('controller');
      setAttr(el, 'type', 'usb');
      insertChild(devices, el, 1, DEVICE_ORDER);
    }
    setIntAttr(el, 'index', u.index);
    setAttr(el, 'model', u.model);
    applyAddress(el, u.address, CONTROLLER_ORDER);
  });
  for (const extra of existing.slice(list.length)) removeChild(devices, extra);
}

/** Writes emulator, memballoon, USB controllers and the device lists into <devices> (created when needed). */
export function applyDevices(root: XmlElement, devices: DevicesDef<TreeForm>, domainOrder: readonly string[]): void {
  let el = findChild(root, 'devices');
  const hasContent =
    devices.emulator !== undefined ||
    devices.memballoon !== undefined ||
    (devices.usbControllers?.length ?? 0) > 0 ||
    hasMoreDevices(devices) ||
    (devices.interfaces?.length ?? 0) > 0 ||
    devices.disks.length + devices.graphics.length + devices.serials.length + devices.consoles.length > 0;
  if (el === undefined && !hasContent) return;
  el ??= ensureChild(root, 'devices', 0, domainOrder);

  setChildText(el, 'emulator', devices.emulator, 1, DEVICE_ORDER);
  syncChild(el, 'memballoon', devices.memballoon, 1, DEVICE_ORDER, (balloon, v) => {
    setAttr(balloon, 'model', v.model);
    applyAddress(balloon, v.address, CONTROLLER_ORDER);
  });
  applyUsbControllers(el, devices.usbControllers);
  applyMoreDevices(el, devices);
  applyInterfaces(el, devices.interfaces, DEVICE_ORDER);

  const queues = new Map<string, XmlElement[]>([
    ['disk', devices.disks.map(formatDisk)],
    ['graphics', devices.graphics.map(formatGraphics)],
    ['serial', devices.serials.map((s) => formatCharDev('serial', s))],
    ['console', devices.consoles.map((s) => formatCharDev('console', s))],
  ]);
  const lastSlot = new Map<string, number>();
  el.children.forEach((c, i) => {
    if (c.kind === 'slot') lastSlot.set(c.name, i);
  });

  const out: XmlNode[] = [];
  el.children.forEach((child, i) => {
    if (child.kind !== 'slot') {
      out.push(child);
      return;
    }
    const queue = queues.get(child.name) ?? [];
    const prev = out[out.length - 1];
    const indent = isBlank(prev) ? prev.raw : undefined;
    const next = queue.shift();
    if (next !== undefined) out.push(next);
    else if (isBlank(prev)) out.pop();
    if (lastSlot.get(child.name) === i) {
      for (const item of queue.splice(0)) {
        if (indent !== undefined) out.push({ kind: 'text', raw: indent });
        out.push(item);
      }
    }
  });
  el.children = out.every(isBlank) ? [] : out;
  for (const items of queues.values()) for (const item of items) insertChild(el, item, 1, DEVICE_ORDER);
}
