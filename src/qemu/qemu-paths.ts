// A QEMU that is not the system's (a second version kept beside it, e.g. unpacked from Debian's
// packages under a cache directory) may need to be told where its loadable modules (the TCG
// accelerator is one in Debian's builds) and its firmware and data files are, or it finds
// another version's. The host config names them; every QEMU the host worker spawns, the
// short-lived probe included, gets them: QEMU_MODULE_DIR in its environment and one `-L DIR`
// per firmware directory, in order, ahead of its other arguments.

export interface QemuPaths {
  /** Absolute directory of the QEMU's loadable modules (QEMU_MODULE_DIR); absent: QEMU's own default. */
  moduleDir?: string;
  /** Absolute directories searched for firmware, option ROMs and keymaps, first first (`-L`); empty: QEMU's defaults. */
  firmwareDirs: readonly string[];
}

export const DEFAULT_QEMU_PATHS: QemuPaths = { firmwareDirs: [] };

/** QEMU's argument vector with the firmware directories in front. */
export function argsWithPaths(args: readonly string[], paths: QemuPaths = DEFAULT_QEMU_PATHS): string[] {
  return [...paths.firmwareDirs.flatMap((d) => ['-L', d]), ...args];
}

/** What QEMU's environment gets on top of the worker's: QEMU_MODULE_DIR when one is configured. */
export function envOfPaths(paths: QemuPaths = DEFAULT_QEMU_PATHS): Record<string, string> {
  return paths.moduleDir === undefined ? {} : { QEMU_MODULE_DIR: paths.moduleDir };
}
