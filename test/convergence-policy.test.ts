// vitest-lane: isolated
// The convergence policy model and its evaluator (pure code, no QEMU): what a
// policy may contain, which step a run of samples reaches, the timeouts, a
// policy changed mid-run, and the job percentage that never runs backwards.
import { describe, expect, it } from 'vitest';
import { BUILTIN_POLICIES, invalidPolicy, resolvePolicy, type ConvergencePolicy } from '../src/common/convergence-policy.js';
import { ConvergenceEngine, type ConvergenceSample } from '../src/workflows/convergence-engine.js';
import { JobPercent } from '../src/workflows/job-percent.js';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/** Samples of a migration that never converges: every pass ends with as much left as the one before. */
function stalling(passes: number, secondsPerPass = 10, remaining = 200 * MIB): ConvergenceSample[] {
  return Array.from({ length: passes }, (_, i) => ({ elapsedMs: i * secondsPerPass * 1000, iteration: i + 1, remainingBytes: remaining, totalBytes: GIB }));
}

describe('convergence policies: validation', () => {
  it('every built-in is valid for a post-copy migration', () => {
    for (const p of Object.values(BUILTIN_POLICIES)) expect(invalidPolicy(p, true), p.name).toBeUndefined();
  });

  it('a built-in runs without its post-copy parts when the migration has no postcopy flag', () => {
    const p = resolvePolicy('postcopy', false) as ConvergencePolicy;
    expect(p.postcopySwitch).toBeUndefined();
    expect(p.timeoutAction).toBe('abort');
    expect(invalidPolicy(p, false)).toBeUndefined();
    expect((resolvePolicy(undefined, true) as ConvergencePolicy).name).toBe('default');
  });

  it('refuses an unknown name, and a given policy asking for post-copy without the flag', () => {
    expect(resolvePolicy('fastest', false)).toMatch(/unknown convergence policy 'fastest'/);
    const pc = { ...BUILTIN_POLICIES.postcopy! };
    expect(resolvePolicy(pc, false)).toMatch(/postcopySwitch needs a migration started with the postcopy flag/);
  });

  it.each([
    [{ bandwidthMiBps: -1 }, /bandwidthMiBps: speed must not be negative/],
    [{ initialMaxDowntimeMs: 0 }, /initialMaxDowntimeMs/],
    [{ extra: 1 }, /unknown policy field extra/],
    [{ name: 'Bad Name' }, /policy name must match/],
    [{ downtimeSteps: [{ maxDowntimeMs: 500 }] }, /needs afterStalledIterations or afterSeconds/],
    [
      {
        downtimeSteps: [
          { maxDowntimeMs: 500, afterStalledIterations: 4 },
          { maxDowntimeMs: 900, afterStalledIterations: 2 },
        ],
      },
      /downtimeSteps\[1\] triggers before the step ahead of it/,
    ],
    [{ downtimeSteps: Array.from({ length: 33 }, (_, i) => ({ maxDowntimeMs: 100, afterSeconds: i + 1 })) }, /at most 32/],
    [{ autoConverge: { initialPercent: 50, incrementPercent: 10, maxPercent: 40 } }, /maxPercent must not be below initialPercent/],
    [{ xbzrleCacheMiB: 1.5 }, /xbzrleCacheMiB/],
    [{ completionTimeoutSecondsPerGiB: -5 }, /completionTimeoutSecondsPerGiB/],
    [{ timeoutAction: 'reboot' }, /timeoutAction must be one of abort, suspend, postcopy/],
  ])('refuses %j', (change, why) => {
    expect(invalidPolicy({ ...BUILTIN_POLICIES['minimal-downtime']!, ...change }, false)).toMatch(why);
  });

  it('refuses what is not an object', () => {
    expect(invalidPolicy('default', false)).toMatch(/must be an object/);
    expect(invalidPolicy(null, false)).toMatch(/must be an object/);
  });
});

describe('convergence policies: the evaluator', () => {
  it("walks oVirt's minimal-downtime schedule over stalled iterations, in order, once each", () => {
    const e = new ConvergenceEngine(BUILTIN_POLICIES['minimal-downtime']!, false);
    expect(e.initial()).toEqual({ maxDowntimeMs: 100, bandwidthMiBps: 0 });
    const sent = stalling(8).map((s) => e.observe(s).maxDowntimeMs);
    // Pass 1 sets the lowest; passes 2..8 are stalled 1..7 times.
    expect(sent).toEqual([undefined, 150, 200, 300, 400, undefined, 500, undefined]);
    expect(e.status().step).toBe('downtime step 5 of 5 (500 ms, after 6 stalled iterations)');
  });

  it('a new low resets the stall count but keeps the downtime reached', () => {
    const e = new ConvergenceEngine(BUILTIN_POLICIES.default!, false);
    const samples = [...stalling(3), { elapsedMs: 30_000, iteration: 4, remainingBytes: 50 * MIB, totalBytes: GIB }];
    const sent = samples.map((s) => e.observe(s).maxDowntimeMs);
    expect(sent).toEqual([undefined, undefined, 500, undefined]);
    expect(e.status()).toMatchObject({ stalledIterations: 0, maxDowntimeMs: 500 });
  });

  it('samples within one pass do not count as stalls', () => {
    const e = new ConvergenceEngine(BUILTIN_POLICIES['minimal-downtime']!, false);
    for (let i = 0; i < 20; i++) e.observe({ elapsedMs: i * 500, iteration: 1, remainingBytes: 300 * MIB, totalBytes: GIB });
    expect(e.status().stalledIterations).toBe(0);
  });

  it('switches to post-copy by the rule only when the migration allows it, and asks once', () => {
    const allowed = new ConvergenceEngine(BUILTIN_POLICIES.postcopy!, true);
    const asked = stalling(6).filter((s) => allowed.observe(s).startPostcopy).length;
    expect(asked).toBe(1);
    const refused = new ConvergenceEngine(BUILTIN_POLICIES.postcopy!, false);
    expect(stalling(6).some((s) => refused.observe(s).startPostcopy)).toBe(false);
  });

  it('completion timeout scales with the size moved; the action follows the policy', () => {
    const p: ConvergencePolicy = { ...BUILTIN_POLICIES.none!, name: 't', completionTimeoutSecondsPerGiB: 100, timeoutAction: 'suspend' };
    const e = new ConvergenceEngine(p, false);
    // 2 GiB (RAM plus disk): 200 s.
    expect(e.observe({ elapsedMs: 199_000, iteration: 1, remainingBytes: MIB, totalBytes: 2 * GIB }).timeout).toBeUndefined();
    const t = e.observe({ elapsedMs: 200_000, iteration: 2, remainingBytes: MIB, totalBytes: 2 * GIB }).timeout;
    expect(t).toMatchObject({ kind: 'completion', action: 'suspend' });
    // Once struck, it is not struck again.
    expect(e.observe({ elapsedMs: 210_000, iteration: 3, remainingBytes: MIB, totalBytes: 2 * GIB }).timeout).toBeUndefined();
  });

  it('progress timeout counts from the last new low, not from the start', () => {
    const p: ConvergencePolicy = { ...BUILTIN_POLICIES.none!, name: 't', progressTimeoutSeconds: 60 };
    const e = new ConvergenceEngine(p, false);
    e.observe({ elapsedMs: 0, iteration: 1, remainingBytes: 500 * MIB, totalBytes: GIB });
    e.observe({ elapsedMs: 50_000, iteration: 2, remainingBytes: 400 * MIB, totalBytes: GIB });
    expect(e.observe({ elapsedMs: 100_000, iteration: 3, remainingBytes: 450 * MIB, totalBytes: GIB }).timeout).toBeUndefined();
    expect(e.observe({ elapsedMs: 110_000, iteration: 4, remainingBytes: 450 * MIB, totalBytes: GIB }).timeout).toMatchObject({
      kind: 'progress',
      action: 'abort',
    });
  });

  it('a postcopy timeout action without the flag becomes abort', () => {
    const p: ConvergencePolicy = { ...BUILTIN_POLICIES.none!, name: 't', progressTimeoutSeconds: 1, timeoutAction: 'postcopy' };
    const e = new ConvergenceEngine(p, false);
    e.observe({ elapsedMs: 0, iteration: 1, remainingBytes: MIB, totalBytes: GIB });
    expect(e.observe({ elapsedMs: 2000, iteration: 2, remainingBytes: MIB, totalBytes: GIB }).timeout?.action).toBe('abort');
  });

  it('a policy replaced mid-run applies from where the migration stands and returns only what changed', () => {
    const e = new ConvergenceEngine(BUILTIN_POLICIES.none!, false);
    const samples = stalling(5);
    for (const s of samples) e.observe(s);
    expect(e.status().stalledIterations).toBe(4);
    const change = e.replace({ ...BUILTIN_POLICIES['minimal-downtime']!, bandwidthMiBps: 100 }, samples.at(-1));
    expect(change).toEqual({ maxDowntimeMs: 400, bandwidthMiBps: 100 });
    expect(e.replace({ ...BUILTIN_POLICIES['minimal-downtime']!, bandwidthMiBps: 100 }, samples.at(-1))).toEqual({});
  });

  it("a user's downtime stays until the policy reaches its next step", () => {
    const e = new ConvergenceEngine(BUILTIN_POLICIES.default!, false);
    e.overridden({ maxDowntimeMs: 50 });
    const [a, b, c] = stalling(3);
    expect(e.observe(a!).maxDowntimeMs).toBeUndefined();
    expect(e.observe(b!).maxDowntimeMs).toBeUndefined();
    expect(e.status().maxDowntimeMs).toBe(50);
    expect(e.observe(c!).maxDowntimeMs).toBe(500);
  });

  it('is deterministic: the same samples give the same decisions', () => {
    const run = () => {
      const e = new ConvergenceEngine(BUILTIN_POLICIES.default!, true);
      return stalling(12).map((s) => e.observe(s));
    };
    expect(run()).toEqual(run());
  });
});

describe('job percent over the whole migration', () => {
  it('never runs backwards when remaining memory grows', () => {
    const j = new JobPercent();
    const seen = [
      j.update('begin', {}, 0),
      j.update('prepare', {}, 100),
      j.update('perform', { memTotalBytes: GIB, memProcessedBytes: 500 * MIB, memRemainingBytes: 500 * MIB }, 1000),
      j.update('perform', { memTotalBytes: GIB, memProcessedBytes: 600 * MIB, memRemainingBytes: 900 * MIB }, 2000),
      j.update('finish', {}, 3000),
      j.update('confirm', {}, 3100),
      j.update('completed', {}, 3200),
    ].map((p) => p.percent);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]!);
    expect(seen[2]).toBeCloseTo(50, 0);
    expect(seen.at(-1)).toBe(100);
  });

  it('weights the disk copy by its size and gives an ETA from the stream rate', () => {
    const j = new JobPercent();
    const p0 = j.update('storage-copy', { diskTotalBytes: 3 * GIB, memTotalBytes: GIB, diskProcessedBytes: 0, diskRemainingBytes: 3 * GIB }, 0);
    const p1 = j.update('storage-copy', { diskTotalBytes: 3 * GIB, memTotalBytes: GIB, diskProcessedBytes: 1.5 * GIB, diskRemainingBytes: 1.5 * GIB }, 10_000);
    expect(p0.percent).toBe(5);
    expect(p1.percent).toBeCloseTo(5 + 90 * 0.75 * 0.5, 0);
    expect(p1.etaSeconds).toBe(10);
    const p2 = j.update('perform', { diskTotalBytes: 3 * GIB, memTotalBytes: GIB, memProcessedBytes: 0, memRemainingBytes: GIB }, 11_000);
    expect(p2.percent).toBeCloseTo(5 + 90 * 0.75, 0);
  });
});
