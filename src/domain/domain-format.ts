// DomainDef -> text. The preserved document is copied and every modelled value
// is written back where it came from, only when it differs from what the tree
// already says, so unmodelled content and unchanged values keep their exact
// spelling and place. A definition built in code (no preserved tree) comes out
// in libvirt's element order.
import { ErrorType, isVmError } from '../common/errors.js';
import { applyCpu } from './cpu-xml.js';
import { readGraphics } from './devices-parse.js';
import { applyDevices } from './devices-format.js';
import type { DomainDef, GraphicsDef, TreeForm } from './domain-model.js';
import { parseDomainXml } from './domain-parse.js';
import { validateTreeDef } from './domain-validate.js';
import { expandDomainDef } from './preserved.js';
import { memoryToKiB } from './memory-units.js';
import { normalizeUuid } from './uuid.js';
import {
  childElements,
  createElement,
  ensureChild,
  findChild,
  getAttr,
  insertChild,
  removeChild,
  setAttr,
  setChildAttr,
  setChildText,
  setIntAttr,
  setText,
  syncChild,
  textContent,
} from '../xml/xml-edit.js';
import { xmlError } from '../xml/xml-errors.js';
import { attempt, XmlReader } from '../xml/xml-read.js';
import { DEFAULT_MAX_XML_BYTES } from '../xml/xml-safety.js';
import { serializeXml, type XmlElement, type XmlNode } from '../xml/xml-tree.js';

/** libvirt's order of the children of <domain>. */
export const DOMAIN_ORDER = [
  'name',
  'uuid',
  'genid',
  'title',
  'description',
  'metadata',
  'maxMemory',
  'memory',
  'currentMemory',
  'blkiotune',
  'memtune',
  'memoryBacking',
  'vcpu',
  'vcpus',
  'iothreads',
  'iothreadids',
  'defaultiothread',
  'cputune',
  'numatune',
  'resource',
  'sysinfo',
  'bootloader',
  'bootloader_args',
  'os',
  'idmap',
  'throttlegroups',
  'features',
  'cpu',
  'clock',
  'on_poweroff',
  'on_reboot',
  'on_crash',
  'on_lockfailure',
  'pm',
  'perf',
  'devices',
  'seclabel',
  'keywrap',
  'launchSecurity',
] as const;
const OS_ORDER = ['type', 'firmware', 'loader', 'nvram', 'kernel', 'initrd', 'cmdline', 'shim', 'dtb', 'acpi', 'boot', 'bootmenu', 'smbios', 'bios'] as const;
const MEMORY_BACKING_ORDER = ['hugepages', 'nosharepages', 'locked', 'source', 'access', 'allocation', 'discard'] as const;

export function formatDomainXml(def: DomainDef): string {
  return formatTreeDef(expandDomainDef(def));
}

/** Formats a definition in tree form (validated first, output checked by parsing it). */
export function formatTreeDef(def: DomainDef<TreeForm>): string {
  const effective = syncGraphicsListen(def);
  validateTreeDef(effective);
  let xml: string;
  try {
    xml = serializeXml(buildDomainNodes(effective));
  } catch (err) {
    if (isVmError(err, ErrorType.XmlError)) throw err;
    throw xmlError(`preserved domain XML tree is malformed: ${err instanceof Error ? err.message : String(err)}`);
  }
  // The preserved tree may have travelled as JSON: never hand out XML that we
  // would not accept ourselves.
  parseDomainXml(xml, { maxBytes: Math.max(DEFAULT_MAX_XML_BYTES, 4 * xml.length) });
  return xml;
}

/** The document nodes for a (validated) definition. */
export function buildDomainNodes(def: DomainDef<TreeForm>): XmlNode[] {
  const nodes: XmlNode[] = def.preserved !== undefined ? structuredClone(def.preserved) : [createElement('domain'), { kind: 'text', raw: '\n' }];
  const root = nodes.find((n): n is XmlElement => n.kind === 'element');
  if (root?.name !== 'domain') throw xmlError('preserved domain XML has no <domain> root element', { path: '/domain' });
  applyDomain(root, def);
  return nodes;
}

function setMemory(root: XmlElement, name: string, kib: number): void {
  const el = findChild(root, name) ?? ensureChild(root, name, 0, DOMAIN_ORDER);
  const current = memoryToKiB(textContent(el), getAttr(el, 'unit'));
  if ('kib' in current && current.kib === kib) return;
  setAttr(el, 'unit', 'KiB');
  setText(el, String(kib));
}

function sameList(a: readonly string[], b: readonly (string | undefined)[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function applyDomain(root: XmlElement, def: DomainDef<TreeForm>): void {
  setAttr(root, 'type', def.type);
  setIntAttr(root, 'id', def.id);
  setChildText(root, 'name', def.name, 0, DOMAIN_ORDER);
  setChildText(root, 'uuid', normalizeUuid(def.uuid) ?? def.uuid, 0, DOMAIN_ORDER);
  setChildText(root, 'title', def.title, 0, DOMAIN_ORDER);
  setChildText(root, 'description', def.description, 0, DOMAIN_ORDER);
  setMemory(root, 'memory', def.memoryKiB);
  if (findChild(root, 'currentMemory') !== undefined || def.currentMemoryKiB !== def.memoryKiB) {
    setMemory(root, 'currentMemory', def.currentMemoryKiB);
  }

  syncChild(root, 'memoryBacking', def.memoryBacking, 0, DOMAIN_ORDER, (el, mb) => {
    setChildAttr(el, 'source', 'type', mb.sourceType, 1, MEMORY_BACKING_ORDER);
    setChildAttr(el, 'access', 'mode', mb.accessMode, 1, MEMORY_BACKING_ORDER);
  });

  let vcpu = findChild(root, 'vcpu');
  const wantVcpu = def.preserved === undefined || def.vcpus !== 1 || def.vcpuPlacement !== undefined || def.vcpusCurrent !== undefined;
  if (vcpu !== undefined || wantVcpu) {
    vcpu ??= ensureChild(root, 'vcpu', 0, DOMAIN_ORDER);
    setAttr(vcpu, 'placement', def.vcpuPlacement);
    setIntAttr(vcpu, 'current', def.vcpusCurrent);
    const text = textContent(vcpu).trim();
    if (!(/^[+-]?[0-9]+$/.test(text) && Number(text) === def.vcpus)) setText(vcpu, String(def.vcpus));
  }

  applyOs(findChild(root, 'os') ?? ensureChild(root, 'os', 0, DOMAIN_ORDER), def);
  applyFeatures(root, def.features);

  applyCpu(root, def.cpu, (name) => ensureChild(root, name, 0, DOMAIN_ORDER));
  syncChild(root, 'clock', def.clock, 0, DOMAIN_ORDER, (el, clock) => setAttr(el, 'offset', clock.offset));
  setChildText(root, 'on_poweroff', def.onPoweroff, 0, DOMAIN_ORDER);
  setChildText(root, 'on_reboot', def.onReboot, 0, DOMAIN_ORDER);
  setChildText(root, 'on_crash', def.onCrash, 0, DOMAIN_ORDER);
  applyDevices(root, def.devices, DOMAIN_ORDER);
}

function applyOs(os: XmlElement, def: DomainDef<TreeForm>): void {
  const type = findChild(os, 'type') ?? ensureChild(os, 'type', 1, OS_ORDER);
  setAttr(type, 'arch', def.os.arch);
  setAttr(type, 'machine', def.os.machine);
  if (textContent(type).trim() !== def.os.type) setText(type, def.os.type);
  setChildText(os, 'kernel', def.os.kernel, 1, OS_ORDER);
  setChildText(os, 'initrd', def.os.initrd, 1, OS_ORDER);
  setChildText(os, 'cmdline', def.os.cmdline, 1, OS_ORDER);
  const boots = childElements(os, 'boot');
  if (
    !sameList(
      def.os.boot,
      boots.map((b) => getAttr(b, 'dev')),
    )
  ) {
    for (const b of boots) removeChild(os, b);
    for (const dev of def.os.boot) {
      const b = createElement('boot');
      setAttr(b, 'dev', dev);
      insertChild(os, b, 1, OS_ORDER);
    }
  }
}

function applyFeatures(root: XmlElement, features: readonly string[]): void {
  const el = findChild(root, 'features');
  const current = el === undefined ? [] : childElements(el).map((f) => f.name);
  if (sameList(features, current)) return;
  if (features.length === 0) {
    if (el !== undefined) removeChild(root, el);
    return;
  }
  const target = el ?? ensureChild(root, 'features', 0, DOMAIN_ORDER);
  for (const f of childElements(target)) if (!features.includes(f.name)) removeChild(target, f);
  for (const name of features) if (findChild(target, name) === undefined) insertChild(target, createElement(name), 1, []);
}

/**
 * The `listen` attribute of <graphics> mirrors the address of its first
 * <listen>. When an edit changed only one of the two, the other follows.
 */
function syncGraphicsListen(def: DomainDef<TreeForm>): DomainDef<TreeForm> {
  let out: DomainDef<TreeForm> | undefined;
  def.devices.graphics.forEach((g: GraphicsDef<TreeForm>, i) => {
    if (g.preserved === undefined || !Array.isArray(g.listens)) return;
    const preserved = g.preserved;
    const base = attempt(() => readGraphics(new XmlReader(), preserved, ''));
    const first = g.listens[0];
    if (base === undefined || first?.type !== 'address') return;
    const baseFirst = base.listens[0]?.type === 'address' ? base.listens[0].address : undefined;
    let listen = g.listen;
    let address = first.address;
    if (listen !== base.listen && address === baseFirst && listen !== undefined && address !== undefined) address = listen;
    else if (address !== baseFirst && listen === base.listen && listen !== undefined && address !== undefined) listen = address;
    else return;
    out ??= { ...def, devices: { ...def.devices, graphics: [...def.devices.graphics] } };
    out.devices.graphics[i] = { ...g, listen, listens: [{ ...first, address }, ...g.listens.slice(1)] };
  });
  return out ?? def;
}
