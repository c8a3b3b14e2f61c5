// Readers for the modelled devices: disk, graphics, serial / console, USB controller, memballoon.
import type {
  CharDevDef,
  CharDevType,
  DeviceAddress,
  DiskBus,
  DiskCacheMode,
  DiskDef,
  DiskDevice,
  DiskDriverName,
  DiskFormat,
  DiskStartupPolicy,
  DiskType,
  GraphicsDef,
  GraphicsListenType,
  GraphicsType,
  MemballoonDef,
  MemballoonModel,
  TreeForm,
  UsbControllerDef,
  UsbControllerModel,
} from './domain-model.js';
import { childElements, getAttr } from '../xml/xml-edit.js';
import { pathStep } from '../xml/xml-errors.js';
import type { XmlReader } from '../xml/xml-read.js';
import type { XmlElement } from '../xml/xml-tree.js';

/** Drops keys whose value is undefined, so the model stays minimal JSON. */
export function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function readAlias(r: XmlReader, el: XmlElement, path: string): string | undefined {
  const a = r.optional(el, 'alias', path);
  return a === undefined ? undefined : r.requiredAttr(a, 'name', `${path}/alias`);
}

export function readAddress(r: XmlReader, el: XmlElement, path: string): DeviceAddress | undefined {
  const a = r.optional(el, 'address', path);
  if (a === undefined) return undefined;
  const type = r.requiredAttr(a, 'type', `${path}/address`);
  const out: DeviceAddress = { type };
  for (const attr of a.attrs) if (attr.name !== 'type') out[attr.name] = getAttr(a, attr.name) ?? attr.raw;
  return out;
}

export function readDisk(r: XmlReader, el: XmlElement, path: string): DiskDef<TreeForm> {
  const type = (r.attr(el, 'type') ?? 'file') as DiskType;
  const device = (r.attr(el, 'device') ?? 'disk') as DiskDevice;
  for (const single of ['source', 'readonly', 'shareable', 'boot']) r.optional(el, single, path);

  const driverEl = r.optional(el, 'driver', path);
  const sourceEl = r.optional(el, 'source', path);
  const targetEl = r.required(el, 'target', path);
  const targetPath = `${path}/target`;

  const disk: DiskDef<TreeForm> = {
    type,
    device,
    target: compact({ dev: r.requiredAttr(targetEl, 'dev', targetPath), bus: r.attr(targetEl, 'bus') as DiskBus | undefined }),
    readonly: r.optional(el, 'readonly', path) !== undefined,
    shareable: r.optional(el, 'shareable', path) !== undefined,
  };
  if (driverEl !== undefined) {
    disk.driver = compact({
      name: r.attr(driverEl, 'name') as DiskDriverName | undefined,
      type: r.attr(driverEl, 'type') as DiskFormat | undefined,
      cache: r.attr(driverEl, 'cache') as DiskCacheMode | undefined,
    });
  }
  if (sourceEl !== undefined && (type === 'file' || type === 'block')) {
    disk.source = compact({
      file: type === 'file' ? r.attr(sourceEl, 'file') : undefined,
      dev: type === 'block' ? r.attr(sourceEl, 'dev') : undefined,
      startupPolicy: r.attr(sourceEl, 'startupPolicy') as DiskStartupPolicy | undefined,
    });
  }
  const address = readAddress(r, el, path);
  if (address !== undefined) disk.address = address;
  const alias = readAlias(r, el, path);
  if (alias !== undefined) disk.alias = alias;
  return disk;
}

export function readGraphics(r: XmlReader, el: XmlElement, path: string): GraphicsDef<TreeForm> {
  const listenEls = childElements(el, 'listen');
  const g: GraphicsDef<TreeForm> = compact({
    type: r.requiredAttr(el, 'type', path) as GraphicsType,
    port: r.optionalIntAttr(el, 'port', path, 'graphics port'),
    tlsPort: r.optionalIntAttr(el, 'tlsPort', path, 'graphics TLS port'),
    autoport: r.yesNo(el, 'autoport', path),
    listen: r.attr(el, 'listen'),
    listens: listenEls.map((l, i) => {
      const lp = `${path}/${pathStep('listen', i, listenEls.length)}`;
      return compact({
        type: r.requiredAttr(l, 'type', lp) as GraphicsListenType,
        address: r.attr(l, 'address'),
        network: r.attr(l, 'network'),
        socket: r.attr(l, 'socket'),
      });
    }),
    passwd: r.attr(el, 'passwd'),
  });
  return g;
}

export function readCharDev(r: XmlReader, el: XmlElement, path: string): CharDevDef<TreeForm> {
  const source = childElements(el, 'source')[0];
  const target = r.optional(el, 'target', path);
  return compact({
    type: (r.attr(el, 'type') ?? 'pty') as CharDevType,
    sourcePath: source === undefined ? undefined : r.attr(source, 'path'),
    sourceAppend: source === undefined ? undefined : (r.attr(source, 'append') as 'on' | 'off' | undefined),
    tty: r.attr(el, 'tty'),
    targetType: target === undefined ? undefined : r.attr(target, 'type'),
    targetPort: target === undefined ? undefined : r.optionalIntAttr(target, 'port', `${path}/target`, 'target port'),
    alias: readAlias(r, el, path),
  });
}

export function readMemballoon(r: XmlReader, el: XmlElement, path: string): MemballoonDef {
  return compact({ model: r.requiredAttr(el, 'model', path) as MemballoonModel, address: readAddress(r, el, path) });
}

/** The only controller type vmferry models; the others stay preserved XML. */
export function isUsbController(el: XmlElement): boolean {
  return el.name === 'controller' && getAttr(el, 'type') === 'usb';
}

export function readUsbController(r: XmlReader, el: XmlElement, path: string): UsbControllerDef {
  return compact({
    index: r.optionalIntAttr(el, 'index', path, 'controller index'),
    model: r.attr(el, 'model') as UsbControllerModel | undefined,
    address: readAddress(r, el, path),
  });
}
