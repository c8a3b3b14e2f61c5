// Between the two forms of a definition: text (public, JSON-friendly) and trees
// (what parsing produces and formatting edits). Preserved text is parsed with
// the same checks as user input; only the slot markers are extra.
import { isVmError } from '../common/errors.js';
import type { DomainDef, TextForm, TreeForm } from './domain-model.js';
import { xmlError } from '../xml/xml-errors.js';
import { checkXmlInput } from '../xml/xml-safety.js';
import { parseXmlDocument, serializeXml, type XmlElement, type XmlNode } from '../xml/xml-tree.js';

/** Preserved text was ours once; it may be as large as the largest accepted input and more. */
const PRESERVED_MAX_BYTES = 64 * 1024 * 1024;

function parsePreserved(text: unknown, what: string, rootName: string): { nodes: XmlNode[]; root: XmlElement } {
  try {
    checkXmlInput(text, PRESERVED_MAX_BYTES);
    const doc = parseXmlDocument(text, { allowSlots: rootName === 'domain' });
    if (doc.root.name !== rootName) throw xmlError(`root element is <${doc.root.name}>, expected <${rootName}>`);
    checkSlots(doc.root, false);
    return { nodes: doc.nodes, root: doc.root };
  } catch (err) {
    const message = isVmError(err) ? err.message : err instanceof Error ? err.message : String(err);
    throw xmlError(`preserved XML of ${what} is unusable: ${message}`);
  }
}

const SLOT_NAMES = new Set(['disk', 'graphics', 'serial', 'console']);

/** Slots may only stand directly in /domain/devices and only for the list devices. */
function checkSlots(el: XmlElement, inDevices: boolean): void {
  for (const c of el.children) {
    if (c.kind === 'slot' && (!inDevices || !SLOT_NAMES.has(c.name))) throw xmlError(`misplaced slot marker for <${c.name}>`);
    if (c.kind === 'element') checkSlots(c, el.name === 'domain' && c.name === 'devices');
  }
}

function expandItem(item: { preserved?: unknown }, name: string, path: string): void {
  if (item.preserved !== undefined) item.preserved = parsePreserved(item.preserved, path, name).root;
}

function list(value: unknown, what: string): { preserved?: unknown }[] {
  if (!Array.isArray(value)) throw xmlError(`${what} must be a list`, { path: '/domain/devices' });
  for (const v of value) if (v === null || typeof v !== 'object') throw xmlError(`${what} must hold objects`, { path: '/domain/devices' });
  return value as { preserved?: unknown }[];
}

/** Text form -> tree form: a deep copy, `def` itself is not changed. */
export function expandDomainDef(def: DomainDef): DomainDef<TreeForm> {
  let copy: DomainDef;
  try {
    copy = structuredClone(def);
  } catch (err) {
    throw xmlError(`domain definition is not plain data: ${err instanceof Error ? err.message : String(err)}`, { path: '/domain' });
  }
  if (copy === null || typeof copy !== 'object' || copy.devices === null || typeof copy.devices !== 'object') {
    throw xmlError('domain definition must be an object with devices', { path: '/domain' });
  }
  const d = copy.devices;
  const item = (n: string, i: number) => `/domain/devices/${n}[${i + 1}]`;
  list(d.disks, 'disks').forEach((x, i) => expandItem(x, 'disk', item('disk', i)));
  list(d.graphics, 'graphics').forEach((x, i) => expandItem(x, 'graphics', item('graphics', i)));
  list(d.serials, 'serials').forEach((x, i) => expandItem(x, 'serial', item('serial', i)));
  list(d.consoles, 'consoles').forEach((x, i) => expandItem(x, 'console', item('console', i)));
  const out = copy as unknown as DomainDef<TreeForm>;
  if (copy.preserved !== undefined) out.preserved = parsePreserved(copy.preserved, 'the domain', 'domain').nodes;
  return out;
}

function collapseItem<T extends { preserved?: XmlElement }>(item: T): Omit<T, 'preserved'> & { preserved?: string } {
  if (item.preserved === undefined) return item as Omit<T, 'preserved'>;
  return { ...item, preserved: serializeXml([item.preserved]) };
}

/** Tree form -> text form. */
export function collapseDomainDef(def: DomainDef<TreeForm>): DomainDef<TextForm> {
  const d = def.devices;
  const out: DomainDef<TextForm> = {
    ...def,
    preserved: undefined,
    devices: {
      ...d,
      disks: d.disks.map(collapseItem),
      graphics: d.graphics.map(collapseItem),
      serials: d.serials.map(collapseItem),
      consoles: d.consoles.map(collapseItem),
    },
  };
  if (def.preserved === undefined) delete out.preserved;
  else out.preserved = serializeXml(def.preserved, true);
  return out;
}
