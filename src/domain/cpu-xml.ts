// `<cpu>`: read from the tree, written back into it, checked, and the list of
// what inside it vmferry does not model (so the command line can refuse it by
// name instead of dropping it). Unchanged values keep their spelling: the
// feature list and NUMA cells are rewritten only when they differ.
import { compact } from './devices-parse.js';
import {
  CPU_CHECKS,
  CPU_FALLBACKS,
  CPU_FEATURE_POLICIES,
  CPU_MATCHES,
  CPU_MODES,
  type CpuCheck,
  type CpuDef,
  type CpuFallback,
  type CpuFeatureDef,
  type CpuFeaturePolicy,
  type CpuMatch,
  type CpuMode,
  type CpuTopologyDef,
  type DomainDef,
  type NumaCellDef,
} from './domain-model.js';
import { memoryToKiB, parseMemoryKiB, MAX_MEMORY_KIB } from './memory-units.js';
import { expandDomainDef } from './preserved.js';
import type { Checker } from './validate-checker.js';
import {
  childElements,
  createElement,
  ensureChild,
  findChild,
  getAttr,
  insertChild,
  removeChild,
  setAttr,
  setIntAttr,
  setText,
  textContent,
} from '../xml/xml-edit.js';
import { pathStep } from '../xml/xml-errors.js';
import type { XmlReader } from '../xml/xml-read.js';
import type { XmlElement } from '../xml/xml-tree.js';

const CPU_ORDER = ['model', 'vendor', 'topology', 'cache', 'maxphysaddr', 'feature', 'numa'] as const;
const CPU_MODEL = /^[A-Za-z0-9._+-]{1,64}$/;
const CPU_FEATURE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** libvirt's vCPU list syntax: ranges, single ids, exclusions (^N), comma separated. */
const CPU_LIST = /^\^?[0-9]{1,5}(-[0-9]{1,5})?(,\^?[0-9]{1,5}(-[0-9]{1,5})?)*$/;
const TOPOLOGY_KEYS = ['sockets', 'dies', 'clusters', 'cores', 'threads'] as const;

/** What vmferry reads in `<cpu>`: element -> attributes. Anything else is unmodelled. */
const MODELLED: Record<string, readonly string[]> = {
  cpu: ['mode', 'match', 'check'],
  model: ['fallback'],
  feature: ['policy', 'name'],
  topology: TOPOLOGY_KEYS,
  numa: [],
  cell: ['id', 'cpus', 'memory', 'unit'],
};

export function readCpu(r: XmlReader, el: XmlElement, path: string): { cpu: CpuDef; numaMemoryKiB?: number } {
  const model = r.optional(el, 'model', path);
  const modelText = model === undefined ? undefined : r.text(model, `${path}/model`).trim();
  const featureEls = childElements(el, 'feature');
  const features: CpuFeatureDef[] = featureEls.map((f, i) => {
    const p = `${path}/${pathStep('feature', i, featureEls.length)}`;
    return compact({ policy: r.attr(f, 'policy') as CpuFeaturePolicy | undefined, name: r.requiredAttr(f, 'name', p) });
  });
  const topologyEl = r.optional(el, 'topology', path);
  let topology: CpuTopologyDef | undefined;
  if (topologyEl !== undefined) {
    const p = `${path}/topology`;
    const n = (k: (typeof TOPOLOGY_KEYS)[number]): number | undefined => r.optionalIntAttr(topologyEl, k, p, `topology ${k}`);
    topology = compact({ sockets: n('sockets') ?? 1, dies: n('dies'), clusters: n('clusters'), cores: n('cores') ?? 1, threads: n('threads') ?? 1 });
  }
  const numaEl = r.optional(el, 'numa', path);
  let numaCells: NumaCellDef[] | undefined;
  if (numaEl !== undefined) {
    const cells = childElements(numaEl, 'cell');
    numaCells = cells.map((c, i) => {
      const p = `${path}/numa/${pathStep('cell', i, cells.length)}`;
      return compact({
        id: r.optionalIntAttr(c, 'id', p, 'NUMA cell id'),
        cpus: r.attr(c, 'cpus'),
        memoryKiB: parseMemoryKiB(r.requiredAttr(c, 'memory', p), r.attr(c, 'unit'), r.where(`${p}/@memory`)),
      });
    });
  }
  const cpu = compact({
    mode: r.attr(el, 'mode') as CpuMode | undefined,
    match: r.attr(el, 'match') as CpuMatch | undefined,
    check: r.attr(el, 'check') as CpuCheck | undefined,
    // An empty <model/> (libvirt's host-model form) names no model.
    model: modelText === '' ? undefined : modelText,
    fallback: model === undefined ? undefined : (r.attr(model, 'fallback') as CpuFallback | undefined),
    features: features.length > 0 ? features : undefined,
    topology,
    numaCells,
  });
  const numaMemoryKiB = numaCells?.reduce((sum, c) => sum + c.memoryKiB, 0);
  return numaMemoryKiB === undefined || numaCells?.length === 0 ? { cpu } : { cpu, numaMemoryKiB };
}

function sameFeatures(a: readonly CpuFeatureDef[], els: XmlElement[]): boolean {
  return a.length === els.length && a.every((f, i) => getAttr(els[i]!, 'name') === f.name && getAttr(els[i]!, 'policy') === f.policy);
}

function sameCells(a: readonly NumaCellDef[], els: XmlElement[]): boolean {
  return (
    a.length === els.length &&
    a.every((c, i) => {
      const el = els[i]!;
      const mem = memoryToKiB(getAttr(el, 'memory') ?? '', getAttr(el, 'unit'));
      return getAttr(el, 'id') === (c.id === undefined ? undefined : String(c.id)) && getAttr(el, 'cpus') === c.cpus && 'kib' in mem && mem.kib === c.memoryKiB;
    })
  );
}

/** Writes `def.cpu` into `root` (creating, editing or removing `<cpu>`). */
export function applyCpu(root: XmlElement, cpu: CpuDef | undefined, ensure: (name: string) => XmlElement): void {
  const found = findChild(root, 'cpu');
  if (cpu === undefined) {
    if (found !== undefined) removeChild(root, found);
    return;
  }
  const el = found ?? ensure('cpu');
  setAttr(el, 'mode', cpu.mode);
  setAttr(el, 'match', cpu.match);
  setAttr(el, 'check', cpu.check);

  let model = findChild(el, 'model');
  if (cpu.model === undefined && cpu.fallback === undefined) {
    if (model !== undefined) removeChild(el, model);
  } else {
    model ??= ensureChild(el, 'model', 1, CPU_ORDER);
    setAttr(model, 'fallback', cpu.fallback);
    if (textContent(model).trim() !== (cpu.model ?? '')) setText(model, cpu.model ?? '');
  }

  const features = cpu.features ?? [];
  const featureEls = childElements(el, 'feature');
  if (!sameFeatures(features, featureEls)) {
    // Edited in place where elements exist, so they keep their position and spacing.
    featureEls.forEach((fe, i) => {
      const f = features[i];
      if (f === undefined) return removeChild(el, fe);
      setAttr(fe, 'policy', f.policy);
      setAttr(fe, 'name', f.name);
    });
    for (const f of features.slice(featureEls.length)) {
      const fe = createElement('feature');
      setAttr(fe, 'policy', f.policy);
      setAttr(fe, 'name', f.name);
      insertChild(el, fe, 1, CPU_ORDER);
    }
  }

  let topology = findChild(el, 'topology');
  if (cpu.topology === undefined) {
    if (topology !== undefined) removeChild(el, topology);
  } else {
    topology ??= ensureChild(el, 'topology', 1, CPU_ORDER);
    for (const k of TOPOLOGY_KEYS) {
      const v = cpu.topology[k];
      if (getAttr(topology, k) === undefined && v === undefined) continue;
      if (Number(getAttr(topology, k)) !== v) setIntAttr(topology, k, v);
    }
  }

  let numa = findChild(el, 'numa');
  if (cpu.numaCells === undefined) {
    if (numa !== undefined) removeChild(el, numa);
  } else {
    numa ??= ensureChild(el, 'numa', 1, CPU_ORDER);
    const cellEls = childElements(numa, 'cell');
    if (!sameCells(cpu.numaCells, cellEls)) {
      for (const c of cellEls) removeChild(numa, c);
      for (const c of cpu.numaCells) {
        const ce = createElement('cell');
        setIntAttr(ce, 'id', c.id);
        setAttr(ce, 'cpus', c.cpus);
        setAttr(ce, 'memory', String(c.memoryKiB));
        setAttr(ce, 'unit', 'KiB');
        insertChild(numa, ce, 2, ['cell']);
      }
    }
  }
}

/** Value checks for `def.cpu` (parse and format both run them). */
export function checkCpu(c: Checker, cpu: CpuDef, vcpus: number, P: string): void {
  c.object(cpu, P, 'cpu');
  c.oneOf(CPU_MODES, cpu.mode, `${P}/@mode`, 'cpu mode');
  c.oneOf(CPU_MATCHES, cpu.match, `${P}/@match`, 'cpu match');
  c.oneOf(CPU_CHECKS, cpu.check, `${P}/@check`, 'cpu check');
  c.pattern(cpu.model, CPU_MODEL, `${P}/model`, 'cpu model');
  c.oneOf(CPU_FALLBACKS, cpu.fallback, `${P}/model/@fallback`, 'cpu model fallback');
  if (cpu.features !== undefined) {
    const features = c.list<CpuFeatureDef>(cpu.features, `${P}/feature`, 'cpu features');
    const seen = new Set<string>();
    features.forEach((f, i) => {
      const p = `${P}/${pathStep('feature', i, features.length)}`;
      c.object(f, p, 'cpu feature');
      c.oneOf(CPU_FEATURE_POLICIES, f.policy, `${p}/@policy`, 'cpu feature policy');
      c.pattern(f.name, CPU_FEATURE, `${p}/@name`, 'cpu feature name');
      if (seen.has(f.name)) c.fail(`cpu feature '${f.name}' is listed twice`, `${p}/@name`);
      seen.add(f.name);
    });
  }
  if (cpu.topology !== undefined) {
    const t = cpu.topology;
    c.object(t, `${P}/topology`, 'cpu topology');
    for (const k of TOPOLOGY_KEYS)
      if (t[k] !== undefined || k === 'sockets' || k === 'cores' || k === 'threads') c.int(t[k], 1, 4096, `${P}/topology/@${k}`, `topology ${k}`);
    const product = t.sockets * (t.dies ?? 1) * (t.clusters ?? 1) * t.cores * t.threads;
    if (product !== vcpus) c.fail(`cpu topology gives ${product} vCPUs but <vcpu> is ${vcpus}`, `${P}/topology`);
  }
  if (cpu.numaCells !== undefined) {
    const cells = c.list<NumaCellDef>(cpu.numaCells, `${P}/numa`, 'NUMA cells');
    if (cells.length === 0) c.fail('<numa> has no <cell>', `${P}/numa`);
    cells.forEach((cell, i) => {
      const p = `${P}/numa/${pathStep('cell', i, cells.length)}`;
      c.object(cell, p, 'NUMA cell');
      c.optInt(cell.id, 0, 255, `${p}/@id`, 'NUMA cell id');
      if (cell.id !== undefined && cell.id !== i) c.fail(`NUMA cell ids must be 0..${cells.length - 1} in order, got ${cell.id}`, `${p}/@id`);
      c.pattern(cell.cpus, CPU_LIST, `${p}/@cpus`, 'NUMA cell cpus');
      c.int(cell.memoryKiB, 1, MAX_MEMORY_KIB, `${p}/@memory`, 'NUMA cell memory (KiB)');
    });
  }
}

/** Paths of what `<cpu>` holds that vmferry does not model (elements and attributes), in document order. */
export function unmodelledCpuContent(def: DomainDef): string[] {
  if (def.cpu === undefined || def.preserved === undefined) return [];
  const root = expandDomainDef(def).preserved?.find((n): n is XmlElement => n.kind === 'element');
  const cpu = root === undefined ? undefined : findChild(root, 'cpu');
  if (cpu === undefined) return [];
  const out: string[] = [];
  const visit = (el: XmlElement, path: string): void => {
    const known = MODELLED[el.name];
    for (const a of el.attrs) if (!known?.includes(a.name)) out.push(`${path}/@${a.name}`);
    const kids = childElements(el);
    for (const k of kids) {
      const p = `${path}/${pathStep(k.name, kids.filter((x) => x.name === k.name).indexOf(k), kids.filter((x) => x.name === k.name).length)}`;
      const allowed = el.name === 'cpu' ? ['model', 'feature', 'topology', 'numa'] : el.name === 'numa' ? ['cell'] : [];
      if (allowed.includes(k.name)) visit(k, p);
      else out.push(p);
    }
  };
  visit(cpu, '/domain/cpu');
  return out;
}
