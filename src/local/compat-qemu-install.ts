// setup --for-tests: Debian 12's QEMU 7.2 for the compatibility lane and the cross-version
// test, beside the system's QEMU 10 and without touching it: its packages (qemu-system-x86,
// -common, -data) are fetched with `apt-get download` at the newest 7.2 version apt's lists
// know outside a backports suite (so no Debian revision is written here), unpacked with
// `dpkg-deb -x` into a scratch directory next to the cache entry, and renamed into place
// only when all are in: a present tree is a complete one, and is not fetched again.
// qemu-img and qemu-nbd stay the system's (the host worker runs the ones on PATH).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SetupError } from './temporal-cli.js';
import { COMPAT_QEMU_SERIES, compatQemu, compatQemuPresent, type CompatQemu } from './compat-qemu.js';
import { which } from '../support/which.js';
import { downloadAndUnpack } from './linux-guest/debian-packages.js';

const PACKAGES = ['qemu-system-x86', 'qemu-system-common', 'qemu-system-data'];

function run(cmd: string, args: string[], cwd?: string): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } });
  return { ok: r.status === 0, out: r.stdout ?? '', err: (r.stderr || r.error?.message || `exit ${r.status}`).trim() };
}

export interface MadisonEntry {
  pkg: string;
  version: string;
  /** `bookworm/main`, `bookworm-backports/main`, ... */
  suite: string;
}

/** `apt-cache madison` lines: `pkg | version | URI suite/component arch Packages`. */
export function parseMadison(text: string): MadisonEntry[] {
  return text
    .split('\n')
    .map((l) => l.split('|').map((c) => c.trim()))
    .filter((c) => c.length === 3 && c[0] && c[1])
    .map(([pkg, version, where]) => ({ pkg: pkg!, version: version!, suite: where!.split(/\s+/)[1] ?? '' }))
    .filter((e) => e.suite !== '');
}

/** Is `a` a later Debian version than `b` (dpkg's own ordering). */
function newer(a: string, b: string): boolean {
  return run('dpkg', ['--compare-versions', a, 'gt', b]).ok;
}

/** 1:7.2+dfsg-7+deb12u18 is of series 7.2; 1:7.20.0 and 1:17.2 are not. */
function inSeriesOf(version: string, series: string): boolean {
  const upstream = version.replace(/^\d+:/, '');
  return upstream.startsWith(series) && !/^\d/.test(upstream.slice(series.length));
}

/** Per package, the newest version of the series outside any backports suite; undefined when one has none. */
export function pickCompatVersions(entries: readonly MadisonEntry[], series = COMPAT_QEMU_SERIES, isNewer = newer): Record<string, string> | undefined {
  const picked: Record<string, string> = {};
  for (const pkg of PACKAGES) {
    const inSeries = entries.filter((e) => e.pkg === pkg && !/-backports\//.test(e.suite) && inSeriesOf(e.version, series));
    if (inSeries.length === 0) return undefined;
    picked[pkg] = inSeries.map((e) => e.version).reduce((best, v) => (isNewer(v, best) ? v : best));
  }
  return picked;
}

function lookUp(): Record<string, string> | undefined {
  return pickCompatVersions(parseMadison(run('apt-cache', ['madison', ...PACKAGES]).out));
}

/** The compat QEMU's tree, fetched and unpacked when absent; returns where it is. */
export function ensureCompatQemu(log: (line: string) => void, q: CompatQemu = compatQemu()): CompatQemu {
  if (compatQemuPresent(q)) return q;
  for (const tool of ['apt-cache', 'apt-get', 'dpkg-deb', 'dpkg']) {
    if (!which(tool)) throw new SetupError(`QEMU ${COMPAT_QEMU_SERIES} for the compatibility tests is unpacked from Debian's packages: this needs ${tool}`);
  }
  let versions = lookUp();
  if (!versions && process.getuid?.() === 0) {
    log(`apt lists name no QEMU ${COMPAT_QEMU_SERIES}: apt-get update`);
    const upd = run('apt-get', ['update']);
    if (!upd.ok) throw new SetupError(`apt-get update failed: ${upd.err}`);
    versions = lookUp();
  }
  if (!versions) {
    throw new SetupError(
      `apt knows no QEMU ${COMPAT_QEMU_SERIES} (${PACKAGES.join(', ')}; Debian 12's bookworm suite has it): add that suite, or unpack QEMU ${COMPAT_QEMU_SERIES} into ${q.dir}`,
    );
  }
  const wanted = Object.entries(versions).map(([p, v]) => `${p}=${v}`);
  log(`QEMU ${COMPAT_QEMU_SERIES} for the compatibility lane: ${wanted.join(' ')} into ${q.dir}`);
  mkdirSync(dirname(q.dir), { recursive: true });
  const scratch = `${q.dir}.partial-${process.pid}`;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch);
  try {
    const root = downloadAndUnpack(wanted, scratch);
    rmSync(q.dir, { recursive: true, force: true });
    renameSync(root, q.dir);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (!compatQemuPresent(q)) throw new SetupError(`unpacked ${wanted.join(' ')} into ${q.dir}, but its QEMU, TCG module or data directory is not there`);
  return q;
}
