// A domain name a caller hands us becomes part of file names on the host
// (definitions, managed-save images, logs, sockets): the rule the domain XML
// parser applies to <name> is applied to every name that arrives on its own
// too, so '../..' can never walk out of a host directory. No Node imports:
// workflows use it before any activity runs.

export const MAX_DOMAIN_NAME_BYTES = 255;

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

/** Why `v` cannot name a domain, or undefined when it can. */
export function invalidDomainName(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length === 0) return `domain name must be a non-empty string, got ${JSON.stringify(v) ?? String(v)}`;
  if (v.includes('/')) return `domain name ${JSON.stringify(v)} must not contain '/'`;
  if (/[\u0000-\u001F\u007F]/.test(v)) return `domain name ${JSON.stringify(v)} must not contain control characters`;
  if (v === '.' || v === '..') return `domain name '${v}' is not allowed`;
  if (utf8Length(v) > MAX_DOMAIN_NAME_BYTES) return `domain name is longer than ${MAX_DOMAIN_NAME_BYTES} bytes`;
  return undefined;
}
