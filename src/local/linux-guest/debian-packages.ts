// The guest's kernel and busybox come from Debian packages that are fetched and unpacked into a
// scratch directory, never installed: the host's own kernel and /bin stay as they are.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SetupError } from '../temporal-cli.js';
import { which } from '../../support/which.js';

export interface GuestPackages {
  /** linux-image-6.1.0-57-amd64: what linux-image-amd64 depends on today. */
  kernelPackage: string;
  kernelVersion: string;
  /** 6.1.0-57-amd64: `uname -r` in the guest and the modules directory name. */
  kernelRelease: string;
  busyboxVersion: string;
}

const KERNEL_META = 'linux-image-amd64';
const BUSYBOX = 'busybox-static';

function run(cmd: string, args: string[], cwd?: string): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
    env: { ...process.env, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' },
  });
  return { ok: r.status === 0, out: r.stdout ?? '', err: (r.stderr || r.error?.message || `exit ${r.status}`).trim() };
}

function candidate(pkg: string): string | undefined {
  const r = run('apt-cache', ['policy', pkg]);
  const v = /^\s*Candidate:\s*(\S+)/m.exec(r.out)?.[1];
  return v && v !== '(none)' ? v : undefined;
}

/** What apt would fetch now, from its lists alone (no network); undefined when they name none. */
export function lookUpGuestPackages(): GuestPackages | undefined {
  // One apt-cache run (each costs about a second here: it rebuilds its cache every time).
  const show = run('apt-cache', ['show', '--no-all-versions', KERNEL_META, BUSYBOX]);
  const stanzas = show.out.split(/\n\s*\n/);
  const field = (pkg: string, name: string): string | undefined => {
    const stanza = stanzas.find((st) => new RegExp(`^Package: ${pkg}$`, 'm').test(st));
    return stanza && new RegExp(`^${name}: (.*)$`, 'm').exec(stanza)?.[1];
  };
  // linux-image-amd64 depends on one versioned image at exactly the version to take.
  const dep = /(linux-image-\d[^\s,(]*)\s*(?:\(=\s*([^)\s]+)\))?/.exec(field(KERNEL_META, 'Depends') ?? '');
  const busyboxVersion = field(BUSYBOX, 'Version');
  if (!dep?.[1] || !busyboxVersion) return undefined;
  const kernelPackage = dep[1];
  const kernelVersion = dep[2] ?? candidate(kernelPackage);
  if (!kernelVersion) return undefined;
  return { kernelPackage, kernelVersion, kernelRelease: kernelPackage.slice('linux-image-'.length), busyboxVersion };
}

/** Asks apt which packages to use; refreshes apt's lists once (root only) when they know none. */
export function resolveGuestPackages(log: (line: string) => void): GuestPackages {
  if (!which('apt-cache') || !which('dpkg-deb')) {
    throw new SetupError(`the Linux test guest is built from Debian packages (${KERNEL_META}, ${BUSYBOX}): this needs apt-cache, apt-get and dpkg-deb`);
  }
  const found = lookUpGuestPackages();
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new SetupError(`apt knows no ${KERNEL_META} or ${BUSYBOX} candidate: run \`sudo apt-get update\` and setup again`);
  }
  log('apt lists name no guest kernel yet: apt-get update');
  const upd = run('apt-get', ['update']);
  if (!upd.ok) throw new SetupError(`apt-get update failed: ${upd.err}`);
  const again = lookUpGuestPackages();
  if (!again) throw new SetupError(`apt knows no ${KERNEL_META} or ${BUSYBOX} candidate even after apt-get update`);
  return again;
}

/** Downloads both packages into `workDir` and unpacks them into `workDir/root`; returns that root. */
export function unpackGuestPackages(pkgs: GuestPackages, workDir: string): string {
  return downloadAndUnpack([`${pkgs.kernelPackage}=${pkgs.kernelVersion}`, `${BUSYBOX}=${pkgs.busyboxVersion}`], workDir);
}

/** `apt-get download` of `wanted` (`package=version`) into `workDir`, each unpacked with `dpkg-deb -x` into `workDir/root`; returns that root. */
export function downloadAndUnpack(wanted: string[], workDir: string): string {
  // As root, apt drops to its _apt user to download, which cannot write a private temp dir.
  const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
  const dl = run('apt-get', ['download', ...sandbox, ...wanted], workDir);
  if (!dl.ok) throw new SetupError(`apt-get download ${wanted.join(' ')} failed: ${dl.err}`);
  const root = join(workDir, 'root');
  for (const deb of readdirSync(workDir).filter((f) => f.endsWith('.deb'))) {
    const x = run('dpkg-deb', ['-x', join(workDir, deb), root]);
    if (!x.ok) throw new SetupError(`dpkg-deb -x ${deb} failed: ${x.err}`);
  }
  return root;
}
