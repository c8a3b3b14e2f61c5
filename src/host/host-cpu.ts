// The host's QEMU capabilities and the CPU checks built on them: what the
// probe found (reported in hostInfo), whether a definition's CPU can run here
// (start, restore, migration Prepare: refused before anything is touched), and
// the concrete CPU a running host-model guest carries when it leaves this host.
import type { HostQemuInfo } from '../common/domain-types.js';
import type { DomainDef } from '../domain/index.js';
import { expandHostModelCpu } from '../qemu/cpu-expansion.js';
import { checkCpuRunnable } from '../qemu/devices/cpu.js';
import { cachedProbe, type QemuProbe } from '../qemu/probe.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import { resolveOnPath } from './emulators.js';

/** The probe of `binary` (a path, or a name looked up on PATH), cached per path and mtime. */
export async function probeBinary(binary: string, scratchDir: string): Promise<QemuProbe> {
  return await cachedProbe(resolveOnPath(binary, process.env.PATH) ?? binary, scratchDir);
}

/** Refuses (ConfigUnsupported) a definition whose CPU the QEMU it would run on cannot provide. */
export async function checkCpuOnHost(def: DomainDef, defaultBinary: string, scratchDir: string): Promise<QemuProbe | undefined> {
  if (def.cpu === undefined) return undefined;
  const probe = await probeBinary(def.devices.emulator ?? defaultBinary, scratchDir);
  checkCpuRunnable(def, probe);
  return probe;
}

/** `def` with a host-model CPU replaced by the concrete CPU the running guest has (see cpu-expansion.ts). */
export async function withConcreteCpu(qmp: QmpClient | undefined, def: DomainDef): Promise<DomainDef> {
  if (qmp === undefined || def.cpu?.mode !== 'host-model') return def;
  return { ...def, cpu: await expandHostModelCpu(qmp, def) };
}

/** What hostInfo says about the probe: small enough for a workflow's history. */
export function qemuInfo(p: QemuProbe): HostQemuInfo {
  return {
    binary: p.binary,
    version: p.version,
    package: p.package,
    machines: p.machines.map((m) => m.name),
    ...(p.machines.find((m) => m.isDefault) ? { defaultMachine: p.machines.find((m) => m.isDefault)!.name } : {}),
    accels: Object.values(p.accels).map((a) => ({
      accel: a.accel,
      hostModel: a.hostModelName,
      usableCpuModels: a.cpuModels.filter((m) => m.unavailableFeatures.length === 0).map((m) => m.name),
      unusableCpuModels: a.cpuModels.filter((m) => m.unavailableFeatures.length > 0).map((m) => m.name),
      hostCpuFeatures: Object.keys(a.hostCpuFeatures).filter((k) => a.hostCpuFeatures[k]),
    })),
    probedAtMs: p.probedAtMs,
    durationMs: p.durationMs,
  };
}
