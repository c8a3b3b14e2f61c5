// This host's QEMU as its worker probed it (qemu/probe.ts), for hostInfo, the CPU checks and
// the migration checks: the probe of the binary a domain runs on (its <emulator>, or the
// host's QEMU), cached in the state directory, with what the test knob hides taken out; and
// the check that this end of a migration has what the job needs (common/migration-needs.ts).
import type { HostQemuInfo } from '../common/domain-types.js';
import { migrationNeeds, missingForMigration, refuseMissing, type MigrationEnd } from '../common/migration-needs.js';
import type { MigrateFlag } from '../common/migration-types.js';
import { PROBED_COMMANDS } from '../common/qemu-capabilities.js';
import { missingForSparse, refuseSparse } from '../common/save-needs.js';
import type { DomainDef } from '../domain/index.js';
import { cachedProbe, type QemuProbe } from '../qemu/probe.js';
import type { QemuPaths } from '../qemu/qemu-paths.js';
import { resolveOnPath } from './emulators.js';

/**
 * Test-only (VMFERRY_HOST_QEMU_HIDE): parts of the probe this worker acts as if its QEMU
 * lacked, so a test can stand up a host that lacks a machine type or a capability with the
 * one QEMU installed. Empty in production.
 */
export interface QemuHide {
  machines: string[];
  capabilities: string[];
  parameters: string[];
  commands: string[];
}

export const NO_HIDE: QemuHide = { machines: [], capabilities: [], parameters: [], commands: [] };

const HIDE_KINDS: Record<string, keyof QemuHide> = { machine: 'machines', capability: 'capabilities', parameter: 'parameters', command: 'commands' };

/** "machine:pc-i440fx-7.2,capability:postcopy-ram": KIND:NAME entries, KIND one of machine, capability, parameter, command. */
export function parseQemuHide(spec: string | undefined): QemuHide {
  const hide: QemuHide = { machines: [], capabilities: [], parameters: [], commands: [] };
  for (const item of (spec ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const at = item.indexOf(':');
    const kind = HIDE_KINDS[item.slice(0, at)];
    const name = item.slice(at + 1);
    if (at <= 0 || kind === undefined || name === '') {
      throw new Error(`bad VMFERRY_HOST_QEMU_HIDE entry ${JSON.stringify(item)} (KIND:NAME, KIND one of ${Object.keys(HIDE_KINDS).join(', ')})`);
    }
    hide[kind].push(name);
  }
  return hide;
}

export function withHidden(p: QemuProbe, hide: QemuHide): QemuProbe {
  if (Object.values(hide).every((l: string[]) => l.length === 0)) return p;
  const commands = { ...p.migration.commands };
  for (const c of hide.commands) if (c in commands) commands[c as keyof typeof commands] = false;
  return {
    ...p,
    // A hidden alias hides the type it stands for (a test need not know the version behind `pc`).
    machines: p.machines.filter((m) => !hide.machines.includes(m.name) && !(m.alias !== undefined && hide.machines.includes(m.alias))),
    migration: {
      migrationCapabilities: p.migration.migrationCapabilities.filter((c) => !hide.capabilities.includes(c)),
      migrationParameters: p.migration.migrationParameters.filter((c) => !hide.parameters.includes(c)),
      commands,
    },
  };
}

export interface ProbeSettings {
  qemuBinary: string;
  /** The probe's QEMU socket and log live here while it runs. */
  runDir: string;
  /** The probe is kept here across worker restarts. */
  stateDir: string;
  qemuHide: QemuHide;
  /** Module and firmware directories every QEMU of this host is started with. */
  qemuPaths: QemuPaths;
}

/** The probe of `binary` (a path, or a name looked up on PATH), cached per path and mtime. */
export async function probeBinary(binary: string, s: ProbeSettings): Promise<QemuProbe> {
  const probe = await cachedProbe(resolveOnPath(binary, process.env.PATH) ?? binary, s.runDir, { cacheDir: s.stateDir, paths: s.qemuPaths });
  return withHidden(probe, s.qemuHide);
}

/** The probe of the QEMU `def` runs on here: its <emulator>, or the host's own. */
export async function probeFor(def: Pick<DomainDef, 'devices'>, s: ProbeSettings): Promise<QemuProbe> {
  return await probeBinary(def.devices.emulator ?? s.qemuBinary, s);
}

/** Every name -machine takes on this QEMU: the versioned types and their aliases. */
export function machineNames(p: QemuProbe): string[] {
  return p.machines.flatMap((m) => (m.alias !== undefined ? [m.name, m.alias] : [m.name]));
}

/**
 * Refuses (ConfigUnsupported) a migration this end's QEMU cannot take part in: a capability
 * or command the flags need, or (`machine`, on the destination) the guest's machine type.
 */
export function checkMigrationEnd(host: string, end: MigrationEnd, probe: QemuProbe, flags: readonly MigrateFlag[], machine?: string): void {
  const missing = missingForMigration(migrationNeeds(flags, end), { ...probe.migration, machines: machineNames(probe) }, machine);
  refuseMissing(host, end, probe, missing);
}

/** Refuses (ConfigUnsupported) a sparse save or restore this host's QEMU for `def` cannot do. */
export async function checkSparseImage(
  host: string,
  job: 'save' | 'restore',
  def: Pick<DomainDef, 'devices'>,
  s: ProbeSettings,
  bypassCache: boolean,
): Promise<void> {
  const probe = await probeFor(def, s);
  refuseSparse(host, job, probe, missingForSparse(probe.migration, bypassCache));
}

/** `def` as the versioned machine type it runs (from currentMachineType); unchanged when that is unknown (offline). */
export function withMachine(def: DomainDef, machine: string | undefined): DomainDef {
  return machine === undefined || def.os.machine === machine ? def : { ...def, os: { ...def.os, machine } };
}

/** What hostInfo says of the probe's migration half. */
export function migrationInfo(p: QemuProbe): Pick<HostQemuInfo, 'machineAliases' | 'migrationCapabilities' | 'migrationParameters' | 'commands'> {
  return {
    machineAliases: Object.fromEntries(p.machines.filter((m) => m.alias !== undefined).map((m) => [m.alias!, m.name])),
    migrationCapabilities: p.migration.migrationCapabilities,
    migrationParameters: p.migration.migrationParameters,
    commands: PROBED_COMMANDS.filter((c) => p.migration.commands[c] === true),
  };
}
