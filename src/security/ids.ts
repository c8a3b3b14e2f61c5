// User and group names to numbers from the host's own databases, read directly:
// no shell, no getent, and the same answer a libc lookup of local users gives.
import { readFileSync } from 'node:fs';
import { ErrorType, vmError } from '../common/errors.js';

export interface IdFiles {
  passwd?: string;
  group?: string;
}

interface Entry {
  name: string;
  id: number;
  primaryGid?: number;
}

function parse(file: string, idField: number, gidField?: number): Entry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw vmError(ErrorType.ConfigUnsupported, `cannot read ${file}: ${(err as Error).message}`, { file });
  }
  const out: Entry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const id = Number(f[idField]);
    if (!f[0] || !Number.isInteger(id)) continue;
    const gid = gidField === undefined ? undefined : Number(f[gidField]);
    out.push({ name: f[0], id, primaryGid: gid !== undefined && Number.isInteger(gid) ? gid : undefined });
  }
  return out;
}

/** "65534", "+65534" or 65534 is a number; anything else is a name. */
function numeric(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : undefined;
  const m = /^\+?(\d{1,10})$/.exec(v);
  return m ? Number(m[1]) : undefined;
}

export function resolveUser(user: string | number, files: IdFiles = {}): { uid: number; primaryGid?: number } {
  const file = files.passwd ?? '/etc/passwd';
  const n = numeric(user);
  const entries = parse(file, 2, 3);
  if (n !== undefined) return { uid: n, primaryGid: entries.find((e) => e.id === n)?.primaryGid };
  const e = entries.find((x) => x.name === user);
  if (!e) throw vmError(ErrorType.ConfigUnsupported, `unknown user ${JSON.stringify(user)} (not in ${file})`, { user: String(user) });
  return { uid: e.id, primaryGid: e.primaryGid };
}

export function resolveGroup(group: string | number, files: IdFiles = {}): number {
  const n = numeric(group);
  if (n !== undefined) return n;
  const file = files.group ?? '/etc/group';
  const e = parse(file, 2).find((x) => x.name === group);
  if (!e) throw vmError(ErrorType.ConfigUnsupported, `unknown group ${JSON.stringify(group)} (not in ${file})`, { group: String(group) });
  return e.id;
}
