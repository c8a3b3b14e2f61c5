// The second QEMU the tests run beside the system's: Debian 12's QEMU 7.2, unpacked from its
// packages (never installed) under the user cache by setup --for-tests (compat-qemu-install.ts).
// A host worker runs it with three settings: the binary, its module directory (Debian builds
// the TCG accelerator as a module), and its firmware directories. Debian's QEMU looks for its
// data relative to its own binary, so the unpacked tree's usr/share/qemu comes first; SeaBIOS
// and the iPXE option ROMs are not in QEMU's packages, and the system's serve both versions.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { userCacheDir } from './paths.js';

export const COMPAT_QEMU_SERIES = '7.2';

/** Firmware QEMU's packages leave to others (Debian's seabios and ipxe-qemu). */
const SYSTEM_FIRMWARE_DIRS = ['/usr/share/seabios', '/usr/lib/ipxe/qemu'];

export interface CompatQemu {
  dir: string;
  binary: string;
  moduleDir: string;
  firmwareDirs: string[];
}

export function compatQemu(dir = join(userCacheDir(), `qemu-${COMPAT_QEMU_SERIES}`)): CompatQemu {
  return {
    dir,
    binary: join(dir, 'usr', 'bin', 'qemu-system-x86_64'),
    moduleDir: join(dir, 'usr', 'lib', 'x86_64-linux-gnu', 'qemu'),
    firmwareDirs: [join(dir, 'usr', 'share', 'qemu'), ...SYSTEM_FIRMWARE_DIRS],
  };
}

/** The unpacked tree is complete: setup renames it into place only once every package is in. */
export function compatQemuPresent(q: CompatQemu = compatQemu()): boolean {
  return existsSync(q.binary) && existsSync(join(q.moduleDir, 'accel-tcg-x86_64.so')) && existsSync(q.firmwareDirs[0]!);
}

/** A host worker's environment for running it (the emulator allowlist defaults to the binary). */
export function compatQemuHostEnv(q: CompatQemu = compatQemu()): Record<string, string> {
  return {
    VMFERRY_QEMU_BINARY: q.binary,
    VMFERRY_QEMU_MODULE_DIR: q.moduleDir,
    VMFERRY_QEMU_FIRMWARE_DIRS: q.firmwareDirs.join(':'),
  };
}
