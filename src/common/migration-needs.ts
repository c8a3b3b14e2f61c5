// What a migration needs of each end's QEMU, from its flags: the migration capabilities it
// turns on, the commands it sends, and (on the destination) the versioned machine type the
// guest runs. Begin checks the source's QEMU, Prepare the destination's, each against its own
// probe and before anything changes; what is missing is refused with ConfigUnsupported naming
// the host and the missing pieces. A capability that shapes the stream (post-copy, XBZRLE
// pages) must be known at both ends; one that only steers the sender at the source only.
import { ErrorType, vmError } from './errors.js';
import { copiesStorage, type MigrateFlag } from './migration-types.js';
import type { ProbedCommand, QemuMigrationCapabilities } from './qemu-capabilities.js';

export type MigrationEnd = 'source' | 'destination';

export interface MigrationNeeds {
  capabilities: { name: string; why: string }[];
  commands: { name: ProbedCommand; why: string }[];
}

interface Need {
  name: string;
  why: string;
  ends: readonly MigrationEnd[];
  when: (flags: readonly MigrateFlag[]) => boolean;
}

const BOTH: readonly MigrationEnd[] = ['source', 'destination'];
const live = (flags: readonly MigrateFlag[]): boolean => !flags.includes('offline');

const CAPABILITIES: readonly Need[] = [
  // The source's monitor waits on MIGRATION events; the destination turns them on for its own watch.
  { name: 'events', why: 'every live migration', ends: BOTH, when: live },
  { name: 'postcopy-ram', why: "'postcopy'", ends: BOTH, when: (f) => live(f) && f.includes('postcopy') },
  { name: 'xbzrle', why: "'compressed' (XBZRLE)", ends: BOTH, when: (f) => live(f) && f.includes('compressed') },
  // The destination accepts the N channels only with multifd on too.
  { name: 'multifd', why: "'parallel' (multifd)", ends: BOTH, when: (f) => live(f) && f.includes('parallel') },
  { name: 'auto-converge', why: "'auto-converge'", ends: ['source'], when: (f) => live(f) && f.includes('auto-converge') },
  { name: 'pause-before-switchover', why: 'copying storage', ends: ['source'], when: (f) => live(f) && copiesStorage(f) },
];

const COMMANDS: readonly (Need & { name: ProbedCommand })[] = [
  { name: 'migrate-incoming', why: 'every live migration', ends: ['destination'], when: live },
  { name: 'migrate-start-postcopy', why: "'postcopy'", ends: ['source'], when: (f) => live(f) && f.includes('postcopy') },
  { name: 'blockdev-mirror', why: 'copying storage', ends: ['source'], when: (f) => live(f) && copiesStorage(f) },
  { name: 'migrate-continue', why: 'copying storage', ends: ['source'], when: (f) => live(f) && copiesStorage(f) },
  { name: 'nbd-server-start', why: 'copying storage', ends: ['destination'], when: (f) => live(f) && copiesStorage(f) },
  { name: 'block-export-add', why: 'copying storage', ends: ['destination'], when: (f) => live(f) && copiesStorage(f) },
];

export function migrationNeeds(flags: readonly MigrateFlag[], end: MigrationEnd): MigrationNeeds {
  const pick = <T extends Need>(list: readonly T[]): { name: T['name']; why: string }[] =>
    list.filter((n) => n.ends.includes(end) && n.when(flags)).map((n) => ({ name: n.name, why: n.why }));
  return { capabilities: pick(CAPABILITIES), commands: pick(COMMANDS) };
}

/** What this end's QEMU lacks of `needs` (and of `machine`, the versioned type the guest runs), in words. */
export function missingForMigration(needs: MigrationNeeds, have: QemuMigrationCapabilities & { machines?: readonly string[] }, machine?: string): string[] {
  const missing: string[] = [];
  if (machine !== undefined && have.machines !== undefined && !have.machines.includes(machine)) missing.push(`machine type '${machine}'`);
  for (const c of needs.capabilities) {
    if (!have.migrationCapabilities.includes(c.name)) missing.push(`migration capability '${c.name}' (for ${c.why})`);
  }
  for (const c of needs.commands) {
    if (have.commands[c.name] !== true) missing.push(`QMP command '${c.name}' (for ${c.why})`);
  }
  return missing;
}

/** Refuses (ConfigUnsupported) when `missing` is not empty, naming the host, its QEMU and what it lacks. */
export function refuseMissing(host: string, end: MigrationEnd, qemu: { binary: string; version: string }, missing: readonly string[]): void {
  if (missing.length === 0) return;
  throw vmError(
    ErrorType.ConfigUnsupported,
    `${end} host '${host}' cannot take part in this migration: its QEMU ${qemu.version} (${qemu.binary}) lacks ${missing.join(', ')}`,
    { host, end, missing: [...missing] },
  );
}
