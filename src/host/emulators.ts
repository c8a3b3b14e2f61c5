// Which programs a domain's <emulator> may name on this host. The host worker
// spawns that program with QEMU's arguments, so a definition naming /bin/sh (or
// any other binary) must be refused: only the configured allow-list is run.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, normalize } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import type { DomainDef } from '../domain/index.js';

/** The absolute path `exec` would run for a bare command name, or undefined when PATH has none. */
export function resolveOnPath(command: string, pathEnv: string | undefined): string | undefined {
  if (isAbsolute(command)) return normalize(command);
  if (command.includes('/')) return undefined;
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (!isAbsolute(dir)) continue;
    const candidate = join(dir, command);
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Refuses a definition whose <emulator> is not on the allow-list (compared as
 * normalized absolute paths, never through symlinks, so swapping a link later
 * does not change what is allowed). A definition without <emulator> runs the
 * host's own QEMU binary and is always allowed.
 */
export function checkEmulator(allowed: readonly string[], def: Pick<DomainDef, 'name' | 'devices'>): void {
  const emulator = def.devices.emulator;
  if (emulator === undefined) return;
  if (isAbsolute(emulator) && allowed.includes(normalize(emulator))) return;
  throw vmError(
    ErrorType.ConfigUnsupported,
    `emulator ${JSON.stringify(emulator.slice(0, 200))} of domain '${def.name}' is not allowed on this host (allowed: ${allowed.join(', ') || 'none'}; set the host's emulators / VMFERRY_HOST_EMULATORS)`,
    { domain: def.name },
  );
}
