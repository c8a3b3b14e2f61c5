// Reads <interface> elements into InterfaceDefs (interface-model.ts) and writes
// them back. A missing MAC is generated here, the way a missing UUID is, so the
// definition define stores carries it from then on.
import { randomBytes } from 'node:crypto';
import { compact, readAddress } from './devices-parse.js';
import type { DeviceAddress } from './domain-model.js';
import { INTERFACE_CHILDREN, MAC_PREFIX, type InterfaceDef, type InterfaceType, type LinkState, type NicModel } from './interface-model.js';
import { childElements, createElement, findChild, getAttr, insertChild, removeChild, setAttr, setChildAttr, setIntAttr, syncChild } from '../xml/xml-edit.js';
import { pathStep } from '../xml/xml-errors.js';
import type { XmlReader } from '../xml/xml-read.js';
import type { XmlElement } from '../xml/xml-tree.js';
import { applyVirtualPort, readVirtualPort } from './virtualport.js';

const INTERFACE_ORDER = ['source', 'mac', 'virtualport', 'target', 'model', 'link', 'boot', 'alias', 'address'] as const;
const DEVICE_DEPTH = 2;

export function generateMac(): string {
  const b = randomBytes(3);
  return `${MAC_PREFIX}:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}

export function readInterface(r: XmlReader, el: XmlElement, path: string): InterfaceDef {
  const unbuilt = [...new Set(childElements(el).map((c) => c.name))].filter((n) => !(INTERFACE_CHILDREN as readonly string[]).includes(n));
  for (const single of INTERFACE_CHILDREN) r.optional(el, single, path);
  const type = (r.attr(el, 'type') ?? 'user') as InterfaceType;
  const mac = r.optional(el, 'mac', path);
  const source = r.optional(el, 'source', path);
  const target = r.optional(el, 'target', path);
  const model = r.optional(el, 'model', path);
  const link = r.optional(el, 'link', path);
  const boot = r.optional(el, 'boot', path);
  const alias = r.optional(el, 'alias', path);
  const virtualport = r.optional(el, 'virtualport', path);
  return compact({
    type,
    mac: mac === undefined ? generateMac() : r.requiredAttr(mac, 'address', `${path}/mac`).toLowerCase(),
    model: model === undefined ? undefined : (r.requiredAttr(model, 'type', `${path}/model`) as NicModel),
    sourceBridge: source === undefined ? undefined : r.attr(source, 'bridge'),
    targetDev: target === undefined ? undefined : r.attr(target, 'dev'),
    linkState: link === undefined ? undefined : (r.attr(link, 'state') as LinkState | undefined),
    bootOrder: boot === undefined ? undefined : r.integer(r.requiredAttr(boot, 'order', `${path}/boot`), `${path}/boot/@order`, 'boot order'),
    address: readAddress(r, el, path),
    alias: alias === undefined ? undefined : r.requiredAttr(alias, 'name', `${path}/alias`),
    virtualport: virtualport === undefined ? undefined : readVirtualPort(r, virtualport, type, path),
    unbuilt: unbuilt.length > 0 ? unbuilt : undefined,
  });
}

export function readInterfaces(r: XmlReader, devices: XmlElement, path: string): InterfaceDef[] | undefined {
  const els = childElements(devices, 'interface');
  if (els.length === 0) return undefined;
  return els.map((el, i) => readInterface(r, el, `${path}/${pathStep('interface', i, els.length)}`));
}

function applyAddress(el: XmlElement, address: DeviceAddress | undefined): void {
  syncChild(el, 'address', address, DEVICE_DEPTH, INTERFACE_ORDER, (target, a) => {
    target.attrs = [];
    setAttr(target, 'type', a.type);
    for (const [k, v] of Object.entries(a)) if (k !== 'type') setAttr(target, k, v);
  });
}

function applyInterface(el: XmlElement, n: InterfaceDef): void {
  setAttr(el, 'type', n.type);
  setChildAttr(el, 'mac', 'address', n.mac, DEVICE_DEPTH, INTERFACE_ORDER);
  setChildAttr(el, 'source', 'bridge', n.sourceBridge, DEVICE_DEPTH, INTERFACE_ORDER);
  syncChild(el, 'virtualport', n.virtualport, DEVICE_DEPTH, INTERFACE_ORDER, (vp, v) => applyVirtualPort(vp, v, DEVICE_DEPTH + 1));
  setChildAttr(el, 'target', 'dev', n.targetDev, DEVICE_DEPTH, INTERFACE_ORDER);
  setChildAttr(el, 'model', 'type', n.model, DEVICE_DEPTH, INTERFACE_ORDER);
  setChildAttr(el, 'link', 'state', n.linkState, DEVICE_DEPTH, INTERFACE_ORDER);
  syncChild(el, 'boot', n.bootOrder, DEVICE_DEPTH, INTERFACE_ORDER, (b, order) => setIntAttr(b, 'order', order));
  setChildAttr(el, 'alias', 'name', n.alias, DEVICE_DEPTH, INTERFACE_ORDER);
  const current = findChild(el, 'address');
  const same =
    current !== undefined &&
    n.address !== undefined &&
    current.attrs.length === Object.keys(n.address).length &&
    Object.entries(n.address).every(([k, v]) => getAttr(current, k) === v);
  if (!same) applyAddress(el, n.address);
}

/**
 * The i-th InterfaceDef goes into the i-th <interface>; extra ones are added,
 * missing ones removed. Undefined leaves the document's interfaces as they are.
 */
export function applyInterfaces(devices: XmlElement, list: InterfaceDef[] | undefined, deviceOrder: readonly string[]): void {
  if (list === undefined) return;
  const existing = childElements(devices, 'interface');
  list.forEach((n, i) => {
    let el = existing[i];
    if (el === undefined) {
      el = createElement('interface');
      insertChild(devices, el, 1, deviceOrder);
    }
    applyInterface(el, n);
  });
  for (const extra of existing.slice(list.length)) removeChild(devices, extra);
}
