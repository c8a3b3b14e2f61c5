// QEMU, libvirt (for the tests) and the compressors come from Debian. QEMU must be 10 or newer
// (and libvirt 11.3 or newer): on Debian 12 that means its backports suite, which setup adds to
// apt's sources from the mirror the machine already uses, then installs with `-t
// <codename>-backports`. Done when dpkg says the versions are there (one dpkg-query run).
// As root on a Debian-like machine setup installs what is missing; otherwise it says exactly
// what to install.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { SetupError } from './temporal-cli.js';
import { hasSuite, readAptSources, releaseSource, suiteStanza } from './apt-sources.js';
import { which } from '../support/which.js';

/** command we need -> Debian package that ships it (any version). */
const REQUIRED: Record<string, string> = {
  // Save-image compressors, spawned by the host worker.
  gzip: 'gzip',
  bzip2: 'bzip2',
  xz: 'xz-utils',
  lzop: 'lzop',
  zstd: 'zstd',
  // The SELinux security driver reads and writes security.selinux with these.
  setfattr: 'attr',
};

/** Only the test suite needs these: it validates the deployment files offline. */
const FOR_TESTS: Record<string, string> = {
  'docker-compose': 'docker-compose',
  'systemd-analyze': 'systemd',
  // The Web UI test drives Debian's Chromium through playwright-core (no browser download).
  chromium: 'chromium',
  // The tunnel test captures the migration link to prove the stream is encrypted.
  tcpdump: 'tcpdump',
  // The workflow-logic tests run on Temporal's Java test server, which Maven resolves (test-server.ts).
  java: 'default-jre-headless',
  mvn: 'maven',
};

/** Packages that must be at least a version: QEMU (qemu-system-x86_64, qemu-img, their data) and, for tests, libvirt. */
export const MIN_QEMU = [10, 0];
export const MIN_LIBVIRT = [11, 3];
// Since QEMU 8 Debian ships the SPICE display (graphics type='spice') as a module package of its own.
const QEMU_PACKAGES = ['qemu-system-x86', 'qemu-utils', 'qemu-system-common', 'qemu-system-data', 'qemu-system-modules-spice'];
// Save-image interoperability: a private libvirtd and virsh (test/libvirt-interop.test.ts); the storage driver for the storage bench's pool (libvirt 11 ships it apart).
const LIBVIRT_PACKAGES = ['libvirt-daemon', 'libvirt-daemon-driver-qemu', 'libvirt-daemon-driver-storage', 'libvirt-clients'];

function run(cmd: string, args: string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return { ok: r.status === 0, out: r.stdout ?? '', err: (r.stderr || r.error?.message || `exit ${r.status}`).trim() };
}

/** The upstream part of a Debian version as numbers: `1:10.0.2+ds-2+deb13u1~bpo12+1` -> [10, 0, 2]. */
export function upstreamVersion(debian: string): number[] {
  const upstream = debian.replace(/^\d+:/, '');
  return (/^\d+(\.\d+)*/.exec(upstream)?.[0] ?? '').split('.').filter(Boolean).map(Number);
}

export function atLeast(version: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const v = version[i] ?? 0;
    if (v !== min[i]) return v > min[i]!;
  }
  return true;
}

/** Installed versions from dpkg (absent: not installed). */
function installedVersions(pkgs: string[]): Record<string, string | undefined> {
  const r = run('dpkg-query', ['-W', '-f', '${Package}\t${db:Status-Abbrev}\t${Version}\n', ...pkgs]);
  const found: Record<string, string | undefined> = {};
  for (const line of r.out.split('\n')) {
    const [pkg, status, version] = line.split('\t');
    if (pkg && status?.startsWith('ii') && version) found[pkg.replace(/:.*$/, '')] = version;
  }
  return found;
}

/** `pkg (have)` for each package below its minimum; [] when all are there. */
export function belowMinimum(installed: Record<string, string | undefined>, wanted: Record<string, readonly number[]>): string[] {
  return Object.entries(wanted)
    .filter(([pkg, min]) => installed[pkg] === undefined || !atLeast(upstreamVersion(installed[pkg]), min))
    .map(([pkg]) => pkg);
}

function versionedWanted(forTests: boolean): Record<string, readonly number[]> {
  return Object.fromEntries([...QEMU_PACKAGES.map((p) => [p, MIN_QEMU]), ...(forTests ? LIBVIRT_PACKAGES.map((p) => [p, MIN_LIBVIRT]) : [])]);
}

export function missingHostPackages(forTests = false): string[] {
  const wanted = { ...REQUIRED, ...(forTests ? FOR_TESTS : {}) };
  return [
    ...new Set(
      Object.entries(wanted)
        .filter(([cmd]) => !which(cmd))
        .map(([, pkg]) => pkg),
    ),
  ];
}

/** Versioned packages to install or upgrade. Without dpkg, QEMU's own --version says whether it is new enough. */
export function outdatedPackages(forTests = false): string[] {
  const wanted = versionedWanted(forTests);
  if (which('dpkg-query')) return belowMinimum(installedVersions(Object.keys(wanted)), wanted);
  const v = /version (\d+(?:\.\d+)*)/.exec(run('qemu-system-x86_64', ['--version']).out)?.[1];
  return v !== undefined && atLeast(v.split('.').map(Number), MIN_QEMU) ? [] : ['qemu-system-x86'];
}

function osRelease(): Record<string, string> {
  try {
    return Object.fromEntries(
      readFileSync('/etc/os-release', 'utf8')
        .split('\n')
        .map((l) => /^([A-Z_]+)=("?)(.*)\2$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1]!, m[3]!]),
    );
  } catch {
    return {};
  }
}

/** What apt would install for `pkg` now (its lists alone). */
function candidate(pkg: string): string | undefined {
  const v = /^\s*Candidate:\s*(\S+)/m.exec(run('apt-cache', ['policy', pkg]).out)?.[1];
  return v && v !== '(none)' ? v : undefined;
}

const BACKPORTS_FILE = '/etc/apt/sources.list.d/vmferry-backports.sources';

/** Adds `<codename>-backports` from the release's own mirror unless apt has it; true when it wrote the file. */
function ensureBackportsSource(codename: string, log: (line: string) => void): boolean {
  const suite = `${codename}-backports`;
  const sources = readAptSources();
  if (hasSuite(sources, suite)) return false;
  const release = releaseSource(sources, codename);
  if (!release)
    throw new SetupError(
      `QEMU >= ${MIN_QEMU[0]} comes from ${suite} here, and no apt source serves ${codename} to take its mirror from: add ${suite} to apt's sources`,
    );
  log(`adding ${suite} to apt's sources (${BACKPORTS_FILE}, the mirror of ${release.file})`);
  writeFileSync(
    BACKPORTS_FILE,
    suiteStanza(release, suite, `Added by vmferry's setup: QEMU >= ${MIN_QEMU[0]} and libvirt >= ${MIN_LIBVIRT.join('.')} for Debian ${codename}.`),
    {
      mode: 0o644,
    },
  );
  return true;
}

function aptGet(args: string[], what: string): void {
  const r = spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new SetupError(`apt-get ${args[0]} failed (exit ${r.status}); install ${what} by hand`);
}

export function ensureHostPackages(log: (line: string) => void, forTests = false): void {
  const missing = missingHostPackages(forTests);
  const outdated = outdatedPackages(forTests);
  if (missing.length === 0 && outdated.length === 0) return;
  const isRoot = process.getuid?.() === 0;
  const wanted = [...missing, ...outdated];
  if (!isRoot || !which('apt-get') || !which('apt-cache')) {
    throw new SetupError(
      `missing Debian packages: ${wanted.join(' ')} (QEMU >= ${MIN_QEMU.join('.')}${forTests ? `, libvirt >= ${MIN_LIBVIRT.join('.')}` : ''}). ` +
        `Install them with: sudo apt-get install -y ${wanted.join(' ')} (on Debian 12 the versioned ones from bookworm-backports: -t bookworm-backports)`,
    );
  }
  aptGet(['update'], wanted.join(' '));
  if (missing.length) {
    log(`installing ${missing.join(' ')} with apt-get`);
    aptGet(['install', '-y', '--no-install-recommends', ...missing], missing.join(' '));
  }
  if (outdated.length) {
    // The release's own suite may do (Debian 13); otherwise its backports.
    const all = Object.keys(versionedWanted(forTests));
    const fromRelease = atLeast(upstreamVersion(candidate('qemu-system-x86') ?? '0'), MIN_QEMU);
    let target: string[] = [];
    if (!fromRelease) {
      const codename = osRelease().VERSION_CODENAME;
      if (!codename)
        throw new SetupError(
          `apt offers no QEMU >= ${MIN_QEMU[0]} and /etc/os-release names no codename to find its backports: install QEMU >= ${MIN_QEMU[0]} by hand`,
        );
      if (ensureBackportsSource(codename, log)) aptGet(['update'], all.join(' '));
      target = ['-t', `${codename}-backports`];
    }
    log(`installing ${all.join(' ')} with apt-get ${target.join(' ')}`.trimEnd());
    aptGet(['install', '-y', '--no-install-recommends', ...target, ...all], all.join(' '));
  }
  const still = [...missingHostPackages(forTests), ...outdatedPackages(forTests)];
  if (still.length) throw new SetupError(`apt-get ran but ${still.join(' ')} still missing or older than needed (QEMU >= ${MIN_QEMU.join('.')})`);
}
