// QEMU and the compressors come from Debian. The setup step installs them when it
// runs as root on a Debian-like machine, and otherwise says exactly what is missing.
import { spawnSync } from 'node:child_process';
import { SetupError } from './temporal-cli.js';
import { which } from '../support/which.js';

/** command we need -> Debian package that ships it */
const REQUIRED: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
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
  // Save-image interoperability: a private libvirtd and virsh (libvirt-daemon pulls in its QEMU driver).
  libvirtd: 'libvirt-daemon',
  virsh: 'libvirt-clients',
  // The tunnel test captures the migration link to prove the stream is encrypted.
  tcpdump: 'tcpdump',
  // The workflow-logic tests run on Temporal's Java test server, which Maven resolves (test-server.ts).
  java: 'default-jre-headless',
  mvn: 'maven',
};

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

export function ensureHostPackages(log: (line: string) => void, forTests = false): void {
  const missing = missingHostPackages(forTests);
  if (missing.length === 0) return;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !which('apt-get')) {
    throw new SetupError(`missing Debian packages: ${missing.join(' ')}. Install them with: sudo apt-get install -y ${missing.join(' ')}`);
  }
  log(`installing ${missing.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
    if (r.status !== 0) throw new SetupError(`apt-get ${args[0]} failed (exit ${r.status}); install ${missing.join(' ')} by hand`);
  }
  const still = missingHostPackages(forTests);
  if (still.length) throw new SetupError(`apt-get ran but ${still.join(' ')} still missing`);
}
