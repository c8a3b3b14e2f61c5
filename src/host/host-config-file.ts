// The host worker's JSON config file (VMFERRY_HOST_CONFIG): every key it may hold,
// checked strictly, so a misspelt key stops the worker at start with the key's name
// instead of being ignored while a default quietly takes its place.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { fileNumber } from '../common/config-schema.js';
import { HostConfigError } from './host-env.js';

const port = fileNumber({ integer: true, min: 1, max: 65535 });

export const hostConfigFileSchema = z.strictObject({
  name: z.string(),
  hostUuid: z.string(),
  stateDir: z.string(),
  runDir: z.string(),
  logDir: z.string(),
  memoryBackingDir: z.string(),
  qemuBinary: z.string(),
  // Entries are checked (absolute paths) with the variable's, in host-config.ts.
  emulators: z.array(z.string()),
  // Both checked (absolute paths) with the variables', in host-config.ts.
  qemuModuleDir: z.string(),
  qemuFirmwareDirs: z.array(z.string()),
  protocolVersions: z.array(z.number()).refine((l) => l.length > 0 && l.every((v) => v === 2 || v === 3), 'must be a non-empty subset of [2, 3]'),
  migration: z.strictObject({ address: z.string(), portMin: port, portMax: port }).partial(),
  saveDirs: z.array(z.string()),
  sharedStoragePaths: z.array(z.string()),
  hooksDir: z.string(),
  lockspaceDir: z.string(),
  temporal: z.strictObject({ address: z.string(), namespace: z.string() }).partial(),
  tunnel: z.strictObject({ listen: z.string(), caFile: z.string(), certFile: z.string(), keyFile: z.string() }).partial(),
  // The same settings as VMFERRY_SECURITY_DRIVER, VMFERRY_QEMU_USER, _GROUP and _UID_RANGE ("MIN-MAX").
  security: z.strictObject({ driver: z.string(), user: z.string(), group: z.string(), uidRange: z.string() }).partial(),
  qemuSandbox: z.boolean(),
  cgroups: z.strictObject({ mode: z.enum(['off', 'auto', 'systemd', 'cgroupfs']), parent: z.string(), root: z.string() }).partial(),
});

export type HostConfigFile = z.output<ReturnType<typeof hostConfigFileSchema.partial>>;

/** What is wrong at each key, named by its dotted path ("migration.portMin"). */
function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => {
      const at = i.path.map(String).join('.');
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `unknown key ${JSON.stringify(at ? `${at}.${k}` : k)}`).join('; ');
      return `${at || '(top level)'}: ${i.message}`;
    })
    .join('; ');
}

export function readHostConfigFile(path: string): HostConfigFile {
  const where = `config file ${path} (VMFERRY_HOST_CONFIG)`;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new HostConfigError(`${where}: ${(err as Error).message}`);
  }
  const r = hostConfigFileSchema.partial().safeParse(json);
  if (!r.success) throw new HostConfigError(`${where}: ${describeIssues(r.error.issues)}`);
  return r.data;
}
