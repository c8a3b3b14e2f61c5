// An ordered, JSON-friendly XML tree over fast-xml-parser's preserveOrder output.
// Every byte of character data is kept raw (references undecoded), attributes
// stay in document order as name/value pairs (never object keys), and comments,
// CDATA sections and whitespace survive where they were, so a document that is
// parsed and serialised again differs only in quote style, in the spelling of
// empty elements (<a></a> becomes <a/>) and in whitespace inside tags.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { ErrorType, isVmError, vmError } from '../common/errors.js';
import { lineColumnAt, pathStep, xmlError, type XmlLocator } from './xml-errors.js';
import { isForbiddenXmlName } from './xml-safety.js';
import { decodeXmlRaw, requoteRawAttr } from './xml-text.js';

export interface XmlAttr {
  name: string;
  /** Raw value as written, references undecoded. */
  raw: string;
}
export interface XmlElement {
  kind: 'element';
  name: string;
  attrs: XmlAttr[];
  children: XmlNode[];
}
export interface XmlText {
  kind: 'text';
  /** Raw character data, references undecoded. */
  raw: string;
}
export interface XmlCData {
  kind: 'cdata';
  text: string;
}
export interface XmlComment {
  kind: 'comment';
  text: string;
}
export interface XmlDeclaration {
  kind: 'declaration';
  attrs: XmlAttr[];
}
/** A hole left by an element that moved into the typed model; the formatter fills it. */
export interface XmlSlot {
  kind: 'slot';
  name: string;
}
export type XmlNode = XmlElement | XmlText | XmlCData | XmlComment | XmlDeclaration | XmlSlot;

export interface ParsedXmlDocument {
  /** Top-level nodes: optional declaration, comments, whitespace, the root element. */
  nodes: XmlNode[];
  root: XmlElement;
  /** Line and column of an element path (attributes resolve to their element). */
  locate: XmlLocator;
  /**
   * Where an element of this document stands in the input string, start of
   * its '<' to just after its last '>', for a caller that must hand a part on
   * byte for byte (line breaks and quotes as written).
   */
  span: (el: XmlElement) => { start: number; end: number } | undefined;
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  allowBooleanAttributes: false,
  trimValues: false,
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: false,
  htmlEntities: false,
  removeNSPrefix: false,
  commentPropName: '#comment',
  cdataPropName: '#cdata',
  captureMetaData: true,
  onDangerousProperty: (name: string) => {
    throw new Error(`name '${name}' is not allowed`);
  },
});
const META = XMLParser.getMetaDataSymbol() as unknown as symbol;

type FxpNode = { [key: string]: unknown; [key: symbol]: unknown };
interface Meta {
  startIndex?: number;
  endIndex?: number;
}

function nodeKey(node: FxpNode): string {
  const keys = Object.keys(node).filter((k) => k !== ':@');
  if (keys.length !== 1 || keys[0] === undefined) {
    throw vmError(ErrorType.InternalError, `unexpected XML parser node with keys ${JSON.stringify(keys)}`);
  }
  return keys[0];
}

function innerText(value: unknown): string {
  if (!Array.isArray(value)) return '';
  return value.map((v: unknown) => (v !== null && typeof v === 'object' && '#text' in v ? String((v as FxpNode)['#text']) : '')).join('');
}

/** Slots travel inside preserved XML text as this processing instruction. */
const SLOT_PI = /^\?vmferry-slot-([a-z]+)$/;

export interface ParseXmlOptions {
  /** Read `<?vmferry-slot-NAME?>` as slots (preserved text only; never in user input). */
  allowSlots?: boolean;
}

/** Parses text into the ordered tree. The text must have passed checkXmlInput. */
export function parseXmlDocument(input: string, opts: ParseXmlOptions = {}): ParsedXmlDocument {
  const bom = input.startsWith('\uFEFF') ? 1 : 0;
  // Offsets in `text` map back to the input through the CR LF pairs that became LF.
  const joined: number[] = [];
  const text = input.slice(bom).replace(/\r\n?/g, (m: string, at: number) => {
    if (m.length === 2) joined.push(at - joined.length);
    return '\n';
  });
  const inputOffset = (at: number): number => {
    let lo = 0;
    let hi = joined.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((joined[mid] ?? at) < at) lo = mid + 1;
      else hi = mid;
    }
    return at + bom + lo;
  };

  const verdict = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (verdict !== true) {
    throw xmlError(`XML is not well-formed: ${verdict.err.msg}`, { line: verdict.err.line, column: verdict.err.col });
  }

  let top: unknown;
  try {
    top = parser.parse(text);
  } catch (err) {
    if (isVmError(err)) throw err;
    throw xmlError(`XML parser refused the document: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!Array.isArray(top)) throw vmError(ErrorType.InternalError, 'XML parser returned no node list');

  const roots = (top as FxpNode[]).filter((n) => {
    const k = nodeKey(n);
    return !k.startsWith('#') && !k.startsWith('?');
  });
  if (roots.length !== 1 || roots[0] === undefined) {
    throw xmlError(roots.length === 0 ? 'document has no root element' : `document has ${roots.length} root elements, expected one root element`);
  }
  const rootNode = roots[0];
  const meta = rootNode[META] as Meta | undefined;
  const start = meta?.startIndex;
  const end = meta?.endIndex;
  if (start === undefined || end === undefined) throw vmError(ErrorType.InternalError, 'XML parser gave no root position');

  const positions = new Map<string, number>();
  const locate: XmlLocator = (path) => {
    let p = path.replace(/\/@[^/]*$/, '');
    for (;;) {
      const at = positions.get(p);
      if (at !== undefined) return lineColumnAt(text, at);
      const cut = p.lastIndexOf('/');
      if (cut <= 0) return undefined;
      p = p.slice(0, cut);
    }
  };

  const spans = new WeakMap<XmlElement, { start: number; end: number }>();
  const convert = (node: FxpNode, name: string, path: string): XmlElement => {
    const nodeMeta = node[META] as Meta | undefined;
    const at = nodeMeta?.startIndex;
    if (at !== undefined) positions.set(path, at);
    const where = () => ({ path, ...(at !== undefined ? lineColumnAt(text, at) : {}) });
    if (isForbiddenXmlName(name)) throw xmlError(`element name '${name}' is not allowed`, where());

    const attrs: XmlAttr[] = [];
    const rawAttrs = node[':@'];
    if (rawAttrs !== undefined && rawAttrs !== null && typeof rawAttrs === 'object') {
      for (const [key, value] of Object.entries(rawAttrs as FxpNode)) {
        const attrName = key.startsWith('@_') ? key.slice(2) : key;
        if (isForbiddenXmlName(attrName)) throw xmlError(`attribute name '${attrName}' is not allowed`, where());
        if (typeof value !== 'string') throw xmlError(`attribute '${attrName}' has no value`, where());
        if (value.includes('<')) throw xmlError(`'<' is not allowed in the value of attribute '${attrName}'`, where());
        const decoded = decodeXmlRaw(value);
        if ('error' in decoded) throw xmlError(`${decoded.error} in attribute '${attrName}'`, where());
        attrs.push({ name: attrName, raw: value });
      }
    }

    const rawChildren = node[name];
    const list = Array.isArray(rawChildren) ? (rawChildren as FxpNode[]) : [];
    const counts = new Map<string, number>();
    for (const child of list) {
      const k = nodeKey(child);
      if (!k.startsWith('#') && !k.startsWith('?')) counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    const seen = new Map<string, number>();
    const children: XmlNode[] = [];
    for (const child of list) {
      const k = nodeKey(child);
      if (k === '#text') {
        const raw = String(child[k]);
        const decoded = decodeXmlRaw(raw);
        if ('error' in decoded) throw xmlError(decoded.error, where());
        children.push({ kind: 'text', raw });
      } else if (k === '#comment') {
        children.push({ kind: 'comment', text: innerText(child[k]) });
      } else if (k === '#cdata') {
        children.push({ kind: 'cdata', text: innerText(child[k]) });
      } else if (k.startsWith('?')) {
        const slot = opts.allowSlots === true ? SLOT_PI.exec(k) : null;
        if (slot?.[1] !== undefined) {
          children.push({ kind: 'slot', name: slot[1] });
          continue;
        }
        throw xmlError(`processing instruction <${k}> is not supported`, where());
      } else {
        const index = seen.get(k) ?? 0;
        seen.set(k, index + 1);
        children.push(convert(child, k, `${path}/${pathStep(k, index, counts.get(k) ?? 1)}`));
      }
    }
    const el: XmlElement = { kind: 'element', name, attrs, children };
    if (at !== undefined && nodeMeta?.endIndex !== undefined) spans.set(el, { start: at, end: nodeMeta.endIndex });
    return el;
  };

  const rootName = nodeKey(rootNode);
  const root = convert(rootNode, rootName, `/${rootName}`);
  const nodes: XmlNode[] = [...scanOutside(text, 0, start, true), root, ...scanOutside(text, end, text.length, false)];
  const span = (el: XmlElement) => {
    const s = spans.get(el);
    return s === undefined ? undefined : { start: inputOffset(s.start), end: inputOffset(s.end) };
  };
  return { nodes, root, locate, span };
}

const DECL_ATTR = /\s+([A-Za-z]+)\s*=\s*(?:'([^']*)'|"([^"]*)")/g;

/** What may stand before or after the root element: declaration (first), comments, whitespace. */
function scanOutside(text: string, from: number, to: number, prolog: boolean): XmlNode[] {
  const out: XmlNode[] = [];
  let i = from;
  while (i < to) {
    if (prolog && i === 0 && text.startsWith('<?xml', 0) && /[\s?]/.test(text.charAt(5))) {
      const close = text.indexOf('?>', 5);
      if (close === -1 || close >= to) throw xmlError('XML declaration is not closed', { line: 1, column: 1 });
      const attrs: XmlAttr[] = [];
      const rest = text.slice(5, close).replace(DECL_ATTR, (_m: string, name: string, single?: string, double?: string) => {
        attrs.push({ name, raw: single ?? double ?? '' });
        return '';
      });
      const unknown = attrs.find((a) => a.name !== 'version' && a.name !== 'encoding' && a.name !== 'standalone');
      if (rest.trim() !== '' || unknown !== undefined) {
        throw xmlError(`malformed XML declaration${unknown ? ` ('${unknown.name}')` : ''}`, { line: 1, column: 1 });
      }
      out.push({ kind: 'declaration', attrs });
      i = close + 2;
    } else if (text.startsWith('<!--', i)) {
      const close = text.indexOf('-->', i + 4);
      if (close === -1 || close + 3 > to) throw xmlError('comment is not closed', lineColumnAt(text, i));
      out.push({ kind: 'comment', text: text.slice(i + 4, close) });
      i = close + 3;
    } else {
      let j = i;
      while (j < to && (text[j] === ' ' || text[j] === '\t' || text[j] === '\n')) j++;
      if (j === i) {
        throw xmlError(`content ${prolog ? 'before' : 'after'} the root element is not allowed`, lineColumnAt(text, i));
      }
      out.push({ kind: 'text', raw: text.slice(i, j) });
      i = j;
    }
  }
  return out;
}

/**
 * Writes nodes back as text, attributes in single quotes like libvirt. Slots
 * are an error unless `slotMarkers` asks for them as processing instructions.
 */
export function serializeXml(nodes: readonly XmlNode[], slotMarkers = false): string {
  const out: string[] = [];
  const write = (node: XmlNode): void => {
    switch (node.kind) {
      case 'text':
        out.push(node.raw);
        return;
      case 'comment':
        out.push(`<!--${node.text}-->`);
        return;
      case 'cdata':
        out.push(`<![CDATA[${node.text}]]>`);
        return;
      case 'declaration':
        out.push(`<?xml${node.attrs.map((a) => ` ${a.name}='${requoteRawAttr(a.raw)}'`).join('')}?>`);
        return;
      case 'slot':
        if (!slotMarkers) throw vmError(ErrorType.InternalError, `unfilled <${node.name}> slot in XML tree`);
        out.push(`<?vmferry-slot-${node.name}?>`);
        return;
      case 'element': {
        out.push(`<${node.name}`);
        for (const a of node.attrs) out.push(` ${a.name}='${requoteRawAttr(a.raw)}'`);
        if (node.children.length === 0) {
          out.push('/>');
          return;
        }
        out.push('>');
        for (const c of node.children) write(c);
        out.push(`</${node.name}>`);
        return;
      }
    }
  };
  for (const n of nodes) write(n);
  return out.join('');
}
