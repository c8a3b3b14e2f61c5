// What a sparse (mapped-ram) save or restore needs of the host's QEMU, from its probe: the
// mapped-ram and multifd capabilities, the multifd-channels parameter, and direct-io for
// --bypass-cache. Checked by saveBegin and restoreBegin before anything changes; what is
// missing is refused with ConfigUnsupported naming the host, its QEMU and the pieces.
import { ErrorType, vmError } from './errors.js';
import type { QemuMigrationCapabilities } from './qemu-capabilities.js';

export function missingForSparse(have: Pick<QemuMigrationCapabilities, 'migrationCapabilities' | 'migrationParameters'>, bypassCache: boolean): string[] {
  const missing: string[] = [];
  for (const c of ['mapped-ram', 'multifd']) {
    if (!have.migrationCapabilities.includes(c)) missing.push(`migration capability '${c}' (for the sparse image format)`);
  }
  if (!have.migrationParameters.includes('multifd-channels')) missing.push("migration parameter 'multifd-channels' (for parallel channels)");
  if (bypassCache && !have.migrationParameters.includes('direct-io'))
    missing.push("migration parameter 'direct-io' (for --bypass-cache with the sparse format)");
  return missing;
}

export function refuseSparse(host: string, job: 'save' | 'restore', qemu: { binary: string; version: string }, missing: readonly string[]): void {
  if (missing.length === 0) return;
  throw vmError(
    ErrorType.ConfigUnsupported,
    `host '${host}' cannot ${job} a sparse image: its QEMU ${qemu.version} (${qemu.binary}) lacks ${missing.join(', ')}`,
    {
      host,
      missing: [...missing],
    },
  );
}
