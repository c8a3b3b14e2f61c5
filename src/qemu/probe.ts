// What a host's QEMU can do, asked of QEMU itself (features come from probing,
// never from version numbers): one short-lived QEMU per accelerator with no
// machine (`-machine none`), queried over QMP and told to quit: version, machine
// types, CPU models, and what it can do for migration (capabilities-probe.ts).
// The answer is cached per binary path and modification time, in memory and in
// the host's state directory (probe-cache.ts), so a package upgrade is seen at
// the next use and an unchanged binary is probed once, not once per worker start.
import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import { terminate, waitForExit } from '../support/proc.js';
import type { ProbedMachine, QemuMigrationCapabilities } from '../common/qemu-capabilities.js';
import { probeMigrationCapabilities } from './capabilities-probe.js';
import { launchQemu } from './launch.js';
import { readCachedProbe, writeCachedProbe } from './probe-cache.js';
import type { QmpClient } from './qmp-client.js';
import type { QemuPaths } from './qemu-paths.js';

export type Accel = 'kvm' | 'tcg';

export interface CpuModelInfo {
  name: string;
  /** Features this accelerator cannot give the model (`unavailable-features`); empty = usable. */
  unavailableFeatures: string[];
  migrationSafe?: boolean;
  static?: boolean;
  deprecated?: boolean;
}

export interface AccelProbe {
  accel: Accel;
  /** The model that stands for the host here: `host` under KVM, `max` under TCG. */
  hostModelName: string;
  cpuModels: CpuModelInfo[];
  /** Every boolean property of the host model (full expansion, aliases included) and whether it is on. */
  hostCpuFeatures: Record<string, boolean>;
  /** The features on in the host model's static expansion: canonical names only (what host-model expands from). */
  hostModelFeatures: string[];
  /** Per model that can stand for host-model (usable here, not deprecated, not host/max/base): its static features that are on. */
  modelFeatures: Record<string, string[]>;
}

export interface QemuProbe {
  binary: string;
  mtimeMs: number;
  version: string;
  package: string;
  machines: ProbedMachine[];
  migration: QemuMigrationCapabilities;
  accels: Partial<Record<Accel, AccelProbe>>;
  probedAtMs: number;
  durationMs: number;
}

export const HOST_MODEL_NAME: Record<Accel, string> = { kvm: 'host', tcg: 'max' };

export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

interface RawCpuDefinition {
  name: string;
  'unavailable-features'?: string[];
  'migration-safe'?: boolean;
  static?: boolean;
  deprecated?: boolean;
}
interface RawMachine {
  name: string;
  alias?: string;
  'is-default'?: boolean;
  deprecated?: boolean;
}

/** Models that never stand for host-model: the host model itself, and `base` (a model with no features). */
const NOT_CANDIDATES = new Set(['host', 'max', 'base']);

/** The features a model's static expansion turns on (canonical names, no aliases). */
async function staticFeaturesOn(qmp: QmpClient, model: string): Promise<string[]> {
  const r = await qmp.execute<{ model: { props?: Record<string, unknown> } }>('query-cpu-model-expansion', { type: 'static', model: { name: model } });
  return Object.entries(r.model.props ?? {})
    .filter(([, v]) => v === true)
    .map(([k]) => k)
    .sort();
}

async function probeAccel(qmp: QmpClient, accel: Accel): Promise<AccelProbe> {
  const defs = await qmp.execute<RawCpuDefinition[]>('query-cpu-definitions');
  const hostModelName = HOST_MODEL_NAME[accel];
  // In this QEMU no -cpu option registered global properties, so each model's expansion is its definition alone.
  const modelFeatures: Record<string, string[]> = {};
  for (const d of defs) {
    if ((d['unavailable-features'] ?? []).length > 0 || d.deprecated === true || NOT_CANDIDATES.has(d.name)) continue;
    modelFeatures[d.name] = await staticFeaturesOn(qmp, d.name);
  }
  const expansion = await qmp.execute<{ model: { props?: Record<string, unknown> } }>('query-cpu-model-expansion', {
    type: 'full',
    model: { name: hostModelName },
  });
  const hostCpuFeatures: Record<string, boolean> = {};
  for (const [k, v] of Object.entries(expansion.model.props ?? {})) if (typeof v === 'boolean') hostCpuFeatures[k] = v;
  return {
    accel,
    hostModelName,
    cpuModels: defs.map((d) => ({
      name: d.name,
      unavailableFeatures: d['unavailable-features'] ?? [],
      ...(d['migration-safe'] !== undefined ? { migrationSafe: d['migration-safe'] } : {}),
      ...(d.static !== undefined ? { static: d.static } : {}),
      ...(d.deprecated !== undefined ? { deprecated: d.deprecated } : {}),
    })),
    hostCpuFeatures,
    hostModelFeatures: await staticFeaturesOn(qmp, hostModelName),
    modelFeatures,
  };
}

/** Runs one QEMU under `accel`, asks it everything `fill` wants, and makes it quit. */
async function withProbeQemu<T>(binary: string, paths: QemuPaths | undefined, accel: Accel, workDir: string, fill: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmpSocket = join(workDir, `${accel}.qmp`);
  const args = ['-machine', `none,accel=${accel}`, '-nodefaults', '-no-user-config', '-S', '-display', 'none'];
  args.push('-chardev', `socket,id=mon,path=${qmpSocket},server=on,wait=off`, '-mon', 'chardev=mon,mode=control');
  const { pid, qmp } = await launchQemu({ binary, args, qmpSocket, logFile: join(workDir, `${accel}.log`), timeoutMs: 15_000, ...(paths ? { paths } : {}) });
  try {
    return await fill(qmp);
  } finally {
    await qmp.execute('quit').catch(() => undefined);
    await qmp.close().catch(() => undefined);
    await waitForExit(pid, 5000).catch(() => terminate(pid));
  }
}

/** Probes `binary` now (no cache). `scratchDir` holds its socket and log for the few hundred ms it runs. */
export async function probeQemu(binary: string, scratchDir: string, opts: { accels?: Accel[]; paths?: QemuPaths } = {}): Promise<QemuProbe> {
  let mtimeMs: number;
  try {
    mtimeMs = statSync(binary).mtimeMs;
  } catch (err) {
    throw vmError(ErrorType.ConfigUnsupported, `QEMU binary ${binary} cannot be probed: ${(err as Error).message}`, { binary });
  }
  const accels = opts.accels ?? (kvmUsable() ? ['tcg', 'kvm'] : ['tcg']);
  const started = Date.now();
  const workDir = mkdtempSync(join(scratchDir, 'probe-'));
  try {
    const probe: QemuProbe = {
      binary,
      mtimeMs,
      version: '',
      package: '',
      machines: [],
      migration: { migrationCapabilities: [], migrationParameters: [], commands: {} as QemuMigrationCapabilities['commands'] },
      accels: {},
      probedAtMs: started,
      durationMs: 0,
    };
    for (const accel of accels) {
      probe.accels[accel] = await withProbeQemu(binary, opts.paths, accel, workDir, async (qmp) => {
        if (probe.version === '') {
          const v = await qmp.execute<{ qemu: { major: number; minor: number; micro: number }; package: string }>('query-version');
          probe.version = `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}`;
          probe.package = v.package.trim();
          const machines = await qmp.execute<RawMachine[]>('query-machines');
          probe.machines = machines.map((m) => ({
            name: m.name,
            ...(m.alias !== undefined ? { alias: m.alias } : {}),
            ...(m['is-default'] ? { isDefault: true } : {}),
            ...(m.deprecated ? { deprecated: true } : {}),
          }));
          probe.migration = await probeMigrationCapabilities(qmp);
        }
        return await probeAccel(qmp, accel);
      });
    }
    probe.durationMs = Date.now() - started;
    return probe;
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

const cache = new Map<string, Promise<QemuProbe>>();

/**
 * The probe of `binary`, from the cache while the binary's mtime is unchanged.
 * `cacheDir`: where the probe is also kept across worker restarts (the host's state directory).
 * `paths`: the host's module and firmware directories (one worker has one set: not part of the key).
 */
export async function cachedProbe(binary: string, scratchDir: string, opts: { cacheDir?: string; paths?: QemuPaths } = {}): Promise<QemuProbe> {
  const mtimeMs = statSync(binary, { throwIfNoEntry: false })?.mtimeMs;
  const key = `${binary}\0${mtimeMs}`;
  let p = cache.get(key);
  if (p === undefined) {
    for (const k of cache.keys()) if (k.startsWith(`${binary}\0`)) cache.delete(k);
    p = fromDiskOrProbe(binary, mtimeMs, scratchDir, opts.cacheDir, opts.paths);
    cache.set(key, p);
    // A failed probe is not remembered: the next caller tries again.
    p.catch(() => cache.delete(key));
  }
  return await p;
}

async function fromDiskOrProbe(
  binary: string,
  mtimeMs: number | undefined,
  scratchDir: string,
  cacheDir: string | undefined,
  paths: QemuPaths | undefined,
): Promise<QemuProbe> {
  if (cacheDir === undefined) return await probeQemu(binary, scratchDir, { ...(paths ? { paths } : {}) });
  const stored = mtimeMs === undefined ? undefined : readCachedProbe(cacheDir, binary, mtimeMs);
  if (stored !== undefined) return stored;
  const probe = await probeQemu(binary, scratchDir, { ...(paths ? { paths } : {}) });
  writeCachedProbe(cacheDir, probe);
  return probe;
}
