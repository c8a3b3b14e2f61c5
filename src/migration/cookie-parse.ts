// Text -> MigrationCookie on the shared hardened XML layer. The text is hostile
// until proven otherwise: size, characters, DTDs and dangerous names are checked
// before a parser sees it, the tree reader refuses undefined entities and broken
// markup, and the schema adds its own limits (nesting depth, one of each
// element). A cookie about another domain, written by this same host, or with a
// mandatory feature this side does not understand is refused, the way libvirt
// refuses it. Elements vmferry does not model are kept as text.
import { ErrorType, vmError } from '../common/errors.js';
import { normalizeUuid } from '../domain/uuid.js';
import { childElements, getAttr, textContent } from '../xml/xml-edit.js';
import { inDocument } from '../xml/xml-errors.js';
import { childrenWithPaths, XmlReader } from '../xml/xml-read.js';
import { checkXmlInput } from '../xml/xml-safety.js';
import { parseXmlDocument, serializeXml, type XmlElement } from '../xml/xml-tree.js';
import {
  COOKIE_FEATURES,
  COOKIE_ROOT,
  COOKIE_STATS_FIELDS,
  FEATURE_ELEMENT,
  isCookieFeature,
  isGraphicsType,
  MAX_COOKIE_BYTES,
  MAX_COOKIE_DEPTH,
  MODELLED_ELEMENTS,
  MODELLED_FEATURES,
  statsFieldMin,
  type CookieExpectation,
  type CookieFeature,
  type CookieGraphics,
  type CookieNbd,
  type CookieNbdDisk,
  type CookieNetInterface,
  type MigrationCookie,
} from './cookie-model.js';

/** Refuses nesting deeper than MAX_COOKIE_DEPTH; the persistent <domain> is the domain parser's to judge. */
export function checkCookieDepth(r: XmlReader, el: XmlElement, path: string, depth: number): void {
  if (depth > MAX_COOKIE_DEPTH) r.fail(`elements nested deeper than ${MAX_COOKIE_DEPTH} levels`, path);
  for (const [child, childPath] of childrenWithPaths(el, path)) {
    if (depth === 1 && child.name === 'domain') continue;
    checkCookieDepth(r, child, childPath, depth + 1);
  }
}

/** An attribute that must be present and not empty (libvirt treats empty as missing). */
function requiredAttr(r: XmlReader, el: XmlElement, name: string, path: string): string {
  const v = r.attr(el, name);
  if (v === undefined || v === '') r.fail(`missing attribute '${name}'`, `${path}/@${name}`);
  return v;
}

function intAttr(r: XmlReader, el: XmlElement, name: string, path: string, what: string, min: number, max: number): number | undefined {
  const v = r.attr(el, name);
  return v === undefined ? undefined : r.strictInteger(v, `${path}/@${name}`, what, min, max);
}

/** Text of a child that must be present, once, and not empty. */
function requiredText(r: XmlReader, parent: XmlElement, name: string, parentPath: string): { value: string; path: string } {
  const path = `${parentPath}/${name}`;
  const value = r.text(r.required(parent, name, parentPath), path);
  if (value === '') r.fail(`<${name}> is empty`, path);
  return { value, path };
}

function uuidText(r: XmlReader, parent: XmlElement, name: string, parentPath: string): { value: string; path: string } {
  const t = requiredText(r, parent, name, parentPath);
  const value = normalizeUuid(t.value);
  if (value === undefined) r.fail(`<${name}> '${t.value.slice(0, 60)}' is not a UUID`, t.path);
  return { value, path: t.path };
}

function checkExpectation(expect: CookieExpectation): { expectedUuid: string; localHostUuid?: string } {
  const expectedUuid = normalizeUuid(String(expect.uuid));
  if (typeof expect.name !== 'string' || expect.name === '' || expectedUuid === undefined) {
    throw vmError(
      ErrorType.InternalError,
      `parseMigrationCookie needs the expected domain's name and UUID, got '${String(expect.name)}' / '${String(expect.uuid)}'`,
    );
  }
  if (expect.localHostUuid === undefined) return { expectedUuid };
  const localHostUuid = normalizeUuid(expect.localHostUuid);
  if (localHostUuid === undefined) throw vmError(ErrorType.InternalError, `local host UUID '${expect.localHostUuid}' is not a UUID`);
  return { expectedUuid, localHostUuid };
}

export function parseMigrationCookie(xml: string, expect: CookieExpectation): MigrationCookie {
  return inDocument('migration cookie', () => {
    checkXmlInput(xml, MAX_COOKIE_BYTES, 'migration cookie');
    const { expectedUuid, localHostUuid } = checkExpectation(expect);
    const doc = parseXmlDocument(xml);
    const r: XmlReader = new XmlReader(doc.locate);
    const root = doc.root;
    const P = `/${root.name}`;
    checkCookieDepth(r, root, P, 1);
    if (root.name !== COOKIE_ROOT) r.fail(`root element is <${root.name}>, expected <${COOKIE_ROOT}>`, P);

    // Identity: the domain this cookie is about, and the host that wrote it.
    const name = requiredText(r, root, 'name', P);
    if (name.value !== expect.name) {
      r.refuse(ErrorType.OperationInvalid, `cookie is about domain '${name.value}', expected '${expect.name}'`, name.path, {
        got: name.value,
        expected: expect.name,
      });
    }
    const uuid = uuidText(r, root, 'uuid', P);
    if (uuid.value !== expectedUuid) {
      r.refuse(ErrorType.OperationInvalid, `cookie is about domain UUID ${uuid.value}, expected ${expectedUuid}`, uuid.path, {
        got: uuid.value,
        expected: expectedUuid,
      });
    }
    const hostname = requiredText(r, root, 'hostname', P).value;
    const hostuuid = uuidText(r, root, 'hostuuid', P);
    if (localHostUuid !== undefined && hostuuid.value === localHostUuid) {
      r.refuse(
        ErrorType.OperationInvalid,
        `cookie comes from this same host (host UUID ${hostuuid.value}): migrating to the same host is refused`,
        hostuuid.path,
      );
    }

    // Mandatory features: an unknown name or one this side does not understand refuses the cookie.
    const understood = new Set<CookieFeature>(expect.understood ?? MODELLED_FEATURES);
    const mandatory = new Set<CookieFeature>();
    for (const [f, fpath] of childrenWithPaths(root, P, 'feature')) {
      const fname = requiredAttr(r, f, 'name', fpath);
      if (!isCookieFeature(fname)) r.refuse(ErrorType.OperationInvalid, `unknown mandatory feature '${fname}'`, `${fpath}/@name`, { feature: fname });
      if (!understood.has(fname)) {
        r.refuse(ErrorType.OperationInvalid, `mandatory feature '${fname}' is not supported here`, `${fpath}/@name`, {
          feature: fname,
          understood: [...understood],
        });
      }
      mandatory.add(fname);
    }

    const cookie: MigrationCookie = { name: name.value, uuid: uuid.value, hostname, hostuuid: hostuuid.value, features: [], mandatory: [] };
    const present = new Set<CookieFeature>(mandatory);
    const section = (feature: CookieFeature): XmlElement | undefined => {
      const element = FEATURE_ELEMENT[feature];
      if (!understood.has(feature) || element === undefined) return undefined;
      const el = r.optional(root, element, P);
      if (el !== undefined) present.add(feature);
      return el;
    };

    const graphics = section('graphics');
    if (graphics !== undefined) cookie.graphics = readGraphics(r, graphics, `${P}/graphics`);

    const lock = section('lockstate');
    if (lock !== undefined) {
      const path = `${P}/lockstate`;
      const driver = requiredAttr(r, lock, 'driver', path);
      const leasesEl = r.optional(lock, 'leases', path);
      const leases = leasesEl === undefined ? '' : r.text(leasesEl, `${path}/leases`);
      cookie.lockState = leases !== '' ? { driver, leases } : { driver };
    }

    const domain = section('persistent');
    if (domain !== undefined) {
      const span = doc.span(domain);
      if (span === undefined) throw vmError(ErrorType.InternalError, 'XML parser gave no position for <domain>');
      // Verbatim: the domain parser judges it, with its own limits, when it is used.
      cookie.persistentXml = xml.slice(span.start, span.end);
    } else if (mandatory.has('persistent')) {
      r.fail("feature 'persistent' is mandatory but there is no <domain> element", `${P}/domain`);
    }

    const network = section('network');
    if (network !== undefined) cookie.network = { interfaces: childrenWithPaths(network, `${P}/network`, 'interface').map(([i, p]) => readInterface(r, i, p)) };

    const nbd = section('nbd');
    if (nbd !== undefined) cookie.nbd = readNbd(r, nbd, `${P}/nbd`);

    const stats = section('statistics');
    if (stats !== undefined) {
      const values: Record<string, number> = {};
      for (const field of COOKIE_STATS_FIELDS) {
        const el = r.optional(stats, field, `${P}/statistics`);
        if (el === undefined) continue;
        values[field] = r.strictInteger(textContent(el).trim(), `${P}/statistics/${field}`, field, statsFieldMin(field), Number.MAX_SAFE_INTEGER);
      }
      cookie.stats = values;
    }

    const caps = section('capabilities');
    if (caps !== undefined) {
      cookie.capabilities = childrenWithPaths(caps, `${P}/capabilities`, 'cap').map(([c, p]) => ({
        name: requiredAttr(r, c, 'name', p),
        auto: getAttr(c, 'auto') === 'yes',
      }));
    }

    const unmodelled = childElements(root)
      .filter((el) => !MODELLED_ELEMENTS.has(el.name))
      .map((el) => serializeXml([el]));
    if (unmodelled.length > 0) cookie.unmodelled = unmodelled;

    cookie.features = COOKIE_FEATURES.filter((f) => present.has(f));
    cookie.mandatory = COOKIE_FEATURES.filter((f) => mandatory.has(f));
    return cookie;
  });
}

function readGraphics(r: XmlReader, el: XmlElement, path: string): CookieGraphics {
  const type = requiredAttr(r, el, 'type', path);
  if (!isGraphicsType(type)) r.fail(`unknown graphics type '${type}'`, `${path}/@type`);
  const port = intAttr(r, el, 'port', path, 'graphics port', -1, 65535);
  if (port === undefined) r.fail("missing attribute 'port'", `${path}/@port`);
  const listen = requiredAttr(r, el, 'listen', path);
  const g: CookieGraphics = { type, port, listen };
  if (type === 'spice') {
    const tlsPort = intAttr(r, el, 'tlsPort', path, 'graphics TLS port', -1, 65535);
    if (tlsPort === undefined) r.fail("missing attribute 'tlsPort' (required for spice)", `${path}/@tlsPort`);
    g.tlsPort = tlsPort;
  }
  const cert = childElements(el, 'cert').find((c) => getAttr(c, 'info') === 'subject');
  const subject = cert === undefined ? undefined : getAttr(cert, 'value');
  if (subject !== undefined && subject !== '') g.tlsSubject = subject;
  return g;
}

function readInterface(r: XmlReader, el: XmlElement, path: string): CookieNetInterface {
  const index = intAttr(r, el, 'index', path, 'interface index', 0, 65535);
  const portdata = r.optional(el, 'portdata', path);
  const data = portdata === undefined ? '' : textContent(portdata);
  return {
    ...(index !== undefined ? { index } : {}),
    vporttype: requiredAttr(r, el, 'vporttype', path),
    ...(data !== '' ? { portdata: data } : {}),
  };
}

function readNbd(r: XmlReader, el: XmlElement, path: string): CookieNbd {
  const port = intAttr(r, el, 'port', path, 'NBD port', 0, 65535);
  return {
    ...(port !== undefined && port !== 0 ? { port } : {}),
    disks: childrenWithPaths(el, path, 'disk').map(([d, p]): CookieNbdDisk => {
      const allocationBytes = intAttr(r, d, 'allocation', p, 'disk allocation', 0, Number.MAX_SAFE_INTEGER);
      const clusterSizeBytes = intAttr(r, d, 'clusterSize', p, 'disk cluster size', 512, 2 * 1024 * 1024);
      const backingFile = r.attr(d, 'backingFile');
      const backingFormat = r.attr(d, 'backingFormat');
      return {
        target: requiredAttr(r, d, 'target', p),
        capacityBytes: r.strictInteger(requiredAttr(r, d, 'capacity', p), `${p}/@capacity`, 'disk capacity', 0, Number.MAX_SAFE_INTEGER),
        ...(allocationBytes !== undefined ? { allocationBytes } : {}),
        ...(clusterSizeBytes !== undefined ? { clusterSizeBytes } : {}),
        ...(backingFile ? { backingFile } : {}),
        ...(backingFormat ? { backingFormat } : {}),
      };
    }),
  };
}
