// Character data as it sits in the preserved tree is raw: exactly the text
// between the markup, entity and character references undecoded (the parser
// runs with processEntities off). Decoding knows only XML's five predefined
// entities and numeric references; anything else is an error because no DTD
// can define more.

const PREDEFINED: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };
const REFERENCE = /&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z_][A-Za-z0-9._-]*)?(;)?/g;

function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

/** Decodes raw character data; returns an error string instead of throwing. */
export function decodeXmlRaw(raw: string): { value: string } | { error: string } {
  if (!raw.includes('&')) return { value: raw };
  let error: string | undefined;
  const value = raw.replace(REFERENCE, (whole: string, ref: string | undefined, semi: string | undefined) => {
    if (error !== undefined) return whole;
    if (ref === undefined || semi === undefined) {
      error = `'&' must start an entity or character reference (found '${whole.slice(0, 12)}')`;
      return whole;
    }
    if (ref.startsWith('#')) {
      const cp = ref.startsWith('#x') ? Number.parseInt(ref.slice(2), 16) : Number.parseInt(ref.slice(1), 10);
      if (!isXmlChar(cp)) {
        error = `character reference '&${ref};' is not an XML character`;
        return whole;
      }
      return String.fromCodePoint(cp);
    }
    const replacement = Object.prototype.hasOwnProperty.call(PREDEFINED, ref) ? PREDEFINED[ref] : undefined;
    if (replacement === undefined) {
      error = `entity '&${ref};' is not defined (no DTDs)`;
      return whole;
    }
    return replacement;
  });
  return error === undefined ? { value } : { error };
}

/** Decoded value, or undefined when the raw text is not valid character data. */
export function tryDecodeXmlRaw(raw: string): string | undefined {
  const r = decodeXmlRaw(raw);
  return 'value' in r ? r.value : undefined;
}

/**
 * Decoded attribute value: as XML requires, literal tabs and line breaks
 * count as spaces (references to them stay what they are).
 */
export function tryDecodeXmlAttr(raw: string): string | undefined {
  return tryDecodeXmlRaw(/[\t\n\r]/.test(raw) ? raw.replace(/[\t\n\r]/g, ' ') : raw);
}

/** Escapes a value for element content (libvirt escapes the same characters). */
export function encodeXmlText(value: string): string {
  return value.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;'));
}

/**
 * Escapes a value for a single-quoted attribute. Tabs and line breaks become
 * character references so that attribute-value normalisation on the next parse
 * gives the same value back.
 */
export function encodeXmlAttr(value: string): string {
  return value.replace(/[&<>'"\t\n\r]/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case "'":
        return '&apos;';
      case '"':
        return '&quot;';
      case '\t':
        return '&#9;';
      case '\n':
        return '&#10;';
      default:
        return '&#13;';
    }
  });
}

/** A raw attribute value (as parsed, references intact) made safe for single quotes. */
export function requoteRawAttr(raw: string): string {
  return raw.includes("'") ? raw.replace(/'/g, '&apos;') : raw;
}
