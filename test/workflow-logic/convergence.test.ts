// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The convergence policy in the migrate workflow against stub hosts: progress
// samples signalled as Perform would send them walk the downtime schedule on the
// source's QEMU, a timeout aborts (typed, both sides undone) or suspends, the
// policy can be replaced mid-run and a bad one is refused by the Update's
// validator, and the whole-job percentage never runs backwards.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { migrationProgressSignal, setPolicyUpdate, type ConvergenceSample } from '../../src/common/convergence-messages.js';
import { BUILTIN_POLICIES } from '../../src/common/convergence-policy.js';
import { ErrorType } from '../../src/common/errors.js';
import type { JobInfo } from '../../src/common/job-types.js';
import { startLogicEnv, type LogicEnv } from './logic-env.js';
import { failed, undos } from './outcome.js';

let t: LogicEnv;
beforeAll(async () => {
  t = await startLogicEnv(['src', 'dst']);
});
afterAll(async () => await t?.stop());
beforeEach(() => t.stubs.reset());

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** The n-th pass of a stream that never converges: as much left at the end of each pass. */
function pass(n: number, secondsPerPass = 5): ConvergenceSample {
  return { elapsedMs: n * secondsPerPass * 1000, iteration: n, remainingBytes: 200 * MIB, totalBytes: GIB, processedBytes: n * 300 * MIB, status: 'active' };
}

async function info(h: { query: (q: string) => Promise<unknown> }): Promise<JobInfo> {
  return (await h.query('jobInfo')) as JobInfo;
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * VMFERRY_RECORD_HISTORIES=DIR writes each run's history there: the fixtures that
 * replay.test.ts replays against later versions of the workflow code.
 */
async function record(name: string, h: { fetchHistory: () => Promise<Parameters<typeof historyToJSON>[0]> }): Promise<void> {
  const dir = process.env.VMFERRY_RECORD_HISTORIES;
  if (dir) writeFileSync(join(dir, `${name}.json`), historyToJSON(await h.fetchHistory()));
}

const downtimes = (): number[] => t.stubs.find('src', 'setJobMaxDowntime').map((c) => c.args[2] as number);

describe('workflow logic (time-skipping env, stub activities): convergence policy', () => {
  it("walks the policy's downtime schedule on the source as stalled passes arrive; the policy's throttle goes to Perform", async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-released' });
    const h = await t.start({ policy: 'minimal-downtime' });
    await t.stubs.started('src', 'migratePerform');
    const perform = t.stubs.find('src', 'migratePerform')[0]!.args[0] as { flags: string[]; tuning?: unknown; progressSamples?: boolean };
    expect(perform.flags).toContain('auto-converge');
    expect(perform.progressSamples).toBe(true);
    expect(perform.tuning).toEqual({ throttleInitialPercent: 20, throttleIncrementPercent: 10, maxThrottlePercent: 99 });
    // The policy's initial 100 ms goes to the source with Begin, before the stream.
    expect(t.stubs.find('src', 'migrateBegin')[0]!.args[0]).toMatchObject({ maxDowntimeMs: 100 });
    for (let n = 1; n <= 4; n++) await h.signal(migrationProgressSignal, pass(n));
    await until('three downtime steps', async () => (downtimes().length >= 3 ? true : undefined));
    expect(downtimes()).toEqual([150, 200, 300]);
    const i = await info(h);
    expect(i).toMatchObject({
      policy: 'minimal-downtime',
      policyStep: 'downtime step 3 of 5 (300 ms, after 3 stalled iterations)',
      iterations: 4,
      maxDowntimeMs: 300,
    });
    t.stubs.release('src', 'migratePerform');
    expect(await h.result()).toMatchObject({ domain: 'vm1' });
    expect((await info(h)).jobPercent).toBe(100);
    await record('policy-downtime-schedule', h);
  });

  it('a progress timeout with action abort fails the job OperationTimeout, aborts the stream and undoes both sides', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-cancelled' });
    const policy = { ...BUILTIN_POLICIES.none!, name: 'strict', progressTimeoutSeconds: 10 };
    const h = await t.start({ policy });
    await t.stubs.started('src', 'migratePerform');
    await h.signal(migrationProgressSignal, pass(1));
    await h.signal(migrationProgressSignal, pass(3));
    const f = await failed(h);
    expect(f).toMatchObject({ type: ErrorType.OperationTimeout, phase: 'perform', message: expect.stringMatching(/did not converge: no progress for 10 s/) });
    expect(t.stubs.find('src', 'abortJob')).toHaveLength(1);
    expect(undos(t.stubs)).toEqual(['dst:migrateFinish', 'src:migrateConfirm']);
    expect((await info(h)).cleanupErrors ?? []).toEqual([]);
    await record('policy-timeout-abort', h);
  });

  it('a completion timeout with action suspend pauses the guest on the source and lets the migration complete', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-released' });
    const policy = { ...BUILTIN_POLICIES.none!, name: 'pause-late', completionTimeoutSecondsPerGiB: 20, timeoutAction: 'suspend' as const };
    const h = await t.start({ policy });
    await t.stubs.started('src', 'migratePerform');
    await h.signal(migrationProgressSignal, pass(1));
    expect(t.stubs.find('src', 'suspendJobGuest')).toEqual([]);
    await h.signal(migrationProgressSignal, pass(5));
    await t.stubs.started('src', 'suspendJobGuest');
    t.stubs.release('src', 'migratePerform');
    expect(await h.result()).toMatchObject({ domain: 'vm1' });
    expect(t.stubs.find('src', 'suspendJobGuest')).toHaveLength(1);
  });

  it('setPolicy mid-run applies the new schedule from where the stream stands; a bad policy is refused and changes nothing', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-released' });
    const h = await t.start({ policy: 'none' });
    await t.stubs.started('src', 'migratePerform');
    for (let n = 1; n <= 5; n++) await h.signal(migrationProgressSignal, pass(n));
    await until('samples seen', async () => ((await info(h)).iterations === 5 ? true : undefined));
    expect(downtimes()).toEqual([]);
    const refused = await h.executeUpdate(setPolicyUpdate, { args: [{ ...BUILTIN_POLICIES.none!, name: 'x', bandwidthMiBps: -3 }] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(String((refused as Error).cause)).toMatch(/bandwidthMiBps: speed must not be negative/);
    const needsCap = await h.executeUpdate(setPolicyUpdate, { args: ['minimal-downtime'] }).catch((e: unknown) => e);
    expect(String((needsCap as Error).cause)).toMatch(/uses auto-converge, which this migration was not started with/);
    const { autoConverge: _off, ...noThrottle } = BUILTIN_POLICIES['minimal-downtime']!;
    const change = await h.executeUpdate(setPolicyUpdate, { args: [{ ...noThrottle, name: 'ovirt-no-throttle' }] });
    // Four stalled passes: oVirt's fourth step.
    expect(change).toMatchObject({ policy: 'ovirt-no-throttle', maxDowntimeMs: 400 });
    await until('the new downtime', async () => (downtimes().at(-1) === 400 ? true : undefined));
    t.stubs.release('src', 'migratePerform');
    await h.result();
    await record('policy-replaced-mid-run', h);
    const refusedLate = await h.executeUpdate(setPolicyUpdate, { args: ['none'] }).catch((e: unknown) => e);
    expect(refusedLate).toBeInstanceOf(Error);
  });

  it('a migration without a policy gets none: samples only move its progress, nothing is sent to QEMU', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-released' });
    const h = await t.start({});
    await t.stubs.started('src', 'migratePerform');
    const seen: number[] = [];
    for (const [n, left] of [
      [1, 600],
      [2, 300],
      [3, 700],
    ] as const) {
      await h.signal(migrationProgressSignal, { ...pass(n), remainingBytes: left * MIB });
      const i = await until(`sample ${n}`, async () => {
        const j = await info(h);
        return j.iterations === n ? j : undefined;
      });
      expect(i.jobPercent).toBeTypeOf('number');
      seen.push(i.jobPercent!);
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]!);
    expect(downtimes()).toEqual([]);
    expect((await info(h)).policy).toBeUndefined();
    // Its source is not asked for samples, and a policy cannot be added: it would have nothing to act on.
    expect(t.stubs.find('src', 'migratePerform')[0]!.args[0]).not.toHaveProperty('progressSamples');
    const refused = await h.executeUpdate(setPolicyUpdate, { args: ['default'] }).catch((e: unknown) => e);
    expect(String((refused as Error).cause)).toMatch(/started without a convergence policy/);
    t.stubs.release('src', 'migratePerform');
    await h.result();
  });

  it("switches to post-copy by the policy's rule: the source is asked once, after the policy's stalled passes", async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-released' });
    const h = await t.start({ flags: ['live', 'postcopy'], policy: 'postcopy' });
    await t.stubs.started('src', 'migratePerform');
    for (let n = 1; n <= 3; n++) await h.signal(migrationProgressSignal, pass(n));
    expect(t.stubs.find('src', 'migrateStartPostcopy')).toEqual([]);
    // The fourth pass is the third stalled one: the policy's rule.
    for (let n = 4; n <= 6; n++) await h.signal(migrationProgressSignal, pass(n));
    await t.stubs.started('src', 'migrateStartPostcopy');
    expect(t.stubs.find('src', 'migrateStartPostcopy')).toHaveLength(1);
    expect((await info(h)).postcopyState).toBeDefined();
    await h.terminate('test over');
  });

  it('refuses a bad policy at start, before any step', async () => {
    const err = await t.start({ policy: 'fastest' }).then(
      (h) => failed(h),
      (e: unknown) => e,
    );
    expect(JSON.stringify(err)).toMatch(/unknown convergence policy 'fastest'/);
    expect(t.stubs.find('src', 'migrateBegin')).toEqual([]);
  });
});
