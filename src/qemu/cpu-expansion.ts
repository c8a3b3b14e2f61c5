// host-model -> a concrete CPU, for a definition leaving this host (migration
// Begin, save): the guest runs `-cpu host` (KVM) or `-cpu max` (TCG), which
// means something else on every host, so the destination must be told which
// CPU it really is, as libvirt does: a named model plus the features that make
// it the guest's CPU. Read from the running QEMU itself: QEMU's static
// expansion of the model the guest runs names every feature, and the live
// vCPU's own properties (qom-get) say which are on. (On QEMU 7.2 under TCG the
// two agree on all 327 features of `max`; the live values are what the guest
// has, so they win.) The named model is the usable one closest to that set.
// The running model itself is never a candidate: `-cpu NAME,feat=on` makes
// QEMU register the features as global properties of NAME, so NAME's
// expansion in that process already includes them.
import type { CpuDef, CpuFeatureDef, DomainDef } from '../domain/index.js';
import { HOST_MODEL_NAME } from './probe.js';
import type { QmpClient } from './qmp-client.js';

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

const VERSIONED = /-v[0-9]+$/;

/** The concrete CPU of a running host-model guest; other definitions' CPUs come back unchanged. */
export async function expandHostModelCpu(qmp: QmpClient, def: DomainDef): Promise<CpuDef | undefined> {
  const cpu = def.cpu;
  if (cpu?.mode !== 'host-model') return cpu;
  const running = HOST_MODEL_NAME[def.type === 'kvm' ? 'kvm' : 'tcg'];
  const target = await liveFeatures(qmp, await staticFeatures(qmp, running));
  const defs = await qmp.execute<{ name: string; 'unavailable-features'?: string[]; deprecated?: boolean }[]>('query-cpu-definitions');
  const candidates = defs.filter((d) => (d['unavailable-features'] ?? []).length === 0 && !d.deprecated && !['max', 'host', 'base'].includes(d.name));
  let best: { name: string; extra: string[]; missing: string[] } | undefined;
  const score = (b: { extra: string[]; missing: string[] }): number => b.extra.length + b.missing.length;
  for (const d of candidates) {
    const feats = await staticFeatures(qmp, d.name);
    const has = new Set([...feats].filter(([, v]) => v).map(([k]) => k));
    const c = { name: d.name, extra: [...has].filter((f) => !target.has(f)).sort(), missing: [...target].filter((f) => !has.has(f)).sort() };
    // Ties go to the plain alias (Westmere over Westmere-v1): the name libvirt writes.
    if (best === undefined || score(c) < score(best) || (score(c) === score(best) && VERSIONED.test(best.name) && !VERSIONED.test(c.name))) best = c;
  }
  if (best === undefined) return cpu;
  const features: CpuFeatureDef[] = [
    ...best.missing.map((name) => ({ policy: 'require' as const, name })),
    ...best.extra.map((name) => ({ policy: 'disable' as const, name })),
  ];
  const out: CpuDef = { mode: 'custom', match: 'exact', check: 'partial', model: best.name, fallback: 'forbid' };
  if (features.length > 0) out.features = features;
  if (cpu.topology !== undefined) out.topology = cpu.topology;
  if (cpu.numaCells !== undefined) out.numaCells = cpu.numaCells;
  return out;
}
