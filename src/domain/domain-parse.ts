// Text -> DomainDef: safety checks, the ordered tree, the typed model read from
// it (list devices cut out into slots, each keeping its own element), then
// validation with line and column for every complaint.
import { compact, isUsbController, readCharDev, readDisk, readGraphics, readMemballoon, readUsbController } from './devices-parse.js';
import { readMoreDevices } from './devices-more-parse.js';
import type {
  BootDevice,
  CharDevDef,
  ClockOffset,
  CrashAction,
  DevicesDef,
  DiskDef,
  DomainDef,
  DomainType,
  GraphicsDef,
  LifecycleAction,
  MemoryAccessMode,
  MemoryBackingDef,
  MemorySourceType,
  OsDef,
  OsType,
  TreeForm,
  VcpuPlacement,
} from './domain-model.js';
import { readCpu } from './cpu-xml.js';
import { validateTreeDef } from './domain-validate.js';
import { readInterfaces } from './interface-parse.js';
import { collapseDomainDef } from './preserved.js';
import { parseMemoryKiB } from './memory-units.js';
import { generateUuid, normalizeUuid } from './uuid.js';
import { childElements } from '../xml/xml-edit.js';
import { pathStep } from '../xml/xml-errors.js';
import { XmlReader } from '../xml/xml-read.js';
import { checkXmlInput, DEFAULT_MAX_XML_BYTES } from '../xml/xml-safety.js';
import { parseXmlDocument, type XmlElement } from '../xml/xml-tree.js';

export interface ParseDomainOptions {
  /** Refuse larger input (UTF-8 bytes); default DEFAULT_MAX_XML_BYTES (1 MiB). */
  maxBytes?: number;
}

/** Element names of the devices that live in DevicesDef lists, and their list. */
export const DEVICE_LISTS = { disk: 'disks', graphics: 'graphics', serial: 'serials', console: 'consoles' } as const;
export type DeviceListElement = keyof typeof DEVICE_LISTS;

const TOP_SINGLETONS = [
  'name',
  'uuid',
  'title',
  'description',
  'memory',
  'currentMemory',
  'vcpu',
  'os',
  'cpu',
  'features',
  'clock',
  'on_poweroff',
  'on_reboot',
  'on_crash',
  'memoryBacking',
  'devices',
] as const;

export function parseDomainXml(xml: string, opts?: ParseDomainOptions): DomainDef {
  checkXmlInput(xml, opts?.maxBytes ?? DEFAULT_MAX_XML_BYTES);
  const doc = parseXmlDocument(xml);
  const reader = new XmlReader(doc.locate);
  const def = domainFromTree(reader, doc.root);
  def.preserved = doc.nodes;
  validateTreeDef(def, doc.locate);
  return collapseDomainDef(def);
}

export function readMemoryElement(r: XmlReader, el: XmlElement, path: string): number {
  return parseMemoryKiB(r.text(el, path), r.attr(el, 'unit'), r.where(path));
}

export function readVcpu(r: XmlReader, el: XmlElement, path: string): Pick<DomainDef, 'vcpus' | 'vcpuPlacement' | 'vcpusCurrent'> {
  return compact({
    vcpus: r.integer(r.text(el, path), path, 'vcpu count'),
    vcpuPlacement: r.attr(el, 'placement') as VcpuPlacement | undefined,
    vcpusCurrent: r.optionalIntAttr(el, 'current', path, 'current vcpu count'),
  });
}

export function readOs(r: XmlReader, el: XmlElement, path: string): OsDef {
  const typeEl = r.required(el, 'type', path);
  const text = (name: string): string | undefined => {
    const child = r.optional(el, name, path);
    return child === undefined ? undefined : r.text(child, `${path}/${name}`);
  };
  const boots = childElements(el, 'boot');
  return compact({
    type: r.text(typeEl, `${path}/type`).trim() as OsType,
    arch: r.attr(typeEl, 'arch'),
    machine: r.attr(typeEl, 'machine'),
    boot: boots.map((b, i) => r.requiredAttr(b, 'dev', `${path}/${pathStep('boot', i, boots.length)}`) as BootDevice),
    kernel: text('kernel'),
    initrd: text('initrd'),
    cmdline: text('cmdline'),
  });
}

export function readMemoryBacking(r: XmlReader, el: XmlElement, path: string): MemoryBackingDef {
  const source = r.optional(el, 'source', path);
  const access = r.optional(el, 'access', path);
  return compact({
    sourceType: source === undefined ? undefined : (r.attr(source, 'type') as MemorySourceType | undefined),
    accessMode: access === undefined ? undefined : (r.attr(access, 'mode') as MemoryAccessMode | undefined),
  });
}

export function readFeatures(el: XmlElement): string[] {
  return childElements(el).map((f) => f.name);
}

function readDevices(r: XmlReader, el: XmlElement | undefined, path: string): DevicesDef<TreeForm> {
  const devices: DevicesDef<TreeForm> = { disks: [], graphics: [], serials: [], consoles: [] };
  if (el === undefined) return devices;
  const emulator = r.optional(el, 'emulator', path);
  if (emulator !== undefined) devices.emulator = r.text(emulator, `${path}/emulator`);
  const balloon = r.optional(el, 'memballoon', path);
  if (balloon !== undefined) devices.memballoon = readMemballoon(r, balloon, `${path}/memballoon`);
  const controllers = childElements(el, 'controller');
  const usb = controllers.flatMap((c, i) => (isUsbController(c) ? [readUsbController(r, c, `${path}/${pathStep('controller', i, controllers.length)}`)] : []));
  if (usb.length > 0) devices.usbControllers = usb;
  Object.assign(devices, readMoreDevices(r, el, path));
  const interfaces = readInterfaces(r, el, path);
  if (interfaces !== undefined) devices.interfaces = interfaces;

  const counts = new Map<string, number>();
  for (const c of childElements(el)) counts.set(c.name, (counts.get(c.name) ?? 0) + 1);
  const seen = new Map<string, number>();
  el.children = el.children.map((child) => {
    if (child.kind !== 'element' || !Object.prototype.hasOwnProperty.call(DEVICE_LISTS, child.name)) return child;
    const name = child.name as DeviceListElement;
    const index = seen.get(name) ?? 0;
    seen.set(name, index + 1);
    const p = `${path}/${pathStep(name, index, counts.get(name) ?? 1)}`;
    if (name === 'disk') {
      const d: DiskDef<TreeForm> = readDisk(r, child, p);
      d.preserved = child;
      devices.disks.push(d);
    } else if (name === 'graphics') {
      const g: GraphicsDef<TreeForm> = readGraphics(r, child, p);
      g.preserved = child;
      devices.graphics.push(g);
    } else {
      const c: CharDevDef<TreeForm> = readCharDev(r, child, p);
      c.preserved = child;
      (name === 'serial' ? devices.serials : devices.consoles).push(c);
    }
    return { kind: 'slot', name };
  });
  return devices;
}

/** Reads the model out of a `<domain>` element; list devices move out of the tree into slots. */
export function domainFromTree(r: XmlReader, root: XmlElement): DomainDef<TreeForm> {
  if (root.name !== 'domain') r.fail(`root element is <${root.name}>, expected <domain>`, `/${root.name}`);
  const P = '/domain';
  for (const name of TOP_SINGLETONS) r.optional(root, name, P);
  const text = (name: string): string | undefined => {
    const el = r.optional(root, name, P);
    return el === undefined ? undefined : r.text(el, `${P}/${name}`);
  };

  const uuidText = text('uuid');
  let uuid: string;
  if (uuidText === undefined) {
    uuid = generateUuid();
  } else {
    const normal = normalizeUuid(uuidText);
    if (normal === undefined) r.fail(`invalid UUID '${uuidText}'`, `${P}/uuid`);
    uuid = normal;
  }

  const cpuEl = r.optional(root, 'cpu', P);
  const cpu = cpuEl === undefined ? undefined : readCpu(r, cpuEl, `${P}/cpu`);
  // libvirt: with NUMA cells the guest's memory is their sum, and <memory> may be left out.
  const memoryEl = cpu?.numaMemoryKiB === undefined ? r.required(root, 'memory', P) : r.optional(root, 'memory', P);
  const memoryKiB = cpu?.numaMemoryKiB ?? readMemoryElement(r, memoryEl!, `${P}/memory`);
  const currentEl = r.optional(root, 'currentMemory', P);
  const vcpuEl = r.optional(root, 'vcpu', P);
  const featuresEl = r.optional(root, 'features', P);
  const clockEl = r.optional(root, 'clock', P);
  const backingEl = r.optional(root, 'memoryBacking', P);
  const idText = r.attr(root, 'id');

  const def: DomainDef<TreeForm> = compact({
    type: r.requiredAttr(root, 'type', P) as DomainType,
    id: idText === undefined ? undefined : r.integer(idText, `${P}/@id`, 'domain id'),
    name: r.text(r.required(root, 'name', P), `${P}/name`),
    uuid,
    title: text('title'),
    description: text('description'),
    memoryKiB,
    currentMemoryKiB: currentEl === undefined ? memoryKiB : readMemoryElement(r, currentEl, `${P}/currentMemory`),
    ...(vcpuEl === undefined ? { vcpus: 1 } : readVcpu(r, vcpuEl, `${P}/vcpu`)),
    os: readOs(r, r.required(root, 'os', P), `${P}/os`),
    cpu: cpu?.cpu,
    features: featuresEl === undefined ? [] : readFeatures(featuresEl),
    clock: clockEl === undefined ? undefined : compact({ offset: r.attr(clockEl, 'offset') as ClockOffset | undefined }),
    onPoweroff: text('on_poweroff') as LifecycleAction | undefined,
    onReboot: text('on_reboot') as LifecycleAction | undefined,
    onCrash: text('on_crash') as CrashAction | undefined,
    memoryBacking: backingEl === undefined ? undefined : readMemoryBacking(r, backingEl, `${P}/memoryBacking`),
    devices: readDevices(r, r.optional(root, 'devices', P), `${P}/devices`),
  });
  return def;
}
