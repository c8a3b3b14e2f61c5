// Convergence policies: what a live migration does when memory is dirtied
// faster than it moves. A policy is data (named built-ins or one given whole);
// the workflow evaluates it from the progress Perform reports
// (src/workflows/convergence-engine.ts), and the CLI, the workflow's Update
// validator and the start input all check it with invalidPolicy().
//
// The built-ins and their defaults, and why:
// - Downtime schedule over stalled iterations, as oVirt's predefined policies
//   ("Minimal downtime": 100 ms, then 150/200/300/400/500 ms after 1/2/3/4/6
//   stalled iterations; "Suspend workload if needed" adds 5000 ms last;
//   "Post-copy migration" switches after 2). An iteration is stalled when it
//   ends with no less remaining than the lowest seen before it: measuring in
//   iterations, not seconds, scales with the guest's size and the link.
// - `default` starts at QEMU's own 300 ms (a migration that converges today
//   behaves exactly as before), then widens to Nova's default maximum (500 ms)
//   and on to 1 s and 2 s, which a guest notices less than a failed
//   migration; later steps need more stalled iterations, as oVirt's do.
// - Auto-converge on, with QEMU's own throttle defaults (20 % first, +10 %
//   per step, 99 % max): oVirt enables it in every predefined policy; Nova and
//   KubeVirt leave it off, which is where their never-converging complaints
//   come from.
// - Bandwidth unlimited: Nova's and KubeVirt's current default (a per-host
//   share is the fleet limits' job, not a policy's).
// - xbzrle off: it costs source CPU and cache memory for every guest and
//   helps only page-rewriting workloads (off in Nova and oVirt's default).
// - Completion timeout 800 s per GiB of RAM plus copied disk (Nova's default,
//   and KubeVirt's for years): a timeout that aborts a migration that would
//   have converged costs a whole new migration, and a small guest still gets
//   minutes, not seconds (KubeVirt's newer 150 s/GiB aborts a 256 MiB guest
//   after 38 s; on a TCG test host that is a migration the default schedule
//   completes in 25 to 40 s). Progress timeout 150 s (KubeVirt's): no new low
//   of the remaining bytes for that long is a stuck migration at any size.
//   At timeout: abort (Nova, KubeVirt and oVirt all abort), or post-copy when
//   the migration allows it.
import { invalidDowntime, invalidSpeed } from './job-messages.js';

export const TIMEOUT_ACTIONS = ['abort', 'suspend', 'postcopy'] as const;
export type TimeoutAction = (typeof TIMEOUT_ACTIONS)[number];

/** One step of the downtime schedule: it applies once either trigger is reached (at least one is given). */
export interface DowntimeStep {
  maxDowntimeMs: number;
  /** Stalled iterations in a row (reset when remaining reaches a new low). */
  afterStalledIterations?: number;
  /** Seconds since the memory stream started. */
  afterSeconds?: number;
}

export interface AutoConvergeSettings {
  /** QEMU's cpu-throttle-initial, cpu-throttle-increment and max-cpu-throttle, in percent. */
  initialPercent: number;
  incrementPercent: number;
  maxPercent: number;
}

/** When to switch to post-copy (only for a migration started with the postcopy flag); the first trigger reached wins. */
export interface PostcopySwitchRule {
  afterStalledIterations?: number;
  afterSeconds?: number;
}

export interface ConvergencePolicy {
  name: string;
  /** MiB/s; 0 = unlimited. */
  bandwidthMiBps: number;
  initialMaxDowntimeMs: number;
  /** In the order they apply; each later step's triggers are at or after the previous one's. */
  downtimeSteps: DowntimeStep[];
  /** Off when absent. Decided before the stream starts: QEMU cannot turn a capability on mid-stream. */
  autoConverge?: AutoConvergeSettings;
  /** xbzrle page cache in MiB; off when absent or 0. Also decided before the stream starts. */
  xbzrleCacheMiB?: number;
  postcopySwitch?: PostcopySwitchRule;
  /** Seconds per GiB of RAM plus copied disk; 0 = none. */
  completionTimeoutSecondsPerGiB: number;
  /** Seconds with no new low of the remaining bytes; 0 = none. */
  progressTimeoutSeconds: number;
  timeoutAction: TimeoutAction;
}

const OVIRT_STEPS: DowntimeStep[] = [
  { afterStalledIterations: 1, maxDowntimeMs: 150 },
  { afterStalledIterations: 2, maxDowntimeMs: 200 },
  { afterStalledIterations: 3, maxDowntimeMs: 300 },
  { afterStalledIterations: 4, maxDowntimeMs: 400 },
  { afterStalledIterations: 6, maxDowntimeMs: 500 },
];
const QEMU_THROTTLE: AutoConvergeSettings = { initialPercent: 20, incrementPercent: 10, maxPercent: 99 };

export const BUILTIN_POLICIES: Readonly<Record<string, ConvergencePolicy>> = {
  default: {
    name: 'default',
    bandwidthMiBps: 0,
    initialMaxDowntimeMs: 300,
    downtimeSteps: [
      { afterStalledIterations: 2, maxDowntimeMs: 500 },
      { afterStalledIterations: 4, maxDowntimeMs: 1000 },
      { afterStalledIterations: 6, maxDowntimeMs: 2000 },
    ],
    autoConverge: QEMU_THROTTLE,
    postcopySwitch: { afterStalledIterations: 8 },
    completionTimeoutSecondsPerGiB: 800,
    progressTimeoutSeconds: 150,
    timeoutAction: 'abort',
  },
  'minimal-downtime': {
    name: 'minimal-downtime',
    bandwidthMiBps: 0,
    initialMaxDowntimeMs: 100,
    downtimeSteps: OVIRT_STEPS,
    autoConverge: QEMU_THROTTLE,
    completionTimeoutSecondsPerGiB: 800,
    progressTimeoutSeconds: 150,
    timeoutAction: 'abort',
  },
  'suspend-workload': {
    name: 'suspend-workload',
    bandwidthMiBps: 0,
    initialMaxDowntimeMs: 100,
    downtimeSteps: [...OVIRT_STEPS, { afterStalledIterations: 8, maxDowntimeMs: 5000 }],
    autoConverge: QEMU_THROTTLE,
    xbzrleCacheMiB: 64,
    completionTimeoutSecondsPerGiB: 800,
    progressTimeoutSeconds: 150,
    timeoutAction: 'suspend',
  },
  postcopy: {
    name: 'postcopy',
    bandwidthMiBps: 0,
    initialMaxDowntimeMs: 100,
    downtimeSteps: OVIRT_STEPS.slice(0, 2),
    autoConverge: QEMU_THROTTLE,
    postcopySwitch: { afterStalledIterations: 3 },
    completionTimeoutSecondsPerGiB: 800,
    progressTimeoutSeconds: 150,
    timeoutAction: 'postcopy',
  },
  /** QEMU left to itself: no schedule, no throttle, no timeout (what a raw `migrate` does). */
  none: {
    name: 'none',
    bandwidthMiBps: 0,
    initialMaxDowntimeMs: 300,
    downtimeSteps: [],
    completionTimeoutSecondsPerGiB: 0,
    progressTimeoutSeconds: 0,
    timeoutAction: 'abort',
  },
};

export const DEFAULT_POLICY_NAME = 'default';

const POLICY_NAME = /^[a-z][a-z0-9-]{0,63}$/;
const MAX_STEPS = 32;
const MAX_ITERATIONS = 10_000;
const MAX_SECONDS = 7 * 24 * 3600;
const MAX_XBZRLE_MIB = 64 * 1024;

/** Why `p` is not a usable policy (for a migration with `postcopyAllowed` or not), or undefined when it is. */
export function invalidPolicy(p: unknown, postcopyAllowed: boolean): string | undefined {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return 'a policy must be an object';
  const q = p as Partial<ConvergencePolicy> & Record<string, unknown>;
  const known = new Set<string>([
    'name',
    'bandwidthMiBps',
    'initialMaxDowntimeMs',
    'downtimeSteps',
    'autoConverge',
    'xbzrleCacheMiB',
    'postcopySwitch',
    'completionTimeoutSecondsPerGiB',
    'progressTimeoutSeconds',
    'timeoutAction',
  ]);
  const unknown = Object.keys(q).filter((k) => !known.has(k));
  if (unknown.length > 0) return `unknown policy field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`;
  if (typeof q.name !== 'string' || !POLICY_NAME.test(q.name)) return `policy name must match ${POLICY_NAME.source}`;
  const speed = invalidSpeed(q.bandwidthMiBps);
  if (speed) return `bandwidthMiBps: ${speed}`;
  const initial = invalidDowntime(q.initialMaxDowntimeMs);
  if (initial) return `initialMaxDowntimeMs: ${initial}`;
  const steps = invalidSteps(q.downtimeSteps);
  if (steps) return steps;
  if (q.autoConverge !== undefined) {
    const why = invalidThrottle(q.autoConverge);
    if (why) return `autoConverge: ${why}`;
  }
  if (q.xbzrleCacheMiB !== undefined && !wholeIn(q.xbzrleCacheMiB, 0, MAX_XBZRLE_MIB))
    return `xbzrleCacheMiB must be a whole number from 0 to ${MAX_XBZRLE_MIB}`;
  if (q.postcopySwitch !== undefined) {
    const why = invalidTrigger(q.postcopySwitch, 'postcopySwitch');
    if (why) return why;
    if (!postcopyAllowed) return 'postcopySwitch needs a migration started with the postcopy flag';
  }
  if (!wholeIn(q.completionTimeoutSecondsPerGiB, 0, MAX_SECONDS)) return `completionTimeoutSecondsPerGiB must be a whole number from 0 to ${MAX_SECONDS}`;
  if (!wholeIn(q.progressTimeoutSeconds, 0, MAX_SECONDS)) return `progressTimeoutSeconds must be a whole number from 0 to ${MAX_SECONDS}`;
  if (!TIMEOUT_ACTIONS.includes(q.timeoutAction as TimeoutAction)) return `timeoutAction must be one of ${TIMEOUT_ACTIONS.join(', ')}`;
  if (q.timeoutAction === 'postcopy' && !postcopyAllowed) return 'timeoutAction postcopy needs a migration started with the postcopy flag';
  return undefined;
}

/**
 * The policy a migration runs: a built-in by name, or one given whole. A built-in
 * whose post-copy parts the migration cannot use (no postcopy flag) runs without them.
 */
export function resolvePolicy(spec: string | ConvergencePolicy | undefined, postcopyAllowed: boolean): ConvergencePolicy | string {
  if (spec === undefined || typeof spec === 'string') {
    const name = spec ?? DEFAULT_POLICY_NAME;
    const builtin = BUILTIN_POLICIES[name];
    if (!builtin) return `unknown convergence policy '${name}' (built-in: ${Object.keys(BUILTIN_POLICIES).join(', ')})`;
    if (postcopyAllowed) return builtin;
    const { postcopySwitch: _dropped, ...rest } = builtin;
    return { ...rest, timeoutAction: builtin.timeoutAction === 'postcopy' ? 'abort' : builtin.timeoutAction };
  }
  return invalidPolicy(spec, postcopyAllowed) ?? spec;
}

function invalidSteps(v: unknown): string | undefined {
  if (!Array.isArray(v)) return 'downtimeSteps must be a list';
  if (v.length > MAX_STEPS) return `downtimeSteps has ${v.length} steps, at most ${MAX_STEPS}`;
  let prev: DowntimeStep | undefined;
  for (const [i, s] of v.entries()) {
    const at = `downtimeSteps[${i}]`;
    if (typeof s !== 'object' || s === null) return `${at} must be an object`;
    const step = s as DowntimeStep;
    const extra = Object.keys(step).filter((k) => !['maxDowntimeMs', 'afterStalledIterations', 'afterSeconds'].includes(k));
    if (extra.length > 0) return `${at}: unknown field ${extra.join(', ')}`;
    const d = invalidDowntime(step.maxDowntimeMs);
    if (d) return `${at}: ${d}`;
    const t = invalidTrigger(step, at);
    if (t) return t;
    if (prev && (before(step.afterStalledIterations, prev.afterStalledIterations) || before(step.afterSeconds, prev.afterSeconds))) {
      return `${at} triggers before the step ahead of it`;
    }
    prev = step;
  }
  return undefined;
}

function invalidTrigger(t: unknown, at: string): string | undefined {
  if (typeof t !== 'object' || t === null) return `${at} must be an object`;
  const { afterStalledIterations: n, afterSeconds: s } = t as PostcopySwitchRule;
  if (n === undefined && s === undefined) return `${at} needs afterStalledIterations or afterSeconds`;
  if (n !== undefined && !wholeIn(n, 1, MAX_ITERATIONS)) return `${at}.afterStalledIterations must be a whole number from 1 to ${MAX_ITERATIONS}`;
  if (s !== undefined && !wholeIn(s, 1, MAX_SECONDS)) return `${at}.afterSeconds must be a whole number from 1 to ${MAX_SECONDS}`;
  return undefined;
}

function invalidThrottle(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return 'must be an object';
  const t = v as AutoConvergeSettings;
  if (!wholeIn(t.initialPercent, 1, 99)) return 'initialPercent must be a whole number from 1 to 99';
  if (!wholeIn(t.incrementPercent, 1, 99)) return 'incrementPercent must be a whole number from 1 to 99';
  if (!wholeIn(t.maxPercent, 1, 99)) return 'maxPercent must be a whole number from 1 to 99';
  if (t.maxPercent < t.initialPercent) return 'maxPercent must not be below initialPercent';
  return undefined;
}

function before(a: number | undefined, b: number | undefined): boolean {
  return a !== undefined && b !== undefined && a < b;
}

function wholeIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}
