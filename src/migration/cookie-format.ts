// MigrationCookie -> text, in libvirt's element order and indentation. Every
// value is checked before it is written, and the two parts that go in as XML
// (the persistent definition, the unmodelled elements) must pass the same
// hardened reader the receiving side will use, so this side never sends a
// cookie it would refuse itself. A problem is the caller's: OperationInvalid.
import type { ApplicationFailure } from '@temporalio/common';
import { ErrorType, isVmError, vmError } from '../common/errors.js';
import { normalizeUuid } from '../domain/uuid.js';
import { XmlReader } from '../xml/xml-read.js';
import { checkXmlInput, findNonXmlChar } from '../xml/xml-safety.js';
import { encodeXmlAttr, encodeXmlText } from '../xml/xml-text.js';
import { parseXmlDocument, serializeXml, type ParsedXmlDocument } from '../xml/xml-tree.js';
import {
  COOKIE_ELEMENT_ORDER,
  COOKIE_FEATURES,
  COOKIE_ROOT,
  COOKIE_STATS_FIELDS,
  isCookieFeature,
  isGraphicsType,
  MAX_COOKIE_BYTES,
  MODELLED_ELEMENTS,
  STATS_FIELD_SET,
  statsFieldMin,
  type CookieFeature,
  type MigrationCookie,
} from './cookie-model.js';
import { checkCookieDepth } from './cookie-parse.js';

function formatError(message: string, details?: Record<string, unknown>): ApplicationFailure {
  return vmError(ErrorType.OperationInvalid, `cannot format migration cookie: ${message}`, details);
}

function checkText(what: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw formatError(`${what} must be a non-empty string`);
  if (findNonXmlChar(value) !== null) throw formatError(`${what} contains a character XML does not allow`);
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

function tooLarge(what: string, sizeBytes: number, persistent: boolean): ApplicationFailure {
  return formatError(
    `${what} ${sizeBytes} bytes, over the ${MAX_COOKIE_BYTES}-byte limit${persistent ? ' (the persistent definition is too large to travel in a cookie)' : ''}`,
    { sizeBytes, maxBytes: MAX_COOKIE_BYTES },
  );
}

/** A piece of XML that goes into the cookie: one element, read the way the receiver will. */
function parsePiece(what: string, text: string): ParsedXmlDocument {
  try {
    checkXmlInput(text, MAX_COOKIE_BYTES, what);
    const doc = parseXmlDocument(text);
    if (doc.nodes.length !== 1) throw formatError(`${what} must be a single element (no declaration, no surrounding text or comments)`);
    return doc;
  } catch (err) {
    if (isVmError(err, ErrorType.XmlError)) throw formatError(`${what} is not usable: ${err.message}`);
    throw err;
  }
}

/** The persistent definition goes in verbatim, so it must be exactly one well-formed <domain> element. */
function checkDomainXml(raw: unknown): string {
  const text = checkText('persistent definition', raw).trim();
  const sizeBytes = Buffer.byteLength(text, 'utf8');
  if (sizeBytes > MAX_COOKIE_BYTES) throw tooLarge('the persistent definition alone is', sizeBytes, true);
  const doc = parsePiece('persistent definition', text);
  if (doc.root.name !== 'domain') throw formatError(`persistent definition must be a single <domain> element, not <${doc.root.name}>`);
  return text;
}

/** An unmodelled element, normalised the way parsing gives it back, with its name for placing it. */
function checkUnmodelled(raw: unknown): { name: string; text: string } {
  const doc = parsePiece('unmodelled element', checkText('unmodelled element', raw).trim());
  const name = doc.root.name;
  if (MODELLED_ELEMENTS.has(name)) throw formatError(`<${name}> is modelled: set its field instead of passing it as unmodelled XML`);
  try {
    checkCookieDepth(new XmlReader(), doc.root, `/${COOKIE_ROOT}/${name}`, 2);
  } catch (err) {
    if (isVmError(err)) throw formatError(err.message);
    throw err;
  }
  return { name, text: serializeXml([doc.root]) };
}

export function formatMigrationCookie(c: MigrationCookie): string {
  const features = new Set<string>(c.features);
  for (const f of [...c.features, ...c.mandatory]) {
    if (!isCookieFeature(f)) throw formatError(`unknown feature '${String(f)}'`);
  }
  const needs = (feature: CookieFeature, present: boolean): boolean => {
    if (present && !features.has(feature)) throw formatError(`data for '${feature}' is present but '${feature}' is not in features`, { feature });
    return present;
  };
  const text = (what: string, value: unknown): string => encodeXmlText(checkText(what, value));
  const attr = (what: string, value: unknown): string => encodeXmlAttr(checkText(what, value));

  const out: string[] = [`<${COOKIE_ROOT}>`];
  out.push(`  <name>${text('domain name', c.name)}</name>`);
  out.push(`  <uuid>${checkUuid('domain UUID', c.uuid)}</uuid>`);
  out.push(`  <hostname>${text('host name', c.hostname)}</hostname>`);
  out.push(`  <hostuuid>${checkUuid('host UUID', c.hostuuid)}</hostuuid>`);

  // libvirt marks lock state mandatory whenever it is added, and a persistent definition likewise.
  const mandatory = new Set<string>(c.mandatory);
  if (features.has('lockstate')) mandatory.add('lockstate');
  if (c.persistentXml !== undefined) mandatory.add('persistent');
  for (const f of COOKIE_FEATURES) if (mandatory.has(f)) out.push(`  <feature name='${f}'/>`);

  // Data elements by name, then written in libvirt's order with the unmodelled ones among them.
  const data = new Map<string, string[]>();
  const g = c.graphics;
  if (needs('graphics', g !== undefined) && g) {
    if (!isGraphicsType(g.type)) throw formatError(`unknown graphics type '${String(g.type)}'`);
    let attrs = ` type='${g.type}' port='${checkInt('graphics port', g.port, -1, 65535)}' listen='${attr('graphics listen address', g.listen)}'`;
    if (g.type === 'spice') attrs += ` tlsPort='${checkInt('graphics TLS port', g.tlsPort ?? -1, -1, 65535)}'`;
    data.set(
      'graphics',
      g.tlsSubject !== undefined
        ? [`  <graphics${attrs}>`, `    <cert info='subject' value='${attr('TLS subject', g.tlsSubject)}'/>`, '  </graphics>']
        : [`  <graphics${attrs}/>`],
    );
  }

  const lock = c.lockState;
  if (needs('lockstate', lock !== undefined) && lock) {
    const driver = attr('lock driver', lock.driver);
    data.set(
      'lockstate',
      lock.leases !== undefined && lock.leases !== ''
        ? [`  <lockstate driver='${driver}'>`, `    <leases>${text('lock leases', lock.leases)}</leases>`, '  </lockstate>']
        : [`  <lockstate driver='${driver}'/>`],
    );
  }

  if (needs('persistent', c.persistentXml !== undefined) && c.persistentXml !== undefined) {
    data.set('domain', [`  ${checkDomainXml(c.persistentXml)}`]);
  }

  const net = c.network;
  if (needs('network', net !== undefined) && net) {
    const lines = ['  <network>'];
    for (const i of net.interfaces) {
      const index = i.index === undefined ? '' : ` index='${checkInt('interface index', i.index, 0, 65535)}'`;
      const head = `    <interface${index} vporttype='${attr('vporttype', i.vporttype)}'`;
      if (i.portdata !== undefined && i.portdata !== '') {
        lines.push(`${head}>`, `      <portdata>${text('portdata', i.portdata)}</portdata>`, '    </interface>');
      } else {
        lines.push(`${head}/>`);
      }
    }
    data.set('network', [...lines, '  </network>']);
  }

  const nbd = c.nbd;
  if (needs('nbd', nbd !== undefined) && nbd) {
    const port = nbd.port === undefined || nbd.port === 0 ? '' : ` port='${checkInt('NBD port', nbd.port, 1, 65535)}'`;
    const disks = nbd.disks.map((d) => {
      let a = `target='${attr('NBD disk target', d.target)}' capacity='${checkInt('NBD disk capacity', d.capacityBytes, 0, Number.MAX_SAFE_INTEGER)}'`;
      if (d.allocationBytes !== undefined) a += ` allocation='${checkInt('NBD disk allocation', d.allocationBytes, 0, Number.MAX_SAFE_INTEGER)}'`;
      if (d.clusterSizeBytes !== undefined) a += ` clusterSize='${checkInt('NBD disk cluster size', d.clusterSizeBytes, 512, 2 * 1024 * 1024)}'`;
      if (d.backingFile !== undefined) a += ` backingFile='${attr('NBD disk backing file', d.backingFile)}'`;
      if (d.backingFormat !== undefined) a += ` backingFormat='${attr('NBD disk backing format', d.backingFormat)}'`;
      return `    <disk ${a}/>`;
    });
    data.set('nbd', disks.length === 0 ? [`  <nbd${port}/>`] : [`  <nbd${port}>`, ...disks, '  </nbd>']);
  }

  const stats = c.stats;
  if (needs('statistics', stats !== undefined) && stats) {
    for (const key of Object.keys(stats)) {
      if (!STATS_FIELD_SET.has(key)) throw formatError(`unknown statistics field '${key}'`, { field: key });
    }
    const lines = ['  <statistics>'];
    for (const field of COOKIE_STATS_FIELDS) {
      if (!Object.prototype.hasOwnProperty.call(stats, field)) continue;
      lines.push(`    <${field}>${checkInt(`statistics ${field}`, stats[field], statsFieldMin(field), Number.MAX_SAFE_INTEGER)}</${field}>`);
    }
    data.set('statistics', [...lines, '  </statistics>']);
  }

  const caps = c.capabilities;
  if (needs('capabilities', caps !== undefined) && caps) {
    const lines = caps.map((cap) => `    <cap name='${attr('capability name', cap.name)}' auto='${cap.auto ? 'yes' : 'no'}'/>`);
    data.set('capabilities', ['  <capabilities>', ...lines, '  </capabilities>']);
  }

  const unmodelled = (c.unmodelled ?? []).map(checkUnmodelled);
  for (const name of COOKIE_ELEMENT_ORDER) {
    out.push(...(data.get(name) ?? []));
    for (const u of unmodelled) if (u.name === name) out.push(`  ${u.text}`);
  }
  for (const u of unmodelled) if (!COOKIE_ELEMENT_ORDER.includes(u.name)) out.push(`  ${u.text}`);

  out.push(`</${COOKIE_ROOT}>`, '');
  const cookie = out.join('\n');
  const sizeBytes = Buffer.byteLength(cookie, 'utf8');
  if (sizeBytes > MAX_COOKIE_BYTES) throw tooLarge('the cookie would be', sizeBytes, c.persistentXml !== undefined);
  return cookie;
}
