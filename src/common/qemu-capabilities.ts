// What a host's QEMU can do for migration, as its worker probed it (qemu/capabilities-probe.ts):
// reported in hostInfo, compared between the two ends of a migration. Features come from the
// QEMU itself (its QMP schema and query-migrate-capabilities), never from its version number.

/** Commands whose presence the probe reports (a QEMU build may lack some; later versions add some). */
export const PROBED_COMMANDS = [
  'migrate-incoming',
  'migrate-recover',
  'migrate-pause',
  'migrate-start-postcopy',
  'migrate-continue',
  'block-dirty-bitmap-add',
  'block-dirty-bitmap-merge',
  'nbd-server-start',
  'block-export-add',
  'blockdev-mirror',
  'query-cpu-model-expansion',
  'calc-dirty-rate',
  'client_migrate_info',
] as const;
export type ProbedCommand = (typeof PROBED_COMMANDS)[number];

export interface QemuMigrationCapabilities {
  /** Every capability query-migrate-capabilities lists (what migrate-set-capabilities accepts). */
  migrationCapabilities: string[];
  /** The members of MigrateSetParameters in the QMP schema (what migrate-set-parameters accepts). */
  migrationParameters: string[];
  /** Whether the QMP schema has each command of PROBED_COMMANDS. */
  commands: Record<ProbedCommand, boolean>;
}

/** A machine type as the probe saw it: `alias` is the short name (pc, q35) that stands for this versioned type. */
export interface ProbedMachine {
  name: string;
  alias?: string;
  isDefault?: boolean;
  deprecated?: boolean;
}

/** The versioned type a name stands for on this QEMU (an alias resolved), or undefined when it has no such machine. */
export function resolveMachine(machines: readonly ProbedMachine[], name: string): string | undefined {
  return machines.find((m) => m.name === name)?.name ?? machines.find((m) => m.alias === name)?.name;
}
