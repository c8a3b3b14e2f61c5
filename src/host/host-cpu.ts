// The host's QEMU capabilities and the CPU checks built on them: what the
// probe found (reported in hostInfo), whether a definition's CPU can run here
// (start, restore, migration Prepare: refused before anything is touched), the
// concrete CPU a host-model domain is started as, and the CPU a running guest
// carries when it leaves this host.
import type { HostQemuInfo } from '../common/domain-types.js';
import type { DomainDef } from '../domain/index.js';
import { expandHostModelCpu, expandHostModelFromProbe } from '../qemu/cpu-expansion.js';
import { checkCpuRunnable } from '../qemu/devices/cpu.js';
import type { QemuProbe } from '../qemu/probe.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import { migrationInfo, probeFor, type ProbeSettings } from './host-capabilities.js';

/** Refuses (ConfigUnsupported) a definition whose CPU the QEMU it would run on cannot provide. */
export async function checkCpuOnHost(def: DomainDef, s: ProbeSettings): Promise<QemuProbe | undefined> {
  if (def.cpu === undefined) return undefined;
  const probe = await probeFor(def, s);
  checkCpuRunnable(def, probe);
  return probe;
}

/**
 * The definition QEMU is started from: a host-model CPU becomes the custom CPU
 * that stands for this host's (cpu-expansion.ts), checked like any custom CPU.
 * It is what runs, so it is the live definition; the persistent one keeps
 * host-model, as libvirt's does.
 */
export function startingDef(def: DomainDef, probe: QemuProbe | undefined): DomainDef {
  if (def.cpu?.mode !== 'host-model' || probe === undefined) return def;
  const accel = def.type === 'kvm' ? 'kvm' : 'tcg';
  const facts = probe.accels[accel];
  if (facts === undefined) return def; // checkCpuRunnable has refused it already
  const expanded = expandHostModelFromProbe(def, facts, `this host's QEMU ${probe.version} (${probe.binary}) under ${accel.toUpperCase()}`);
  checkCpuRunnable(expanded, probe);
  return expanded;
}

/**
 * A host-model CPU in `def` (a definition given for the destination or the
 * image) means the CPU the guest runs: the live definition's custom CPU when
 * the guest was started expanded. Unchanged otherwise.
 */
export function withLiveCpu(def: DomainDef, live: DomainDef): DomainDef {
  if (def.cpu?.mode !== 'host-model' || live.cpu === undefined || live.cpu.mode === 'host-model') return def;
  return { ...def, cpu: live.cpu };
}

/**
 * `def` with a host-model CPU replaced by a concrete CPU read from the running
 * guest: only for a guest an older worker started as host/max (its live
 * definition still says host-model). See expandHostModelCpu for what it keeps.
 */
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
    ...migrationInfo(p),
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
