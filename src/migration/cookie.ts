// The migration cookie: the small XML document each phase of a v3 migration
// hands to the next one, in libvirt's <qemu-migration> shape. It carries the
// domain's name and UUID, the sending host's name and UUID, the features the
// receiver must understand (<feature name='...'/>, mandatory ones only), and
// one element per optional piece of data: graphics relocation, lock state, the
// persistent definition, network port data, NBD, statistics, capabilities.
//
// Parsing treats the text as hostile: the size is checked before anything
// else, DTDs are refused, the text must be well-formed, and a cookie about
// another domain or with a mandatory feature this side does not understand is
// refused, the way libvirt refuses it. Unknown optional elements are ignored.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { ApplicationFailure } from '@temporalio/common';
import { ErrorType, vmError } from '../common/errors.js';
import { normalizeUuid } from '../domain/uuid.js';

/** libvirt's cookie feature names, in libvirt's order (the order <feature> elements are written in). */
export const COOKIE_FEATURES = [
  'graphics',
  'lockstate',
  'persistent',
  'network',
  'nbd',
  'statistics',
  'memory-hotplug',
  'cpu-hotplug',
  'cpu',
  'allowReboot',
  'capabilities',
  'block-dirty-bitmaps',
] as const;

export type CookieFeature = (typeof COOKIE_FEATURES)[number];

/** The features whose data this module reads and writes; the default for `understood`. */
export const MODELLED_FEATURES: readonly CookieFeature[] = ['graphics', 'lockstate', 'persistent', 'network', 'nbd', 'statistics', 'capabilities'];

// libvirt's RPC caps a cookie at 4 MiB (REMOTE_MIGRATE_COOKIE_MAX, 16 KiB in old releases); ours stays at 16 KiB, so a persistent <domain> over ~15 KiB cannot travel in a cookie.
export const MAX_COOKIE_BYTES = 16 * 1024;

/** libvirt's graphics types (virDomainGraphicsType). */
export const GRAPHICS_TYPES = ['sdl', 'vnc', 'rdp', 'desktop', 'spice', 'egl-headless', 'dbus'] as const;
export type GraphicsType = (typeof GRAPHICS_TYPES)[number];

export interface CookieGraphics {
  type: GraphicsType;
  port: number;
  /** Written for spice only; -1 when spice runs without TLS. */
  tlsPort?: number;
  listen: string;
  /** Subject of the destination's TLS server certificate (<cert info='subject' value='...'/>). */
  tlsSubject?: string;
}

export interface CookieNetInterface {
  /** Index of the interface in the domain definition. */
  index?: number;
  /** virtualport type: 802.1Qbg, 802.1Qbh, openvswitch, midonet, ... */
  vporttype: string;
  portdata?: string;
}

export interface CookieNbd {
  /** Port of the destination's NBD server (absent when not known yet). */
  port?: number;
  disks: { target: string; capacityBytes: number }[];
}

export interface CookieCapability {
  name: string;
  auto: boolean;
}

/** Statistics elements libvirt writes, in its order; `delta` is the only signed one. */
export const COOKIE_STATS_FIELDS = [
  'started',
  'stopped',
  'sent',
  'delta',
  'time_elapsed',
  'downtime',
  'setup_time',
  'memory_total',
  'memory_processed',
  'memory_remaining',
  'memory_bps',
  'memory_constant',
  'memory_normal',
  'memory_normal_bytes',
  'memory_dirty_rate',
  'memory_iteration',
  'memory_postcopy_requests',
  'memory_page_size',
  'disk_total',
  'disk_processed',
  'disk_remaining',
  'disk_bps',
  'compression_cache',
  'compression_bytes',
  'compression_pages',
  'compression_cache_misses',
  'compression_overflow',
  'auto_converge_throttle',
] as const;

const STATS_FIELD_SET: ReadonlySet<string> = new Set(COOKIE_STATS_FIELDS);

export interface MigrationCookie {
  /** Domain name (libvirt writes the original name when the destination renames). */
  name: string;
  /** Domain UUID, dashed lowercase after parsing. */
  uuid: string;
  /** Name of the host that wrote the cookie. */
  hostname: string;
  /** UUID of the host that wrote the cookie, dashed lowercase after parsing. */
  hostuuid: string;
  /**
   * What the cookie carries: one entry per data element present and understood,
   * plus every mandatory feature. Parsing fills it; formatting requires every
   * data element given to be listed here (libvirt writes an element only when
   * both its flag and its data are set).
   */
  features: CookieFeature[];
  /**
   * Features the receiver must understand (<feature name='...'/>). Formatting
   * adds 'lockstate' whenever features lists it and 'persistent' whenever a
   * persistent definition is present, as libvirt marks them.
   */
  mandatory: CookieFeature[];
  graphics?: CookieGraphics;
  lockState?: { driver: string; leases?: string };
  /** The persistent definition, kept as the raw <domain>...</domain> text. */
  persistentXml?: string;
  network?: { interfaces: CookieNetInterface[] };
  nbd?: CookieNbd;
  /** <statistics>: element name to value (ms, bytes, bytes/s, pages as libvirt has them). */
  stats?: Record<string, number>;
  capabilities?: CookieCapability[];
}

export interface CookieExpectation {
  /** The domain the cookie must be about (libvirt compares the original name). */
  name: string;
  uuid: string;
  /** Features this side understands in this phase; default MODELLED_FEATURES. Data of other features is ignored. */
  understood?: readonly CookieFeature[];
  /** This host's UUID: a cookie written by this same host is refused (same-host migration). */
  localHostUuid?: string;
}

const FEATURE_SET: ReadonlySet<string> = new Set(COOKIE_FEATURES);
const GRAPHICS_SET: ReadonlySet<string> = new Set(GRAPHICS_TYPES);
const ROOT = 'qemu-migration';
const MAX_DEPTH = 8;

// ---------------------------------------------------------------------------
// Text helpers

// C0 controls other than tab, LF and CR, U+FFFE/U+FFFF and unpaired surrogates.
const BAD_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const DTD_KEYWORD = /<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/i;
const COMMENT_OR_CDATA = /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>/g;
// Simple classes, no nested quantifiers: linear on any input.
const TAG_NAME = /<\/?([^\s/>!?]+)/g;
const ATTR_NAME = /\s([^\s=<>/"']+)\s*=\s*["']/g;

/** Names that would reach object keys somewhere (prototype pollution). */
function isForbiddenName(name: string): boolean {
  const local = name.slice(name.lastIndexOf(':') + 1);
  return [name, local].some((n) => n === 'prototype' || Object.prototype.hasOwnProperty.call(Object.prototype, n));
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

function escapeText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function escapeAttr(s: string): string {
  return escapeText(s).replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

// ---------------------------------------------------------------------------
// Errors

interface Where {
  path: string;
  offset?: number;
}

class CookieReader {
  constructor(private readonly xml: string) {}

  private where(where: Where): { suffix: string; details: Record<string, unknown> } {
    const pos = where.offset === undefined ? undefined : lineColumn(this.xml, where.offset);
    const suffix = ` at ${where.path}${pos ? ` (line ${pos.line}, column ${pos.column})` : ''}`;
    return { suffix, details: { path: where.path, ...(pos ?? {}) } };
  }

  /** A malformed cookie. */
  xml_(message: string, where: Where, details?: Record<string, unknown>): ApplicationFailure {
    const w = this.where(where);
    return vmError(ErrorType.XmlError, `migration cookie: ${message}${w.suffix}`, { ...details, ...w.details });
  }

  /** A well-formed cookie this side must refuse (other domain, same host, unsupported feature). */
  invalid(message: string, where: Where, details?: Record<string, unknown>): ApplicationFailure {
    const w = this.where(where);
    return vmError(ErrorType.OperationInvalid, `migration cookie: ${message}${w.suffix}`, { ...details, ...w.details });
  }

  /** Decodes the five predefined entities and character references; anything else is refused. */
  decode(raw: string, where: Where): string {
    if (!raw.includes('&')) return raw;
    return raw.replace(/&([^;&\s]{0,12});?/g, (m, body: string) => {
      if (!m.endsWith(';')) throw this.xml_(`stray '&' in '${raw.slice(0, 40)}'`, where);
      const named = PREDEFINED[body];
      if (named !== undefined && Object.prototype.hasOwnProperty.call(PREDEFINED, body)) return named;
      const num = /^#([0-9]{1,7})$/.exec(body) ?? /^#x([0-9a-fA-F]{1,6})$/.exec(body);
      if (num) {
        const cp = Number.parseInt(num[1] ?? '', body.startsWith('#x') ? 16 : 10);
        if (!isXmlChar(cp)) throw this.xml_(`character reference '${m}' is not an XML character`, where);
        return String.fromCodePoint(cp);
      }
      throw this.xml_(`entity '${m}' is not defined (no DTDs)`, where);
    });
  }
}

// ---------------------------------------------------------------------------
// Tree

interface Element {
  name: string;
  attrs: Map<string, string>;
  children: Element[];
  text: string;
  /** Offsets of the element in the input (start of '<', just after the closing '>'). */
  start: number;
  end: number;
  path: string;
}

type FxpEntry = Record<string, unknown>;

const META = XMLParser.getMetaDataSymbol() as unknown as symbol;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  cdataPropName: '#cdata',
  captureMetaData: true,
  // The persistent definition is kept as text for the domain module; its content is not walked.
  stopNodes: [`${ROOT}.domain`],
});

function buildTree(r: CookieReader, entries: unknown, parentPath: string, depth: number): { elements: Element[]; text: string } {
  const elements: Element[] = [];
  let text = '';
  if (!Array.isArray(entries)) return { elements, text };
  const nameOf = (entry: FxpEntry): string | undefined =>
    Object.prototype.hasOwnProperty.call(entry, '#text') || Object.prototype.hasOwnProperty.call(entry, '#cdata')
      ? undefined
      : Object.keys(entry).find((k) => k !== ':@');
  // Same-name siblings get XPath-style [i] steps, counted up front.
  const totals = new Map<string, number>();
  for (const entry of entries as FxpEntry[]) {
    const n = nameOf(entry);
    if (n !== undefined) totals.set(n, (totals.get(n) ?? 0) + 1);
  }
  const counts = new Map<string, number>();
  for (const entry of entries as FxpEntry[]) {
    if (Object.prototype.hasOwnProperty.call(entry, '#text')) {
      text += r.decode(String(entry['#text']), { path: parentPath });
      continue;
    }
    if (Object.prototype.hasOwnProperty.call(entry, '#cdata')) {
      const inner = entry['#cdata'];
      if (Array.isArray(inner)) for (const t of inner as FxpEntry[]) text += String(t['#text'] ?? '');
      continue;
    }
    const name = nameOf(entry);
    if (name === undefined) continue;
    const meta = (entry as Record<symbol, { startIndex?: number; endIndex?: number } | undefined>)[META];
    const start = meta?.startIndex ?? 0;
    const end = meta?.endIndex ?? start;
    const n = (counts.get(name) ?? 0) + 1;
    counts.set(name, n);
    const path = `${parentPath}/${name}${(totals.get(name) ?? 1) > 1 ? `[${n}]` : ''}`;
    if (depth > MAX_DEPTH) throw r.xml_(`elements nested deeper than ${MAX_DEPTH} levels`, { path, offset: start });
    const attrs = new Map<string, string>();
    const rawAttrs = entry[':@'];
    if (rawAttrs !== null && typeof rawAttrs === 'object') {
      for (const [k, v] of Object.entries(rawAttrs as Record<string, unknown>)) {
        const value = String(v);
        if (value.includes('<')) throw r.xml_(`'<' is not allowed in attribute '${k}'`, { path: `${path}/@${k}`, offset: start });
        attrs.set(k, r.decode(value, { path: `${path}/@${k}`, offset: start }));
      }
    }
    // The persistent definition is a stop node: its raw text is sliced out by offsets, not walked.
    const inner = depth === 2 && name === 'domain' ? { elements: [], text: '' } : buildTree(r, entry[name], path, depth + 1);
    elements.push({ name, attrs, children: inner.elements, text: inner.text, start, end, path });
  }
  return { elements, text };
}

function parseTree(r: CookieReader, xml: string): Element {
  let out: unknown;
  try {
    out = parser.parse(xml);
  } catch (err) {
    throw r.xml_(`not well-formed: ${err instanceof Error ? err.message : String(err)}`, { path: '/' });
  }
  const { elements } = buildTree(r, out, '', 1);
  if (elements.length !== 1) throw r.xml_(`expected one root element, found ${elements.length}`, { path: '/' });
  const root = elements[0] as Element;
  if (root.name !== ROOT) throw r.xml_(`root element is <${root.name}>, expected <${ROOT}>`, { path: root.path, offset: root.start });
  return root;
}

// ---------------------------------------------------------------------------
// Readers on the tree

function children(el: Element, name: string): Element[] {
  return el.children.filter((c) => c.name === name);
}

function optionalChild(r: CookieReader, el: Element, name: string): Element | undefined {
  const found = children(el, name);
  const second = found[1];
  if (second) throw r.xml_(`<${name}> may appear only once, found ${found.length}`, { path: second.path, offset: second.start });
  return found[0];
}

/** Text of a child element that must be present, once, and not empty (libvirt treats empty as missing). */
function requiredText(r: CookieReader, el: Element, name: string): { value: string; where: Where } {
  const child = optionalChild(r, el, name);
  if (!child) throw r.xml_(`missing <${name}> element`, { path: `${el.path}/${name}`, offset: el.start });
  const where = { path: child.path, offset: child.start };
  if (child.children.length > 0) throw r.xml_(`<${name}> must contain text only`, where);
  if (child.text === '') throw r.xml_(`<${name}> is empty`, where);
  return { value: child.text, where };
}

function requiredAttr(r: CookieReader, el: Element, name: string): string {
  const v = el.attrs.get(name);
  if (v === undefined || v === '') throw r.xml_(`missing attribute '${name}'`, { path: `${el.path}/@${name}`, offset: el.start });
  return v;
}

function integer(r: CookieReader, text: string, where: Where, what: string, min: number, max: number): number {
  if (!/^-?[0-9]{1,20}$/.test(text)) throw r.xml_(`${what} '${text.slice(0, 40)}' is not an integer`, where);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw r.xml_(`${what} ${text} is out of range ${min}..${max}`, where);
  return n;
}

function intAttr(r: CookieReader, el: Element, name: string, what: string, min: number, max: number): number | undefined {
  const v = el.attrs.get(name);
  return v === undefined ? undefined : integer(r, v, { path: `${el.path}/@${name}`, offset: el.start }, what, min, max);
}

function uuidText(r: CookieReader, el: Element, name: string): { value: string; where: Where } {
  const t = requiredText(r, el, name);
  const value = normalizeUuid(t.value);
  if (value === undefined) throw r.xml_(`<${name}> '${t.value.slice(0, 60)}' is not a UUID`, t.where);
  return { value, where: t.where };
}

// ---------------------------------------------------------------------------
// Parse

export function parseMigrationCookie(xml: string, expect: CookieExpectation): MigrationCookie {
  if (typeof xml !== 'string') {
    throw vmError(ErrorType.XmlError, `migration cookie must be a string, got ${xml === null ? 'null' : typeof xml}`);
  }
  // Size first, before the text is looked at any further.
  const sizeBytes = xml.length > MAX_COOKIE_BYTES ? xml.length : Buffer.byteLength(xml, 'utf8');
  if (sizeBytes > MAX_COOKIE_BYTES) {
    throw vmError(
      ErrorType.XmlError,
      `migration cookie is too large: ${xml.length > MAX_COOKIE_BYTES ? 'more than ' : ''}${sizeBytes} bytes, limit ${MAX_COOKIE_BYTES}`,
      {
        sizeBytes,
        maxBytes: MAX_COOKIE_BYTES,
      },
    );
  }
  const expectedUuid = normalizeUuid(String(expect.uuid));
  if (typeof expect.name !== 'string' || expect.name === '' || expectedUuid === undefined) {
    throw vmError(
      ErrorType.InternalError,
      `parseMigrationCookie needs the expected domain's name and UUID, got '${String(expect.name)}' / '${String(expect.uuid)}'`,
    );
  }
  const localHostUuid = expect.localHostUuid === undefined ? undefined : normalizeUuid(expect.localHostUuid);
  if (expect.localHostUuid !== undefined && localHostUuid === undefined) {
    throw vmError(ErrorType.InternalError, `local host UUID '${expect.localHostUuid}' is not a UUID`);
  }

  const r = new CookieReader(xml);
  if (xml.trim() === '') throw r.xml_('empty document', { path: '/' });
  const bad = BAD_CHAR.exec(xml);
  if (bad) {
    const code = bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    throw r.xml_(`character U+${code} is not allowed in XML`, { path: '/', offset: bad.index });
  }
  const dtd = DTD_KEYWORD.exec(xml);
  if (dtd) throw r.xml_(`<!${(dtd[1] ?? '').toUpperCase()}> declarations are not accepted (no DTDs, no entities)`, { path: '/', offset: dtd.index });
  const valid = XMLValidator.validate(xml, { allowBooleanAttributes: false });
  if (valid !== true) {
    const { line, col, msg } = valid.err;
    throw vmError(ErrorType.XmlError, `migration cookie: not well-formed: ${msg} (line ${line}, column ${col})`, { line, column: col, code: valid.err.code });
  }
  // Element and attribute names that would become object keys in the parser's output.
  const markup = xml.replace(COMMENT_OR_CDATA, (m) => m.replace(/[^\n]/g, ' '));
  for (const re of [TAG_NAME, ATTR_NAME]) {
    for (const m of markup.matchAll(re)) {
      const n = m[1] ?? '';
      if (isForbiddenName(n)) throw r.xml_(`name '${n}' is not allowed`, { path: '/', offset: m.index });
    }
  }

  const root = parseTree(r, xml);

  // Identity: the domain this cookie is about, and the host that wrote it.
  const name = requiredText(r, root, 'name');
  if (name.value !== expect.name) {
    throw r.invalid(`cookie is about domain '${name.value}', expected '${expect.name}'`, name.where, { got: name.value, expected: expect.name });
  }
  const uuid = uuidText(r, root, 'uuid');
  if (uuid.value !== expectedUuid) {
    throw r.invalid(`cookie is about domain UUID ${uuid.value}, expected ${expectedUuid}`, uuid.where, { got: uuid.value, expected: expectedUuid });
  }
  const hostname = requiredText(r, root, 'hostname').value;
  const hostuuid = uuidText(r, root, 'hostuuid');
  if (localHostUuid !== undefined && hostuuid.value === localHostUuid) {
    throw r.invalid(`cookie comes from this same host (host UUID ${hostuuid.value}): migrating to the same host is refused`, hostuuid.where);
  }

  // Mandatory features: an unknown name or one this side does not understand refuses the cookie.
  const understood = new Set<CookieFeature>(expect.understood ?? MODELLED_FEATURES);
  const mandatory = new Set<CookieFeature>();
  for (const f of children(root, 'feature')) {
    const fname = requiredAttr(r, f, 'name');
    const where = { path: `${f.path}/@name`, offset: f.start };
    if (!FEATURE_SET.has(fname)) throw r.invalid(`unknown mandatory feature '${fname}'`, where, { feature: fname });
    if (!understood.has(fname as CookieFeature)) {
      throw r.invalid(`mandatory feature '${fname}' is not supported here`, where, { feature: fname, understood: [...understood] });
    }
    mandatory.add(fname as CookieFeature);
  }

  const cookie: MigrationCookie = { name: name.value, uuid: uuid.value, hostname, hostuuid: hostuuid.value, features: [], mandatory: [] };
  const present = new Set<CookieFeature>(mandatory);
  const section = (feature: CookieFeature, element: string): Element | undefined => {
    if (!understood.has(feature)) return undefined;
    const el = optionalChild(r, root, element);
    if (el) present.add(feature);
    return el;
  };

  const graphics = section('graphics', 'graphics');
  if (graphics) cookie.graphics = readGraphics(r, graphics);

  const lock = section('lockstate', 'lockstate');
  if (lock) {
    const driver = requiredAttr(r, lock, 'driver');
    const leases = optionalChild(r, lock, 'leases');
    if (leases && leases.children.length > 0) throw r.xml_('<leases> must contain text only', { path: leases.path, offset: leases.start });
    cookie.lockState = leases && leases.text !== '' ? { driver, leases: leases.text } : { driver };
  }

  const domain = section('persistent', 'domain');
  if (domain) cookie.persistentXml = xml.slice(domain.start, domain.end);
  else if (mandatory.has('persistent'))
    throw r.xml_("feature 'persistent' is mandatory but there is no <domain> element", { path: `${root.path}/domain`, offset: root.start });

  const network = section('network', 'network');
  if (network) {
    cookie.network = {
      interfaces: children(network, 'interface').map((i) => {
        const index = intAttr(r, i, 'index', 'interface index', 0, 65535);
        const portdata = optionalChild(r, i, 'portdata');
        return {
          ...(index !== undefined ? { index } : {}),
          vporttype: requiredAttr(r, i, 'vporttype'),
          ...(portdata && portdata.text !== '' ? { portdata: portdata.text } : {}),
        };
      }),
    };
  }

  const nbd = section('nbd', 'nbd');
  if (nbd) {
    const port = intAttr(r, nbd, 'port', 'NBD port', 0, 65535);
    cookie.nbd = {
      ...(port !== undefined && port !== 0 ? { port } : {}),
      disks: children(nbd, 'disk').map((d) => ({
        target: requiredAttr(r, d, 'target'),
        capacityBytes: integer(
          r,
          requiredAttr(r, d, 'capacity'),
          { path: `${d.path}/@capacity`, offset: d.start },
          'disk capacity',
          0,
          Number.MAX_SAFE_INTEGER,
        ),
      })),
    };
  }

  const stats = section('statistics', 'statistics');
  if (stats) {
    const values: Record<string, number> = {};
    for (const field of COOKIE_STATS_FIELDS) {
      const el = optionalChild(r, stats, field);
      if (!el) continue;
      const min = field === 'delta' || field === 'auto_converge_throttle' ? Number.MIN_SAFE_INTEGER : 0;
      values[field] = integer(r, el.text.trim(), { path: el.path, offset: el.start }, field, min, Number.MAX_SAFE_INTEGER);
    }
    cookie.stats = values;
  }

  const caps = section('capabilities', 'capabilities');
  if (caps) {
    cookie.capabilities = children(caps, 'cap').map((c) => ({ name: requiredAttr(r, c, 'name'), auto: c.attrs.get('auto') === 'yes' }));
  }

  cookie.features = COOKIE_FEATURES.filter((f) => present.has(f));
  cookie.mandatory = COOKIE_FEATURES.filter((f) => mandatory.has(f));
  return cookie;
}

function readGraphics(r: CookieReader, el: Element): CookieGraphics {
  const type = requiredAttr(r, el, 'type');
  if (!GRAPHICS_SET.has(type)) throw r.xml_(`unknown graphics type '${type}'`, { path: `${el.path}/@type`, offset: el.start });
  const port = intAttr(r, el, 'port', 'graphics port', -1, 65535);
  if (port === undefined) throw r.xml_("missing attribute 'port'", { path: `${el.path}/@port`, offset: el.start });
  const listen = requiredAttr(r, el, 'listen');
  const g: CookieGraphics = { type: type as GraphicsType, port, listen };
  if (type === 'spice') {
    const tlsPort = intAttr(r, el, 'tlsPort', 'graphics TLS port', -1, 65535);
    if (tlsPort === undefined) throw r.xml_("missing attribute 'tlsPort' (required for spice)", { path: `${el.path}/@tlsPort`, offset: el.start });
    g.tlsPort = tlsPort;
  }
  const cert = el.children.find((c) => c.name === 'cert' && c.attrs.get('info') === 'subject');
  const subject = cert?.attrs.get('value');
  if (subject !== undefined && subject !== '') g.tlsSubject = subject;
  return g;
}

// ---------------------------------------------------------------------------
// Format

function formatError(message: string, details?: Record<string, unknown>): ApplicationFailure {
  return vmError(ErrorType.OperationInvalid, `cannot format migration cookie: ${message}`, details);
}

function checkText(what: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw formatError(`${what} must be a non-empty string`);
  if (BAD_CHAR.test(value)) throw formatError(`${what} contains a character XML does not allow`);
  return value;
}

function checkInt(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw formatError(`${what} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

function checkUuid(what: string, value: unknown): string {
  const u = typeof value === 'string' ? normalizeUuid(value) : undefined;
  if (u === undefined) throw formatError(`${what} '${String(value)}' is not a UUID`);
  return u;
}

const domainProbe = new XMLParser({ preserveOrder: true, ignoreAttributes: false, processEntities: false, stopNodes: ['domain'] });

/** The persistent definition goes in verbatim, so it must be exactly one well-formed <domain> element. */
function checkDomainXml(raw: unknown): string {
  const text = checkText('persistent definition', raw).trim();
  if (DTD_KEYWORD.test(text)) throw formatError('persistent definition must not contain DTD declarations');
  if (!/^<domain[\s/>]/.test(text) || !/(<\/domain\s*>|\/>)$/.test(text)) {
    throw formatError('persistent definition must be a single <domain> element (no declaration, no surrounding text)');
  }
  if (XMLValidator.validate(text) !== true) throw formatError('persistent definition is not well-formed XML');
  // Exactly one root element (the validator accepts several).
  let out: unknown;
  try {
    out = domainProbe.parse(text);
  } catch (err) {
    throw formatError(`persistent definition is not well-formed XML: ${err instanceof Error ? err.message : String(err)}`);
  }
  const roots = (Array.isArray(out) ? (out as FxpEntry[]) : []).filter((e) => !Object.prototype.hasOwnProperty.call(e, '#text'));
  if (roots.length !== 1) throw formatError(`persistent definition must hold one root element, found ${roots.length}`);
  return text;
}

export function formatMigrationCookie(c: MigrationCookie): string {
  const features = new Set<string>(c.features);
  for (const f of [...c.features, ...c.mandatory]) {
    if (!FEATURE_SET.has(f)) throw formatError(`unknown feature '${String(f)}'`);
  }
  const needs = (feature: CookieFeature, present: boolean): boolean => {
    if (present && !features.has(feature)) throw formatError(`data for '${feature}' is present but '${feature}' is not in features`, { feature });
    return present;
  };

  const out: string[] = ['<qemu-migration>'];
  out.push(`  <name>${escapeText(checkText('domain name', c.name))}</name>`);
  out.push(`  <uuid>${checkUuid('domain UUID', c.uuid)}</uuid>`);
  out.push(`  <hostname>${escapeText(checkText('host name', c.hostname))}</hostname>`);
  out.push(`  <hostuuid>${checkUuid('host UUID', c.hostuuid)}</hostuuid>`);

  // libvirt marks lock state mandatory whenever it is added, and a persistent definition likewise.
  const mandatory = new Set<string>(c.mandatory);
  if (features.has('lockstate')) mandatory.add('lockstate');
  if (c.persistentXml !== undefined) mandatory.add('persistent');
  for (const f of COOKIE_FEATURES) if (mandatory.has(f)) out.push(`  <feature name='${f}'/>`);

  const g = c.graphics;
  if (needs('graphics', g !== undefined) && g) {
    if (!GRAPHICS_SET.has(g.type)) throw formatError(`unknown graphics type '${String(g.type)}'`);
    let attrs = ` type='${g.type}' port='${checkInt('graphics port', g.port, -1, 65535)}' listen='${escapeAttr(checkText('graphics listen address', g.listen))}'`;
    if (g.type === 'spice') attrs += ` tlsPort='${checkInt('graphics TLS port', g.tlsPort ?? -1, -1, 65535)}'`;
    if (g.tlsSubject !== undefined) {
      out.push(`  <graphics${attrs}>`, `    <cert info='subject' value='${escapeAttr(checkText('TLS subject', g.tlsSubject))}'/>`, '  </graphics>');
    } else {
      out.push(`  <graphics${attrs}/>`);
    }
  }

  const lock = c.lockState;
  if (needs('lockstate', lock !== undefined) && lock) {
    const driver = escapeAttr(checkText('lock driver', lock.driver));
    if (lock.leases !== undefined && lock.leases !== '') {
      out.push(`  <lockstate driver='${driver}'>`, `    <leases>${escapeText(checkText('lock leases', lock.leases))}</leases>`, '  </lockstate>');
    } else {
      out.push(`  <lockstate driver='${driver}'/>`);
    }
  }

  if (needs('persistent', c.persistentXml !== undefined) && c.persistentXml !== undefined) {
    out.push(`  ${checkDomainXml(c.persistentXml)}`);
  }

  const net = c.network;
  if (needs('network', net !== undefined) && net) {
    out.push('  <network>');
    for (const i of net.interfaces) {
      const index = i.index === undefined ? '' : ` index='${checkInt('interface index', i.index, 0, 65535)}'`;
      const head = `    <interface${index} vporttype='${escapeAttr(checkText('vporttype', i.vporttype))}'`;
      if (i.portdata !== undefined && i.portdata !== '') {
        out.push(`${head}>`, `      <portdata>${escapeText(checkText('portdata', i.portdata))}</portdata>`, '    </interface>');
      } else {
        out.push(`${head}/>`);
      }
    }
    out.push('  </network>');
  }

  const nbd = c.nbd;
  if (needs('nbd', nbd !== undefined) && nbd) {
    const port = nbd.port === undefined || nbd.port === 0 ? '' : ` port='${checkInt('NBD port', nbd.port, 1, 65535)}'`;
    if (nbd.disks.length === 0) {
      out.push(`  <nbd${port}/>`);
    } else {
      out.push(`  <nbd${port}>`);
      for (const d of nbd.disks) {
        out.push(
          `    <disk target='${escapeAttr(checkText('NBD disk target', d.target))}' capacity='${checkInt('NBD disk capacity', d.capacityBytes, 0, Number.MAX_SAFE_INTEGER)}'/>`,
        );
      }
      out.push('  </nbd>');
    }
  }

  const stats = c.stats;
  if (needs('statistics', stats !== undefined) && stats) {
    for (const key of Object.keys(stats)) {
      if (!STATS_FIELD_SET.has(key)) throw formatError(`unknown statistics field '${key}'`, { field: key });
    }
    out.push('  <statistics>');
    for (const field of COOKIE_STATS_FIELDS) {
      if (!Object.prototype.hasOwnProperty.call(stats, field)) continue;
      const min = field === 'delta' || field === 'auto_converge_throttle' ? Number.MIN_SAFE_INTEGER : 0;
      out.push(`    <${field}>${checkInt(`statistics ${field}`, stats[field], min, Number.MAX_SAFE_INTEGER)}</${field}>`);
    }
    out.push('  </statistics>');
  }

  const caps = c.capabilities;
  if (needs('capabilities', caps !== undefined) && caps) {
    out.push('  <capabilities>');
    for (const cap of caps) out.push(`    <cap name='${escapeAttr(checkText('capability name', cap.name))}' auto='${cap.auto ? 'yes' : 'no'}'/>`);
    out.push('  </capabilities>');
  }

  out.push('</qemu-migration>', '');
  const text = out.join('\n');
  const sizeBytes = Buffer.byteLength(text, 'utf8');
  if (sizeBytes > MAX_COOKIE_BYTES) {
    throw formatError(
      `the cookie would be ${sizeBytes} bytes, over the ${MAX_COOKIE_BYTES}-byte limit${c.persistentXml !== undefined ? ' (the persistent definition is too large to travel in a cookie)' : ''}`,
      {
        sizeBytes,
        maxBytes: MAX_COOKIE_BYTES,
      },
    );
  }
  return text;
}
