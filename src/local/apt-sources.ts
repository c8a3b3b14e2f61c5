// apt's package sources as setup needs them: is a suite (bookworm-backports) among them, and
// if not, which mirror serves the machine's own release, so the new suite comes from the
// same place (and the same signing key) as everything else apt installs here. Reads both
// formats: deb822 `.sources` files and one-line `sources.list` entries. The parsing is pure,
// for tests without touching /etc/apt.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AptSource {
  file: string;
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  /** Signed-By as written: a key file's path, or an inline key (deb822 only, several lines). */
  signedBy?: string;
}

/** deb822 stanzas; a stanza with `Enabled: no` is left out. */
export function parseDeb822(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n[ \t]*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#')) continue;
      if (/^[ \t]/.test(line) && last !== undefined) {
        fields.set(last, `${fields.get(last)}\n${line.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):[ \t]*(.*)$/.exec(line);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
    if (!fields.has('uris') || (fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const words = (k: string): string[] => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    const signedBy = fields.get('signed-by');
    out.push({ file, types: words('types'), uris: words('uris'), suites: words('suites'), components: words('components'), ...(signedBy ? { signedBy } : {}) });
  }
  return out;
}

/** One-line entries: `deb [opt=val ...] URI SUITE COMPONENT...`. */
export function parseOneLine(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const signedBy = /(?:^|\s)signed-by=(\S+)/.exec(m[2] ?? '')?.[1];
    out.push({ file, types: [m[1]!], uris: [m[3]!], suites: [m[4]!], components: m[5]!.split(/\s+/).filter(Boolean), ...(signedBy ? { signedBy } : {}) });
  }
  return out;
}

/** Every source apt reads (sources.list and sources.list.d/*.list, *.sources). */
export function readAptSources(etcApt = '/etc/apt'): AptSource[] {
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  const out: AptSource[] = [];
  const main = join(etcApt, 'sources.list');
  out.push(...parseOneLine(read(main) ?? '', main));
  let names: string[] = [];
  try {
    names = readdirSync(join(etcApt, 'sources.list.d')).sort();
  } catch {
    // no directory: sources.list alone
  }
  for (const name of names) {
    const path = join(etcApt, 'sources.list.d', name);
    if (name.endsWith('.sources')) out.push(...parseDeb822(read(path) ?? '', path));
    else if (name.endsWith('.list')) out.push(...parseOneLine(read(path) ?? '', path));
  }
  return out;
}

export function hasSuite(sources: readonly AptSource[], suite: string): boolean {
  return sources.some((s) => s.types.includes('deb') && s.suites.includes(suite));
}

/** The source that serves the release itself (suite `codename`, binary packages): its mirror serves the release's backports too. */
export function releaseSource(sources: readonly AptSource[], codename: string): AptSource | undefined {
  return sources.find((s) => s.types.includes('deb') && s.suites.includes(codename) && s.uris.length > 0);
}

/** A deb822 stanza for `suite` from the mirror (URIs and key) of `from`, main component only. */
export function suiteStanza(from: AptSource, suite: string, comment: string): string {
  const lines = [`# ${comment}`, 'Types: deb', `URIs: ${from.uris.join(' ')}`, `Suites: ${suite}`, 'Components: main'];
  if (from.signedBy !== undefined) {
    const [first, ...rest] = from.signedBy.split('\n');
    lines.push(`Signed-By: ${first}`, ...rest.map((l) => ` ${l === '' ? '.' : l}`));
  }
  return `${lines.join('\n')}\n`;
}
