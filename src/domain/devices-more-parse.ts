// Readers for the in-document device families (devices-more-model.ts). Each
// list is present only when the document has at least one such element.
import { compact, readAddress } from './devices-parse.js';
import type {
  ChannelDef,
  ChannelSourceMode,
  ControllerDef,
  ControllerType,
  InputBus,
  InputDef,
  InputType,
  MoreDevicesDef,
  PanicDef,
  RngDef,
  VideoDef,
  VideoModel,
  WatchdogDef,
} from './devices-more-model.js';
import { childElements, getAttr, textContent } from '../xml/xml-edit.js';
import { childrenWithPaths, type XmlReader } from '../xml/xml-read.js';
import type { XmlElement } from '../xml/xml-tree.js';

/** Which elements each family takes from <devices>. */
export const MORE_FAMILIES = {
  videos: { element: 'video', match: () => true },
  inputs: { element: 'input', match: () => true },
  controllers: { element: 'controller', match: (el: XmlElement) => getAttr(el, 'type') !== 'usb' },
  channels: { element: 'channel', match: () => true },
  rngs: { element: 'rng', match: () => true },
  watchdogs: { element: 'watchdog', match: () => true },
  panics: { element: 'panic', match: () => true },
} as const;
export type MoreFamily = keyof typeof MORE_FAMILIES;

function readVideo(r: XmlReader, el: XmlElement, path: string): VideoDef {
  const model = r.optional(el, 'model', path);
  const mp = `${path}/model`;
  return compact({
    model: (model === undefined ? 'vga' : r.requiredAttr(model, 'type', mp)) as VideoModel,
    vramKiB: model === undefined ? undefined : r.optionalIntAttr(model, 'vram', mp, 'video vram'),
    heads: model === undefined ? undefined : r.optionalIntAttr(model, 'heads', mp, 'video heads'),
    primary: model === undefined ? undefined : r.yesNo(model, 'primary', mp),
    address: readAddress(r, el, path),
  });
}

function readInput(r: XmlReader, el: XmlElement, path: string): InputDef {
  return compact({ type: r.requiredAttr(el, 'type', path) as InputType, bus: r.attr(el, 'bus') as InputBus | undefined, address: readAddress(r, el, path) });
}

function readController(r: XmlReader, el: XmlElement, path: string): ControllerDef {
  return compact({
    type: r.requiredAttr(el, 'type', path) as ControllerType,
    index: r.optionalIntAttr(el, 'index', path, 'controller index'),
    model: r.attr(el, 'model'),
    ports: r.optionalIntAttr(el, 'ports', path, 'controller ports'),
    address: readAddress(r, el, path),
  });
}

function readChannel(r: XmlReader, el: XmlElement, path: string): ChannelDef {
  const source = r.optional(el, 'source', path);
  const target = r.optional(el, 'target', path);
  return compact({
    type: r.attr(el, 'type') ?? 'pty',
    sourceMode: source === undefined ? undefined : (r.attr(source, 'mode') as ChannelSourceMode | undefined),
    sourcePath: source === undefined ? undefined : r.attr(source, 'path'),
    targetType: target === undefined ? undefined : r.attr(target, 'type'),
    targetName: target === undefined ? undefined : r.attr(target, 'name'),
    address: readAddress(r, el, path),
  });
}

function readRng(r: XmlReader, el: XmlElement, path: string): RngDef {
  const backend = r.required(el, 'backend', path);
  const rate = r.optional(el, 'rate', path);
  const source = textContent(backend).trim();
  return compact({
    model: r.requiredAttr(el, 'model', path),
    backendModel: r.requiredAttr(backend, 'model', `${path}/backend`),
    backendSource: childElements(backend).length > 0 || source === '' ? undefined : source,
    rateBytes: rate === undefined ? undefined : r.optionalIntAttr(rate, 'bytes', `${path}/rate`, 'rng rate bytes'),
    ratePeriodMs: rate === undefined ? undefined : r.optionalIntAttr(rate, 'period', `${path}/rate`, 'rng rate period'),
    address: readAddress(r, el, path),
  });
}

function readWatchdog(r: XmlReader, el: XmlElement, path: string): WatchdogDef {
  return compact({ model: r.requiredAttr(el, 'model', path), action: r.attr(el, 'action'), address: readAddress(r, el, path) });
}

function readPanic(r: XmlReader, el: XmlElement, path: string): PanicDef {
  return compact({ model: r.attr(el, 'model'), address: readAddress(r, el, path) });
}

const READERS: { [K in MoreFamily]: (r: XmlReader, el: XmlElement, path: string) => NonNullable<MoreDevicesDef[K]>[number] } = {
  videos: readVideo,
  inputs: readInput,
  controllers: readController,
  channels: readChannel,
  rngs: readRng,
  watchdogs: readWatchdog,
  panics: readPanic,
};

/** Elements of one family with their paths (counted among all siblings of the same name). */
export function familyElements(devices: XmlElement, path: string, family: MoreFamily): [XmlElement, string][] {
  const { element, match } = MORE_FAMILIES[family];
  return childrenWithPaths(devices, path, element).filter(([el]) => match(el));
}

export function readMoreDevices(r: XmlReader, devices: XmlElement, path: string): MoreDevicesDef {
  const out: MoreDevicesDef = {};
  for (const family of Object.keys(READERS) as MoreFamily[]) {
    const items = familyElements(devices, path, family).map(([el, p]) => READERS[family](r, el, p));
    if (items.length > 0) (out as Record<string, unknown>)[family] = items;
  }
  return out;
}
