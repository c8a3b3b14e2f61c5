// <cpu> and <vcpu> -> -cpu, -smp and -numa, with libvirt's meaning:
// host-passthrough is `-cpu host` and exists only with KVM (libvirt refuses it
// for TCG domains); host-model is `host` under KVM and `max` under TCG (the
// model that stands for "everything this accelerator offers"); maximum is
// `max`; custom is the named model. Feature policies become properties:
// require/force on, disable/forbid off, optional on only where the host has it.
// A custom model gets QEMU's `enforce` unless check='none', so QEMU itself
// refuses what a stale probe let through. checkCpuRunnable is the same
// judgement made ahead of time from the host's probe, so a CPU the host cannot
// run is refused before anything starts.
import { ErrorType, vmError } from '../../common/errors.js';
import { unmodelledCpuContent, type CpuDef, type DomainDef } from '../../domain/index.js';
import type { AccelProbe, QemuProbe } from '../probe.js';
import { q } from './quote.js';

function unsupported(message: string, details: Record<string, unknown> = {}): Error {
  return vmError(ErrorType.ConfigUnsupported, message, details);
}

/** Refusals that need no knowledge of the host: unmodelled content and combinations vmferry does not build. */
export function checkCpuBuildable(def: DomainDef): void {
  const cpu = def.cpu;
  if (cpu === undefined) return;
  const extra = unmodelledCpuContent(def);
  if (extra.length > 0) throw unsupported(`domain '${def.name}': ${extra.join(', ')} inside <cpu> is not supported`, { paths: extra });
  if (cpu.mode === 'host-passthrough' && def.type !== 'kvm') {
    throw unsupported(`CPU mode 'host-passthrough' needs a kvm domain; '${def.name}' is type='${def.type}' (use host-model or maximum under TCG)`);
  }
  if ((cpu.mode ?? 'custom') === 'custom' && cpu.model === undefined && (cpu.features?.length ?? 0) > 0) {
    throw unsupported(`domain '${def.name}': CPU features need a <model> in custom mode`, { path: '/domain/cpu/model' });
  }
  const t = cpu.topology;
  if (t !== undefined && (t.clusters ?? 1) !== 1) throw unsupported(`domain '${def.name}': CPU topology clusters other than 1 are not supported on x86`);
  if (cpu.numaCells !== undefined && def.memoryBacking?.sourceType === 'file') {
    throw unsupported(`domain '${def.name}': NUMA cells together with file-backed memory are not supported`, { path: '/domain/cpu/numa' });
  }
  if (cpu.numaCells !== undefined && (def.vcpusCurrent ?? def.vcpus) !== def.vcpus) {
    throw unsupported(`domain '${def.name}': NUMA cells with fewer vCPUs online than <vcpu> are not supported`, { path: '/domain/vcpu/@current' });
  }
}

function featureProps(cpu: CpuDef, facts: AccelProbe | undefined): string[] {
  const out: string[] = [];
  for (const f of cpu.features ?? []) {
    const policy = f.policy ?? 'require';
    if (policy === 'require' || policy === 'force') out.push(`${f.name}=on`);
    else if (policy === 'disable' || policy === 'forbid') out.push(`${f.name}=off`);
    else if (facts?.hostCpuFeatures[f.name] === true) out.push(`${f.name}=on`);
  }
  return out;
}

/** `-cpu ...` for the domain; `facts` (the probe for the domain's accelerator) settles optional features. */
export function cpuArgs(def: DomainDef, accel: 'kvm' | 'tcg', facts?: AccelProbe): string[] {
  const cpu = def.cpu;
  if (cpu === undefined) return [];
  checkCpuBuildable(def);
  const mode = cpu.mode ?? 'custom';
  let base: string[];
  if (mode === 'host-passthrough') base = ['host'];
  else if (mode === 'host-model') base = [accel === 'kvm' ? 'host' : 'max'];
  else if (mode === 'maximum') base = ['max'];
  else if (cpu.model === undefined) return [];
  else base = [q(cpu.model), ...(cpu.check === 'none' ? [] : ['enforce'])];
  return ['-cpu', [...base, ...featureProps(cpu, facts)].join(',')];
}

/** `-smp`: vCPUs online at boot, and with a topology the maximum and its shape. */
export function smpArgs(def: DomainDef): string[] {
  const online = def.vcpusCurrent ?? def.vcpus;
  const parts = [String(online)];
  const t = def.cpu?.topology;
  if (t !== undefined) {
    parts.push(`maxcpus=${def.vcpus}`);
    parts.push(`sockets=${t.sockets}`);
    if (t.dies !== undefined) parts.push(`dies=${t.dies}`);
    parts.push(`cores=${t.cores}`, `threads=${t.threads}`);
  }
  return ['-smp', parts.join(',')];
}

/** Expands libvirt's cpu list (0-3,^2,6) into QEMU's `cpus=` ranges, one option each. */
function cpuRanges(list: string): string[] {
  const set = new Set<number>();
  const parts = list.split(',');
  for (const p of parts.filter((x) => !x.startsWith('^'))) {
    const [a, b] = p.split('-').map(Number) as [number, number | undefined];
    for (let i = a; i <= (b ?? a); i++) set.add(i);
  }
  for (const p of parts.filter((x) => x.startsWith('^'))) set.delete(Number(p.slice(1)));
  const ids = [...set].sort((x, y) => x - y);
  const out: string[] = [];
  for (let i = 0; i < ids.length;) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
    out.push(ids[i] === ids[j] ? String(ids[i]) : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return out;
}

/** `-object memory-backend-ram` and `-numa node` per cell; the machine's RAM is then the nodes' backends. */
export function numaArgs(def: DomainDef): string[] {
  const cells = def.cpu?.numaCells;
  if (cells === undefined) return [];
  const args: string[] = [];
  cells.forEach((c, i) => {
    const id = c.id ?? i;
    args.push('-object', `memory-backend-ram,id=ram-node${id},size=${c.memoryKiB}K`);
    const cpus = c.cpus === undefined ? [] : cpuRanges(c.cpus).map((r) => `cpus=${r}`);
    args.push('-numa', ['node', `nodeid=${id}`, ...cpus, `memdev=ram-node${id}`].join(','));
  });
  return args;
}

/**
 * Refuses, from the host's probe and before anything starts, a CPU this host
 * cannot run: an unknown or unusable model, a required feature the
 * accelerator lacks, a forbidden one it has, a feature QEMU does not know.
 */
export function checkCpuRunnable(def: DomainDef, probe: QemuProbe): void {
  checkCpuBuildable(def);
  const cpu = def.cpu;
  if (cpu === undefined) return;
  const accel = def.type === 'kvm' ? 'kvm' : 'tcg';
  const facts = probe.accels[accel];
  if (facts === undefined) throw unsupported(`this host's QEMU (${probe.binary}) was not probed under ${accel}: cannot run domain '${def.name}'`);
  const where = `this host's QEMU ${probe.version} (${probe.binary}) under ${accel.toUpperCase()}`;
  const mode = cpu.mode ?? 'custom';
  if (mode === 'custom' && cpu.model !== undefined) {
    const model = facts.cpuModels.find((m) => m.name === cpu.model);
    if (model === undefined) throw unsupported(`CPU model '${cpu.model}' of domain '${def.name}' is not known to ${where}`, { model: cpu.model });
    const turnedOff = new Set((cpu.features ?? []).filter((f) => f.policy === 'disable' || f.policy === 'forbid').map((f) => f.name));
    const missing = model.unavailableFeatures.filter((f) => !turnedOff.has(f));
    if (cpu.check !== 'none' && missing.length > 0) {
      throw unsupported(`CPU model '${cpu.model}' of domain '${def.name}' cannot run on ${where}: unavailable features ${missing.join(', ')}`, {
        model: cpu.model,
        missingFeatures: missing,
      });
    }
  }
  const unknown = (cpu.features ?? []).filter((f) => !(f.name in facts.hostCpuFeatures)).map((f) => f.name);
  if (unknown.length > 0)
    throw unsupported(`CPU features ${unknown.join(', ')} of domain '${def.name}' are not known to ${where}`, { unknownFeatures: unknown });
  if (cpu.check === 'none') return;
  const lacking = (cpu.features ?? []).filter((f) => (f.policy ?? 'require') === 'require' && facts.hostCpuFeatures[f.name] !== true).map((f) => f.name);
  if (lacking.length > 0) {
    throw unsupported(`domain '${def.name}' requires CPU features ${lacking.join(', ')}, which ${where} cannot provide`, { missingFeatures: lacking });
  }
  const present = (cpu.features ?? []).filter((f) => f.policy === 'forbid' && facts.hostCpuFeatures[f.name] === true).map((f) => f.name);
  if (present.length > 0)
    throw unsupported(`domain '${def.name}' forbids CPU features ${present.join(', ')}, which ${where} has`, { forbiddenFeatures: present });
}
