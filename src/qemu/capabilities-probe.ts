// The migration half of a host's QEMU probe (probe.ts runs the short-lived QEMU): which
// migration capabilities it knows (query-migrate-capabilities), which parameters
// migrate-set-parameters takes and which commands exist (both from query-qmp-schema, so
// nothing is inferred from the version number), and which versioned machine type a
// running QEMU was started as. The parsing is pure, for tests without a QEMU.
import { PROBED_COMMANDS, type ProbedCommand, type QemuMigrationCapabilities } from '../common/qemu-capabilities.js';
import { ErrorType, vmError } from '../common/errors.js';
import { migrationCapabilityNames } from './migration-params.js';
import type { QmpClient } from './qmp-client.js';

/** One entry of query-qmp-schema (SchemaInfo): type names are masked numbers, command names are not. */
export interface SchemaEntry {
  name: string;
  'meta-type': string;
  'arg-type'?: string;
  members?: { name: string }[];
}

function schemaError(what: string): Error {
  return vmError(ErrorType.InternalError, `QEMU's QMP schema is not as expected: ${what}`);
}

/** The members of a command's argument object (for migrate-set-parameters: MigrateSetParameters). */
export function commandArguments(schema: readonly SchemaEntry[], command: string): string[] | undefined {
  const cmd = schema.find((e) => e['meta-type'] === 'command' && e.name === command);
  if (cmd === undefined) return undefined;
  const args = schema.find((e) => e.name === cmd['arg-type']);
  if (args === undefined || args['meta-type'] !== 'object') throw schemaError(`the arguments of ${command} are not an object`);
  return (args.members ?? []).map((m) => m.name);
}

/** Parameters and commands from query-qmp-schema. */
export function parseSchema(raw: unknown): Omit<QemuMigrationCapabilities, 'migrationCapabilities'> {
  if (!Array.isArray(raw)) throw schemaError('query-qmp-schema did not return a list');
  const schema = raw as SchemaEntry[];
  const commandNames = new Set(schema.filter((e) => e['meta-type'] === 'command').map((e) => e.name));
  const migrationParameters = commandArguments(schema, 'migrate-set-parameters');
  if (migrationParameters === undefined) throw schemaError('no migrate-set-parameters command');
  const commands = Object.fromEntries(PROBED_COMMANDS.map((c) => [c, commandNames.has(c)])) as Record<ProbedCommand, boolean>;
  return { migrationParameters, commands };
}

/** Asks a QEMU (any machine, even `none`) what it can do for migration. */
export async function probeMigrationCapabilities(qmp: QmpClient): Promise<QemuMigrationCapabilities> {
  const migrationCapabilities = await migrationCapabilityNames(qmp);
  return { migrationCapabilities, ...parseSchema(await qmp.execute('query-qmp-schema')) };
}

/** QOM's class name for a machine type is its name with this suffix. */
const MACHINE_CLASS_SUFFIX = '-machine';

/** The versioned machine type from the type of QOM's /machine (e.g. pc-i440fx-7.2-machine). */
export function machineTypeOfClass(qomType: unknown): string {
  if (typeof qomType !== 'string' || !qomType.endsWith(MACHINE_CLASS_SUFFIX) || qomType.length === MACHINE_CLASS_SUFFIX.length) {
    throw schemaError(`/machine has type ${JSON.stringify(qomType)}`);
  }
  return qomType.slice(0, -MACHINE_CLASS_SUFFIX.length);
}

/** The versioned machine type a running QEMU was started as, whatever alias its command line said. */
export async function currentMachineType(qmp: QmpClient): Promise<string> {
  return machineTypeOfClass(await qmp.execute('qom-get', { path: '/machine', property: 'type' }));
}
