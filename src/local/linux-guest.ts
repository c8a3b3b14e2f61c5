// A real Linux guest for tests and the demo: Debian's kernel (what linux-image-amd64 depends on)
// and an initramfs made here from busybox-static, the kernel modules the guest's devices need,
// /init and a static workload program (src/local/guest/). Built once per kernel version and
// builder inputs into ~/.cache/vmferry/linux-guest/<kernel release>-<hash>/; nothing is
// downloaded when a guest boots. See src/local/guest/init for the kernel parameters it reads.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PROJECT_ROOT, userCacheDir } from './paths.js';
import { SetupError } from './temporal-cli.js';
import { lookUpGuestPackages, resolveGuestPackages, unpackGuestPackages, type GuestPackages } from './linux-guest/debian-packages.js';
import { resolveGuestModules } from './linux-guest/modules.js';
import { newcArchive, type CpioEntry } from './linux-guest/newc-cpio.js';

export interface LinuxGuest {
  dir: string;
  /** bzImage, for -kernel / <os><kernel>. */
  kernel: string;
  /** gzip'd newc cpio, for -initrd / <os><initrd>. */
  initrd: string;
  kernelRelease: string;
}

const GUEST_SRC = join(PROJECT_ROOT, 'src', 'local', 'guest');
const BUILDER_SRC = [join(PROJECT_ROOT, 'src', 'local', 'linux-guest.ts'), join(PROJECT_ROOT, 'src', 'local', 'linux-guest'), GUEST_SRC];

export function linuxGuestCacheDir(): string {
  return join(userCacheDir(), 'linux-guest');
}

function filesUnder(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

function gccVersion(): string {
  try {
    return execFileSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' }).trim();
  } catch {
    throw new SetupError('the Linux test guest needs gcc and a static C library (Debian: gcc libc6-dev)');
  }
}

/** Anything that changes what the build produces changes the key. */
function buildKey(pkgs: GuestPackages): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ ...pkgs, gcc: gccVersion() }));
  for (const file of BUILDER_SRC.flatMap(filesUnder)) h.update(`\0${file.slice(PROJECT_ROOT.length)}\0`).update(readFileSync(file));
  return `${pkgs.kernelRelease}-${h.digest('hex').slice(0, 12)}`;
}

function guestAt(dir: string, kernelRelease: string): LinuxGuest | undefined {
  const g = { dir, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img'), kernelRelease };
  return existsSync(join(dir, 'manifest.json')) ? g : undefined;
}

/** The built guest for the current packages and sources, or undefined (never downloads or builds). */
export function findLinuxGuest(): LinuxGuest | undefined {
  const pkgs = lookUpGuestPackages();
  return pkgs && guestAt(join(linuxGuestCacheDir(), buildKey(pkgs)), pkgs.kernelRelease);
}

export function ensureLinuxGuest(log: (line: string) => void): LinuxGuest {
  const pkgs = resolveGuestPackages(log);
  const dir = join(linuxGuestCacheDir(), buildKey(pkgs));
  const ready = guestAt(dir, pkgs.kernelRelease);
  if (ready) return ready;
  const started = Date.now();
  log(`building the Linux test guest from ${pkgs.kernelPackage} ${pkgs.kernelVersion} and busybox-static ${pkgs.busyboxVersion}`);
  mkdirSync(linuxGuestCacheDir(), { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'vmferry-linux-guest-'));
  // Built beside its final place and renamed there, so a half-built guest is never found.
  const staging = `${dir}.partial-${process.pid}`;
  try {
    const root = unpackGuestPackages(pkgs, work);
    mkdirSync(staging, { recursive: true });
    const modulesDir = [join(root, 'lib', 'modules', pkgs.kernelRelease), join(root, 'usr', 'lib', 'modules', pkgs.kernelRelease)].find((d) => existsSync(d));
    if (!modulesDir) throw new SetupError(`${pkgs.kernelPackage} holds no modules directory for ${pkgs.kernelRelease}`);
    const modules = resolveGuestModules(modulesDir, log);
    const workload = join(work, 'vmferry-guest');
    execFileSync('gcc', ['-static', '-O2', '-pthread', '-s', '-Wall', '-o', workload, join(GUEST_SRC, 'vmferry-guest.c')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const entries: CpioEntry[] = [
      ...['bin', 'dev', 'etc', 'etc/acpi', 'etc/acpi/PWRF', 'lib', 'lib/modules', 'proc', 'sys', 'tmp'].map((path) => ({ kind: 'dir' as const, path })),
      // The kernel opens /dev/console for init before devtmpfs is mounted.
      { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
      { kind: 'file', path: 'bin/busybox', data: readFileSync(join(root, 'bin', 'busybox')), mode: 0o755 },
      { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
      { kind: 'file', path: 'init', data: readFileSync(join(GUEST_SRC, 'init')), mode: 0o755 },
      { kind: 'file', path: 'bin/vmferry-guest', data: readFileSync(workload), mode: 0o755 },
      { kind: 'file', path: 'etc/acpi/PWRF/00000080', data: readFileSync(join(GUEST_SRC, 'poweroff-button')), mode: 0o755 },
      ...modules.map((m) => ({ kind: 'file' as const, path: `lib/modules/${m.file}`, data: m.data })),
      { kind: 'file', path: 'lib/modules/load-order', data: Buffer.from(modules.map((m) => `${m.file}\n`).join('')) },
    ];
    writeFileSync(join(staging, 'initrd.img'), gzipSync(newcArchive(entries), { level: 9 }));
    writeFileSync(join(staging, 'vmlinuz'), readFileSync(join(root, 'boot', `vmlinuz-${pkgs.kernelRelease}`)));
    writeFileSync(
      join(staging, 'manifest.json'),
      JSON.stringify({ ...pkgs, modules: modules.map((m) => m.name), builtAt: new Date().toISOString() }, null, 2) + '\n',
    );
    try {
      renameSync(staging, dir);
    } catch (err) {
      // Another setup finished the same build first: its result is identical.
      if (!guestAt(dir, pkgs.kernelRelease)) throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
  }
  log(`Linux test guest built in ${((Date.now() - started) / 1000).toFixed(1)} s: ${dir}`);
  return guestAt(dir, pkgs.kernelRelease)!;
}
