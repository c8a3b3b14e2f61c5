// Checks that run on the raw text before any XML parser sees it: size first,
// then characters XML forbids, then DTD machinery (DOCTYPE / ENTITY: billion
// laughs, external entities), then element names that would reach JavaScript
// object keys (__proto__ and friends).
import { lineColumnAt, xmlError } from './xml-errors.js';

export const DEFAULT_MAX_XML_BYTES = 1024 * 1024;

/** Names that must never become property names anywhere (prototype pollution). */
export const FORBIDDEN_XML_NAMES: ReadonlySet<string> = new Set([
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toString',
  'toLocaleString',
  'valueOf',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
  '__lookupSetter__',
]);

/** True for a name, or the local part of a prefixed name, in FORBIDDEN_XML_NAMES. */
export function isForbiddenXmlName(name: string): boolean {
  const colon = name.indexOf(':');
  return FORBIDDEN_XML_NAMES.has(name) || (colon !== -1 && FORBIDDEN_XML_NAMES.has(name.slice(colon + 1)));
}

// C0 controls other than tab, LF and CR, U+FFFE/U+FFFF and unpaired surrogates
// are not XML 1.0 characters.
const NON_XML_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const DTD_KEYWORD = /<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/i;
const COMMENT_OR_CDATA = /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>/g;
const TAG_NAME = /<\/?\s*([^\s/>!?]+)/g;

/** The first character XML 1.0 cannot carry at all, even escaped, or null. */
export function findNonXmlChar(s: string): RegExpExecArray | null {
  return NON_XML_CHAR.exec(s);
}

/** `what` names the document in the messages that speak of it as a whole. */
export function checkXmlInput(xml: unknown, maxBytes: number = DEFAULT_MAX_XML_BYTES, what = 'domain XML'): asserts xml is string {
  if (typeof xml !== 'string') {
    throw xmlError(`${what} must be a string, got ${xml === null ? 'null' : typeof xml}`);
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw xmlError(`XML size limit must be a positive integer, got ${String(maxBytes)}`);
  }
  // UTF-8 never takes fewer bytes than UTF-16 code units, so the length is a
  // cheap lower bound that refuses huge input without encoding it.
  const sizeBytes = xml.length > maxBytes ? xml.length : Buffer.byteLength(xml, 'utf8');
  if (sizeBytes > maxBytes) {
    throw xmlError(`${what} is too large: ${xml.length > maxBytes ? 'at least ' : ''}${sizeBytes} bytes, limit ${maxBytes}`, undefined, {
      sizeBytes,
      maxBytes,
    });
  }
  if (xml.trim() === '') {
    throw xmlError(`${what} is empty`, { line: 1, column: 1 });
  }
  const bad = findNonXmlChar(xml);
  if (bad) {
    const code = bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    throw xmlError(`character U+${code} is not allowed in XML`, lineColumnAt(xml, bad.index));
  }
  const dtd = DTD_KEYWORD.exec(xml);
  if (dtd) {
    throw xmlError(`<!${dtd[1]?.toUpperCase() ?? ''}> declarations are not accepted (no DTDs, no entities)`, lineColumnAt(xml, dtd.index));
  }
  // Blank out comments and CDATA (keeping newlines, so positions stay right)
  // and look at every tag name.
  const markup = xml.replace(COMMENT_OR_CDATA, (m) => m.replace(/[^\n]/g, ' '));
  for (const m of markup.matchAll(TAG_NAME)) {
    const name = m[1] ?? '';
    if (isForbiddenXmlName(name)) {
      throw xmlError(`element name '${name}' is not allowed`, lineColumnAt(xml, m.index));
    }
  }
}
