// host-model -> a concrete CPU: a named model plus the features that make it
// the host's CPU, as libvirt does. `-cpu host` (KVM) and `-cpu max` (TCG) mean
// something else on every host, and even with the same feature bits a named
// model shows the guest another vendor, family, model and model-id than
// host/max do, so the expansion has to happen before the guest first runs:
// a host-model domain is started as the expanded custom CPU (host-runtime's
// launch), and what runs is what migrates and what is saved.
//
// One choice of model for both sources of the wanted feature set: the host's
// probe (at start: the static expansion of host/max in a QEMU with no guest)
// and a running guest (only guests an older worker started as host/max: the
// live vCPU's properties, read over QMP). The named model is the usable one
// closest to that set; ties go to the plain alias (Westmere over Westmere-v1),
// the name libvirt writes.
import { ErrorType, vmError } from '../common/errors.js';
import type { CpuDef, CpuFeatureDef, DomainDef } from '../domain/index.js';
import { HOST_MODEL_NAME, type AccelProbe } from './probe.js';
import type { QmpClient } from './qmp-client.js';

export interface CpuModelPick {
  model: string;
  /** Wanted, not in the model. */
  require: string[];
  /** In the model, not wanted. */
  disable: string[];
}

const VERSIONED = /-v[0-9]+$/;

/** The candidate closest to `target` (fewest features to add plus remove); undefined without candidates. */
export function pickCpuModel(target: ReadonlySet<string>, candidates: Iterable<readonly [string, readonly string[]]>): CpuModelPick | undefined {
  let best: CpuModelPick | undefined;
  const score = (p: CpuModelPick): number => p.require.length + p.disable.length;
  for (const [name, features] of candidates) {
    const has = new Set(features);
    const p = { model: name, require: [...target].filter((f) => !has.has(f)).sort(), disable: [...has].filter((f) => !target.has(f)).sort() };
    if (best === undefined || score(p) < score(best) || (score(p) === score(best) && VERSIONED.test(best.model) && !VERSIONED.test(p.model))) best = p;
  }
  return best;
}

/**
 * The custom CPU standing for `cpu` (a host-model CPU) where the host model has
 * the features `hostFeatures` on. The definition's own features apply on top
 * (libvirt's host-model with <feature> elements): they shape the wanted set and
 * are kept as written, with `optional` settled now by `hostHas`, so the CPU
 * means the same on every host it later runs on.
 */
function expandOnto(
  cpu: CpuDef,
  hostFeatures: Iterable<string>,
  hostHas: (feature: string) => boolean,
  candidates: Iterable<readonly [string, readonly string[]]>,
): CpuDef | undefined {
  const own: CpuFeatureDef[] = (cpu.features ?? []).map((f) =>
    f.policy === 'optional' ? { policy: hostHas(f.name) ? 'require' : 'disable', name: f.name } : f,
  );
  const target = new Set(hostFeatures);
  for (const f of own) {
    if (f.policy === 'disable' || f.policy === 'forbid') target.delete(f.name);
    else target.add(f.name);
  }
  const pick = pickCpuModel(target, candidates);
  if (pick === undefined) return undefined;
  const named = new Set(own.map((f) => f.name));
  const features: CpuFeatureDef[] = [
    ...pick.require.filter((n) => !named.has(n)).map((name) => ({ policy: 'require' as const, name })),
    ...pick.disable.filter((n) => !named.has(n)).map((name) => ({ policy: 'disable' as const, name })),
    ...own,
  ];
  const out: CpuDef = { mode: 'custom', match: 'exact', check: cpu.check === 'none' ? 'none' : 'partial', model: pick.model, fallback: 'forbid' };
  if (features.length > 0) out.features = features;
  if (cpu.topology !== undefined) out.topology = cpu.topology;
  if (cpu.numaCells !== undefined) out.numaCells = cpu.numaCells;
  return out;
}

/** `def` with a host-model CPU expanded from the host's probe (for the accelerator `facts` describes); other CPUs unchanged. */
export function expandHostModelFromProbe(def: DomainDef, facts: AccelProbe, where: string): DomainDef {
  const cpu = def.cpu;
  if (cpu?.mode !== 'host-model') return def;
  const expanded = expandOnto(cpu, facts.hostModelFeatures, (f) => facts.hostCpuFeatures[f] === true, Object.entries(facts.modelFeatures));
  if (expanded === undefined) {
    throw vmError(ErrorType.ConfigUnsupported, `no CPU model of ${where} can stand for host-model: domain '${def.name}' cannot start here`);
  }
  return { ...def, cpu: expanded };
}

interface StaticExpansion {
  model: { name: string; props?: Record<string, unknown> };
}

async function staticFeatures(qmp: QmpClient, model: string): Promise<Map<string, boolean>> {
  const r = await qmp.execute<StaticExpansion>('query-cpu-model-expansion', { type: 'static', model: { name: model } });
  const out = new Map<string, boolean>();
  for (const [k, v] of Object.entries(r.model.props ?? {})) if (typeof v === 'boolean') out.set(k, v);
  return out;
}

/** Which features the guest's first vCPU has on, read from the vCPU object. */
async function liveFeatures(qmp: QmpClient, names: Map<string, boolean>): Promise<Set<string>> {
  const cpus = await qmp.execute<{ 'qom-path': string }[]>('query-cpus-fast');
  const path = cpus[0]?.['qom-path'];
  const on = new Set<string>();
  const entries = [...names];
  const values = await Promise.all(
    entries.map(([name, expanded]) =>
      path === undefined ? Promise.resolve(expanded) : qmp.execute<unknown>('qom-get', { path, property: name }).catch(() => expanded),
    ),
  );
  entries.forEach(([name], i) => {
    if (values[i] === true) on.add(name);
  });
  return on;
}

/**
 * The concrete CPU of a guest still running host/max for host-model (started
 * by a worker that did not expand at start). The feature bits carry over; the
 * vendor, family, model and model-id the guest sees are the named model's, not
 * host/max's: the best a definition can say for such a guest. The running
 * model itself is never a candidate: `-cpu NAME,feat=on` makes QEMU register
 * the features as global properties of NAME, so NAME's expansion in that
 * process already includes them.
 */
export async function expandHostModelCpu(qmp: QmpClient, def: DomainDef): Promise<CpuDef | undefined> {
  const cpu = def.cpu;
  if (cpu?.mode !== 'host-model') return cpu;
  const running = HOST_MODEL_NAME[def.type === 'kvm' ? 'kvm' : 'tcg'];
  const target = await liveFeatures(qmp, await staticFeatures(qmp, running));
  const defs = await qmp.execute<{ name: string; 'unavailable-features'?: string[]; deprecated?: boolean }[]>('query-cpu-definitions');
  const candidates: [string, string[]][] = [];
  for (const d of defs) {
    if ((d['unavailable-features'] ?? []).length > 0 || d.deprecated === true || ['max', 'host', 'base'].includes(d.name)) continue;
    candidates.push([d.name, [...(await staticFeatures(qmp, d.name))].filter(([, v]) => v).map(([k]) => k)]);
  }
  // The live vCPU already reflects the definition's own features: they are kept as written, optional settled by what runs.
  return expandOnto(cpu, target, (f) => target.has(f), candidates) ?? cpu;
}
