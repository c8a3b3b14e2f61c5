// The QEMU probe kept on disk in the host's state directory, one entry per binary path, valid
// while the binary's mtime is unchanged: a restarted worker reads it instead of starting a
// QEMU, and a package upgrade (a new mtime) is probed again. An entry written by a worker
// that probed less (an older format) counts as absent.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../support/atomic-write.js';
import type { QemuProbe } from './probe.js';

/** Bumped whenever QemuProbe gains or changes a field. */
export const PROBE_FORMAT = 2;
export const PROBE_CACHE_FILE = 'qemu-probe.json';

interface CacheFile {
  format: number;
  probes: Record<string, QemuProbe>;
}

function readCache(dir: string): CacheFile {
  try {
    const parsed = JSON.parse(readFileSync(join(dir, PROBE_CACHE_FILE), 'utf8')) as Partial<CacheFile>;
    if (parsed.format === PROBE_FORMAT && typeof parsed.probes === 'object' && parsed.probes !== null) return { format: PROBE_FORMAT, probes: parsed.probes };
  } catch {
    // absent or unreadable: probed again and rewritten
  }
  return { format: PROBE_FORMAT, probes: {} };
}

/** The stored probe of `binary` when it was made of the binary with this mtime. */
export function readCachedProbe(dir: string, binary: string, mtimeMs: number): QemuProbe | undefined {
  const p = readCache(dir).probes[binary];
  return p !== undefined && p.binary === binary && p.mtimeMs === mtimeMs ? p : undefined;
}

export function writeCachedProbe(dir: string, probe: QemuProbe): void {
  const cache = readCache(dir);
  cache.probes[probe.binary] = probe;
  writeFileAtomic(join(dir, PROBE_CACHE_FILE), `${JSON.stringify(cache)}\n`);
}
