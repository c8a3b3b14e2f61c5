// Writes the in-document device families back: the i-th item of a list into
// the i-th matching element (a fresh one, in libvirt's place, for an item
// added in code), extra elements removed. A list left undefined leaves its
// elements as they are.
import { applyAddress, DEVICE_DEPTH, DEVICE_ORDER } from './devices-format.js';
import type { ChannelDef, ControllerDef, InputDef, MoreDevicesDef, PanicDef, RngDef, VideoDef, WatchdogDef } from './devices-more-model.js';
import { familyElements, MORE_FAMILIES, type MoreFamily } from './devices-more-parse.js';
import {
  createElement,
  ensureChild,
  findChild,
  insertChild,
  removeChild,
  removeIfEmpty,
  setAttr,
  setIntAttr,
  setText,
  syncChild,
  syncChildAttrs,
} from '../xml/xml-edit.js';
import type { DeviceAddress } from './domain-model.js';
import type { XmlElement } from '../xml/xml-tree.js';

const VIDEO_ORDER = ['model', 'driver', 'alias', 'address'] as const;
const SIMPLE_ORDER = ['model', 'driver', 'source', 'protocol', 'log', 'target', 'alias', 'address'] as const;
const RNG_ORDER = ['rate', 'backend', 'driver', 'alias', 'address'] as const;
const yesNo = (v: boolean | undefined) => (v === undefined ? undefined : v ? 'yes' : 'no');

function writeVideo(el: XmlElement, v: VideoDef): void {
  const model = ensureChild(el, 'model', DEVICE_DEPTH, VIDEO_ORDER);
  setAttr(model, 'type', v.model);
  setIntAttr(model, 'vram', v.vramKiB);
  setIntAttr(model, 'heads', v.heads);
  setAttr(model, 'primary', yesNo(v.primary));
  applyAddress(el, v.address, VIDEO_ORDER);
}

/** A device that is attributes on its own element and an address. */
function writeFlat(el: XmlElement, attrs: Record<string, string | number | undefined>, address: DeviceAddress | undefined): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'number') setIntAttr(el, name, value);
    else setAttr(el, name, value);
  }
  applyAddress(el, address, SIMPLE_ORDER);
}

const writeInput = (el: XmlElement, v: InputDef): void => writeFlat(el, { type: v.type, bus: v.bus }, v.address);
const writeController = (el: XmlElement, v: ControllerDef): void => writeFlat(el, { type: v.type, index: v.index, model: v.model, ports: v.ports }, v.address);

function writeChannel(el: XmlElement, v: ChannelDef): void {
  setAttr(el, 'type', v.type);
  syncChildAttrs(el, 'source', { mode: v.sourceMode, path: v.sourcePath }, DEVICE_DEPTH, SIMPLE_ORDER);
  syncChildAttrs(el, 'target', { type: v.targetType, name: v.targetName }, DEVICE_DEPTH, SIMPLE_ORDER);
  applyAddress(el, v.address, SIMPLE_ORDER);
}

function writeRng(el: XmlElement, v: RngDef): void {
  setAttr(el, 'model', v.model);
  const rate = v.rateBytes === undefined && v.ratePeriodMs === undefined ? undefined : v;
  syncChild(el, 'rate', rate, DEVICE_DEPTH, RNG_ORDER, (r, x) => {
    setIntAttr(r, 'bytes', x.rateBytes);
    setIntAttr(r, 'period', x.ratePeriodMs);
  });
  const backend = ensureChild(el, 'backend', DEVICE_DEPTH, RNG_ORDER);
  setAttr(backend, 'model', v.backendModel);
  if (v.backendSource !== undefined) setText(backend, v.backendSource);
  applyAddress(el, v.address, RNG_ORDER);
}

const writeWatchdog = (el: XmlElement, v: WatchdogDef): void => writeFlat(el, { model: v.model, action: v.action }, v.address);
const writePanic = (el: XmlElement, v: PanicDef): void => writeFlat(el, { model: v.model }, v.address);

const WRITERS: { [K in MoreFamily]: (el: XmlElement, v: NonNullable<MoreDevicesDef[K]>[number]) => void } = {
  videos: writeVideo,
  inputs: writeInput,
  controllers: writeController,
  channels: writeChannel,
  rngs: writeRng,
  watchdogs: writeWatchdog,
  panics: writePanic,
};

function applyFamily<K extends MoreFamily>(devices: XmlElement, family: K, list: MoreDevicesDef[K]): void {
  if (list === undefined) return;
  const existing = familyElements(devices, '', family).map(([el]) => el);
  const write = WRITERS[family] as (el: XmlElement, v: unknown) => void;
  list.forEach((item, i) => {
    let el = existing[i];
    if (el === undefined) {
      el = createElement(MORE_FAMILIES[family].element);
      // Insert after the last element of the same name, where libvirt lists them.
      insertChild(devices, el, 1, DEVICE_ORDER);
    }
    write(el, item);
  });
  for (const extra of existing.slice(list.length)) removeChild(devices, extra);
}

export function applyMoreDevices(devices: XmlElement, def: MoreDevicesDef): void {
  for (const family of Object.keys(WRITERS) as MoreFamily[]) applyFamily(devices, family, def[family]);
}

/** True when any in-document family has an item (so <devices> must exist). */
export function hasMoreDevices(def: MoreDevicesDef): boolean {
  return (Object.keys(WRITERS) as MoreFamily[]).some((f) => (def[f]?.length ?? 0) > 0);
}
