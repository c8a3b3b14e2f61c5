// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Post-copy in the migrate workflow against stub hosts: the startPostcopy Update's
// validator (refused synchronously, nothing in history, unless the migration has
// 'postcopy' and is in Perform's pre-copy), Finish right after the switch, the wait
// for the stream's end with recovery (by itself and on the recoverPostcopy Update),
// and a failure after the switch, which never resumes the source and never kills the
// destination: the guest is left paused there.
import { WorkflowUpdateFailedError, WorkflowUpdateStage } from '@temporalio/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorType } from '../../src/common/errors.js';
import { cancelSignal } from '../../src/common/job-messages.js';
import type { MigrateResult, PerformResult } from '../../src/common/migration-types.js';
import { recoverPostcopyUpdate, startPostcopyUpdate } from '../../src/common/postcopy.js';
import { startLogicEnv, type LogicEnv } from './logic-env.js';
import { failed, undos } from './outcome.js';

let t: LogicEnv;
beforeAll(async () => {
  t = await startLogicEnv(['src', 'dst']);
});
afterAll(async () => await t?.stop());
beforeEach(() => t.stubs.reset());

const SWITCHED: PerformResult = { stats: { postcopy: true, sourceStoppedAtMs: 1_000 }, cookie: 'perform-cookie', postcopyRunning: true };

async function refusedUpdate(p: Promise<unknown>): Promise<{ type?: string; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  const cause = (err as WorkflowUpdateFailedError).cause as { type?: string; message: string };
  return { type: cause.type, message: cause.message };
}

async function updateEvents(h: { fetchHistory(): Promise<{ events?: unknown[] | null }> }): Promise<number> {
  const events = (await h.fetchHistory()).events ?? [];
  return events.filter((e) => JSON.stringify(e).includes('workflowExecutionUpdateAccepted')).length;
}

describe('workflow logic (time-skipping env, stub activities): post-copy', () => {
  it('startPostcopy is refused synchronously without the postcopy flag, and outside Perform; nothing enters history', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-released' });
    const plain = await t.start({ flags: ['live'] });
    await t.stubs.started('src', 'migratePerform');
    const r1 = await refusedUpdate(plain.executeUpdate(startPostcopyUpdate, { args: [] }));
    expect(r1).toMatchObject({ type: ErrorType.OperationInvalid, message: expect.stringMatching(/not started with 'postcopy'/) });
    t.stubs.release('src', 'migratePerform');
    await plain.result();
    t.stubs.reset();

    t.stubs.on('dst', 'migratePrepare', { block: 'until-released' });
    const early = await t.start({ flags: ['live', 'postcopy'] });
    await t.stubs.started('dst', 'migratePrepare', (c) => JSON.stringify(c.args).includes(early.workflowId));
    const r2 = await refusedUpdate(early.executeUpdate(startPostcopyUpdate, { args: [] }));
    expect(r2).toMatchObject({ type: ErrorType.OperationInvalid, message: expect.stringMatching(/pre-copy phase of Perform; the job is in prepare/) });
    // Recovery is refused too while nothing is paused.
    const r3 = await refusedUpdate(early.executeUpdate(recoverPostcopyUpdate, { args: [{}] }));
    expect(r3.message).toMatch(/not paused/);
    t.stubs.release('dst', 'migratePrepare');
    await early.result();
    expect(await updateEvents(plain)).toBe(0);
    expect(await updateEvents(early)).toBe(0);
    expect(t.stubs.find('src', 'migrateStartPostcopy')).toEqual([]);
  });

  it('during Perform the switch is sent to the source; Finish starts the guest at once, the stream is awaited, then Confirm', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-released', thenAnswer: SWITCHED });
    t.stubs.on('src', 'migratePostcopyWait', { block: 'until-released' });
    const h = await t.start({ flags: ['live', 'postcopy'] });
    // The first Perform blocks; the request arrives while it runs.
    await t.stubs.started('src', 'migratePerform');
    const accepted = await h.executeUpdate(startPostcopyUpdate, { args: [] });
    expect(accepted).toEqual({ postcopy: 'requested' });
    expect(t.stubs.find('src', 'migrateStartPostcopy')[0]!.args).toEqual(['vm1', expect.stringContaining(h.workflowId)]);
    // A second request is refused: it is already asked for.
    expect((await refusedUpdate(h.executeUpdate(startPostcopyUpdate, { args: [] }))).message).toMatch(/already requested/);
    t.stubs.release('src', 'migratePerform');
    await t.stubs.started('src', 'migratePostcopyWait');
    // Finish ran (with the post-copy flag) before the stream's end; Confirm waits for it.
    expect(t.stubs.find('dst', 'migrateFinish')[0]!.args[0]).toMatchObject({ success: true, postcopy: true });
    expect(t.stubs.find('src', 'migrateConfirm')).toEqual([]);
    expect(await h.query('jobInfo')).toMatchObject({ phase: 'postcopy', postcopyState: 'active' });
    // An abort now could only lose the guest: it is dropped.
    await h.signal(cancelSignal);
    t.stubs.release('src', 'migratePostcopyWait');
    const r: MigrateResult = await h.result();
    expect(r.stats).toMatchObject({ postcopy: true, transferredBytes: 8192 });
    expect(r.measuredDowntimeMs).toBe(40);
    expect(t.stubs.sequence((c) => ['migrateFinish', 'migratePostcopyWait', 'migratePostcopyEnded', 'migrateConfirm'].includes(c.act))).toEqual([
      'dst:migrateFinish',
      'src:migratePostcopyWait',
      'dst:migratePostcopyEnded',
      'src:migrateConfirm',
    ]);
    expect(undos(t.stubs)).toEqual([]);
    expect(t.stubs.find('src', 'abortJob')).toEqual([]);
  });

  it('a paused stream is recovered by itself (destination paused, listens; source resumes), and at once on recoverPostcopy with a new address', async () => {
    const waits = (): number => t.stubs.find('src', 'migratePostcopyWait').length;
    t.stubs.on('src', 'migratePerform', { answer: SWITCHED });
    t.stubs.on('src', 'migratePostcopyWait', { answer: { status: 'paused', reason: 'link down' } }, () => waits() <= 2);
    // The second pause: held until the test asked for a recovery by Update (the backoff is 2 s by then).
    t.stubs.on('dst', 'migratePostcopyPauseIncoming', { block: 'until-released' }, () => t.stubs.find('dst', 'migratePostcopyPauseIncoming').length === 2);
    const h = await t.start({ flags: ['live', 'postcopy', 'postcopy-after-precopy'] });
    await t.stubs.started('dst', 'migratePostcopyPauseIncoming', (c) => t.stubs.find('dst', 'migratePostcopyPauseIncoming').indexOf(c) === 1);
    expect(await h.query('jobInfo')).toMatchObject({ phase: 'postcopy-paused', postcopyState: 'paused', postcopyRecoveries: 1 });
    // A malformed address is refused by the validator, even while paused.
    expect((await refusedUpdate(h.executeUpdate(recoverPostcopyUpdate, { args: [{ uri: 'unix:/x' }] }))).message).toMatch(/tcp:HOST/);
    // Accepted while paused (before the backoff could run out), answered once the attempt started.
    const asked = await h.startUpdate(recoverPostcopyUpdate, { args: [{ uri: 'tcp:10.0.0.9:49999' }], waitForStage: WorkflowUpdateStage.ACCEPTED });
    t.stubs.release('dst', 'migratePostcopyPauseIncoming');
    expect(await asked.result()).toMatchObject({ attempt: 2 });
    const r: MigrateResult = await h.result();
    expect(r.destination.state).toBe('running');
    const listens = t.stubs.find('dst', 'migratePostcopyListen');
    expect(listens.map((c) => c.args)).toEqual([
      ['vm1', expect.any(String)],
      ['vm1', expect.any(String), 'tcp:10.0.0.9:49999'],
    ]);
    expect(t.stubs.find('src', 'migratePostcopyResume').map((c) => c.args[2])).toEqual(['tcp:dst:49200', 'tcp:dst:49200']);
    expect(undos(t.stubs)).toEqual([]);
    expect(await h.query('jobInfo')).toMatchObject({ status: 'completed', postcopyState: 'completed', postcopyRecoveries: 2 });
  });

  it('Finish fails after the switch: the destination is not killed and the source not resumed; the guest is left paused on the destination', async () => {
    t.stubs.on('src', 'migratePerform', { answer: SWITCHED });
    t.stubs.on(
      'dst',
      'migrateFinish',
      { fail: ErrorType.OperationFailed, message: 'cannot start CPUs on the destination' },
      (a) => (a[0] as { success: boolean }).success,
    );
    const h = await t.start({ flags: ['live', 'postcopy', 'postcopy-after-precopy'] });
    const f = await failed(h);
    expect(f).toMatchObject({ type: ErrorType.OperationFailed, phase: 'finish' });
    expect(f.message).toMatch(/cannot start CPUs.*post-copy had started: 'vm1' is left paused on dst.*must not resume it/);
    // No kill of the destination (Finish with success false), no v3 resume step other than the job's end.
    expect(t.stubs.find('dst', 'migrateFinish').filter((c) => !(c.args[0] as { success: boolean }).success)).toEqual([]);
    expect(t.stubs.find('dst', 'migratePostcopyKeepPaused')).toHaveLength(1);
    expect(undos(t.stubs)).toEqual(['src:migrateConfirm']);
    expect(await h.query('jobInfo')).toMatchObject({ status: 'failed', postcopyState: 'failed' });
  });

  it('the stream fails for good while the guest runs on the destination: the same, and Confirm never stops the source', async () => {
    t.stubs.on('src', 'migratePerform', { answer: SWITCHED });
    t.stubs.on('src', 'migratePostcopyWait', { fail: ErrorType.OperationFailed, message: 'the source QEMU exited during post-copy' });
    const h = await t.start({ flags: ['live', 'postcopy', 'postcopy-after-precopy'] });
    const f = await failed(h);
    expect(f).toMatchObject({ type: ErrorType.OperationFailed, phase: 'postcopy' });
    expect(f.message).toMatch(/left paused on dst/);
    expect(t.stubs.find('dst', 'migrateFinish')).toHaveLength(1);
    expect(t.stubs.find('src', 'migrateConfirm').map((c) => (c.args[0] as { success: boolean }).success)).toEqual([false]);
    expect(t.stubs.find('dst', 'migratePostcopyKeepPaused')).toHaveLength(1);
  });

  it('over protocol v2 post-copy is refused before anything is touched on the destination', async () => {
    t.stubs.profile('dst', { protocolVersions: [2] });
    const h = await t.start({ flags: ['live', 'postcopy'] });
    expect(await failed(h)).toMatchObject({ type: ErrorType.ConfigUnsupported, phase: 'begin', message: expect.stringMatching(/post-copy needs protocol v3/) });
    expect(t.stubs.find('dst', 'migratePrepare2')).toEqual([]);
  });
});
