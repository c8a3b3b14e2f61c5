// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Job control of the migrate workflow against stub hosts: cancel in each phase
// (undone before Finish, ignored from Finish on), a cancel that arrives as the
// stream completes, and speed / downtime signals (applied once Begin took the job).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorType } from '../../src/common/errors.js';
import { cancelSignal, setMaxDowntimeSignal, setSpeedSignal } from '../../src/common/job-messages.js';
import type { MigrateResult } from '../../src/common/migration-types.js';
import { startLogicEnv, type LogicEnv } from './logic-env.js';
import { failed, undos } from './outcome.js';

let t: LogicEnv;
beforeAll(async () => {
  t = await startLogicEnv(['src', 'dst']);
});
afterAll(async () => await t?.stop());
beforeEach(() => t.stubs.reset());

const ABORTED = { type: ErrorType.OperationAborted, message: expect.stringMatching(/operation aborted by the user/) };

describe('workflow logic (time-skipping env, stub activities): cancel in each phase', () => {
  it('during the tunnel probe: aborted in begin, nothing to undo', async () => {
    t.stubs.on('src', 'migrateTunnelSupport', { block: 'until-cancelled' });
    const h = await t.start({ flags: ['live', 'tls'] });
    await t.stubs.started('src', 'migrateTunnelSupport');
    await h.signal(cancelSignal);
    expect(await failed(h)).toMatchObject({ ...ABORTED, phase: 'begin' });
    expect(t.stubs.find('src', 'migrateBegin')).toEqual([]);
    expect(undos(t.stubs)).toEqual([]);
  });

  it('during Begin: Begin is stopped and undone on the source; no abortJob (the source job is not live yet)', async () => {
    t.stubs.on('src', 'migrateBegin', { block: 'until-cancelled' });
    const h = await t.start({});
    await t.stubs.started('src', 'migrateBegin');
    await h.signal(cancelSignal);
    expect(await failed(h)).toMatchObject({ ...ABORTED, phase: 'begin' });
    expect(t.stubs.find('src', 'migrateBegin')[0]!.outcome).toBe('cancelled');
    expect(undos(t.stubs)).toEqual(['src:migrateConfirm']);
    expect(t.stubs.find('src', 'abortJob')).toEqual([]);
  });

  it('during Prepare: Prepare stopped, both sides undone together, abortJob sent to the source', async () => {
    t.stubs.on('dst', 'migratePrepare', { block: 'until-cancelled' });
    const h = await t.start({});
    await t.stubs.started('dst', 'migratePrepare');
    await h.signal(cancelSignal);
    expect(await failed(h)).toMatchObject({ ...ABORTED, phase: 'prepare' });
    expect(undos(t.stubs)).toEqual(['dst:migrateFinish', 'src:migrateConfirm']);
    expect(t.stubs.find('src', 'abortJob')).toHaveLength(1);
  });

  it('during Perform (v3): abortJob reaches the source at once, Perform is stopped, both sides undone', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-cancelled' });
    const h = await t.start({});
    await t.stubs.started('src', 'migratePerform');
    await h.signal(cancelSignal);
    expect(await failed(h)).toMatchObject({ ...ABORTED, phase: 'perform' });
    expect(t.stubs.find('src', 'abortJob')[0]!.args).toEqual(['vm1', expect.stringContaining(h.workflowId)]);
    expect(t.stubs.find('src', 'migratePerform')[0]!.outcome).toBe('cancelled');
    expect(undos(t.stubs)).toEqual(['dst:migrateFinish', 'src:migrateConfirm']);
    expect((await h.query('jobInfo')) as { status: string }).toMatchObject({ status: 'cancelled' });
  });

  it('during Perform2 (v2): the same, undone the v2 way', async () => {
    t.stubs.profile('dst', { protocolVersions: [2] });
    t.stubs.on('src', 'migratePerform2', { block: 'until-cancelled' });
    const h = await t.start({});
    await t.stubs.started('src', 'migratePerform2');
    await h.signal(cancelSignal);
    expect(await failed(h)).toMatchObject({ ...ABORTED, phase: 'perform' });
    expect(undos(t.stubs)).toEqual(['dst:migrateFinish2', 'src:migrateAbortSource']);
  });

  it('by native workflow cancellation during Perform: the same as the signal', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-cancelled' });
    const h = await t.start({});
    await t.stubs.started('src', 'migratePerform');
    await h.cancel();
    expect(await failed(h)).toMatchObject({ ...ABORTED, phase: 'perform' });
    expect(undos(t.stubs)).toEqual(['dst:migrateFinish', 'src:migrateConfirm']);
  });

  it('as the stream completes (Perform succeeds although cancelled): still honoured, both sides undone', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-cancelled', thenAnswer: { stats: {} } });
    const h = await t.start({});
    await t.stubs.started('src', 'migratePerform');
    await h.signal(cancelSignal);
    const f = await failed(h);
    expect(f).toMatchObject({ ...ABORTED, phase: 'perform' });
    expect(t.stubs.find('src', 'migratePerform')[0]!.outcome).toBe('ok');
    expect(t.stubs.find('dst', 'migrateFinish').filter((c) => (c.args[0] as { success: boolean }).success)).toEqual([]);
    expect(undos(t.stubs)).toEqual(['dst:migrateFinish', 'src:migrateConfirm']);
  });

  it('during Finish: too late, ignored; the migration completes', async () => {
    t.stubs.on('dst', 'migrateFinish', { block: 'until-released' });
    const h = await t.start({});
    await t.stubs.started('dst', 'migrateFinish');
    await h.signal(cancelSignal);
    t.stubs.release('dst', 'migrateFinish');
    const r: MigrateResult = await h.result();
    expect(r.protocol).toBe(3);
    expect(t.stubs.find('dst', 'migrateFinish')[0]!.outcome).toBe('ok');
    expect(t.stubs.find('src', 'migrateConfirm')[0]!.args[0]).toMatchObject({ success: true });
    expect(undos(t.stubs)).toEqual([]);
    expect(t.stubs.find('src', 'abortJob')).toEqual([]);
  });

  it('during Confirm: ignored too; the migration completes', async () => {
    t.stubs.on('src', 'migrateConfirm', { block: 'until-released' });
    const h = await t.start({});
    await t.stubs.started('src', 'migrateConfirm');
    await h.signal(cancelSignal);
    t.stubs.release('src', 'migrateConfirm');
    expect(((await h.result()) as MigrateResult).protocol).toBe(3);
    expect(undos(t.stubs)).toEqual([]);
  });

  it('cancel during Perform with a failing undo: OperationAborted stays the error, the cleanup error attached', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-cancelled' });
    t.stubs.on('dst', 'migrateFinish', { fail: ErrorType.QemuGone, message: 'kill failed' });
    const h = await t.start({});
    await t.stubs.started('src', 'migratePerform');
    await h.signal(cancelSignal);
    const f = await failed(h);
    expect(f).toMatchObject({ ...ABORTED, phase: 'perform' });
    expect(f.cleanupErrors).toEqual([{ type: ErrorType.QemuGone, message: 'kill failed', phase: 'finish' }]);
  });
});

describe('workflow logic (time-skipping env, stub activities): speed and downtime signals', () => {
  it('signals that arrive during Begin are applied once Begin took the job, before the stream starts', async () => {
    t.stubs.on('src', 'migrateBegin', { block: 'until-released' });
    const h = await t.start({ bandwidthMiBps: 10 });
    await t.stubs.started('src', 'migrateBegin');
    await h.signal(setSpeedSignal, 50);
    await h.signal(setMaxDowntimeSignal, 500);
    t.stubs.release('src', 'migrateBegin');
    await h.result();
    expect(t.stubs.find('src', 'migrateBegin')[0]!.args[0]).toMatchObject({ bandwidthMiBps: 10 });
    const speed = t.stubs.find('src', 'setJobSpeed');
    const downtime = t.stubs.find('src', 'setJobMaxDowntime');
    expect(speed.map((c) => c.args[2])).toEqual([50]);
    expect(downtime.map((c) => c.args[2])).toEqual([500]);
    const perform = t.stubs.find('src', 'migratePerform')[0]!;
    expect(perform.started).toBeGreaterThan(speed[0]!.ended!);
    expect(perform.started).toBeGreaterThan(downtime[0]!.ended!);
  });

  it('limits Begin already applied are not sent again', async () => {
    await (await t.start({ bandwidthMiBps: 10, maxDowntimeMs: 300 })).result();
    expect(t.stubs.find('src', 'setJobSpeed')).toEqual([]);
    expect(t.stubs.find('src', 'setJobMaxDowntime')).toEqual([]);
  });

  it('during Perform a speed change reaches the source; one that fails there does not fail the migration', async () => {
    t.stubs.on('src', 'migratePerform', { block: 'until-released' });
    t.stubs.on('src', 'setJobMaxDowntime', { fail: ErrorType.QmpError });
    const h = await t.start({});
    await t.stubs.started('src', 'migratePerform');
    await h.signal(setSpeedSignal, 75);
    await h.signal(setMaxDowntimeSignal, 900);
    await t.stubs.started('src', 'setJobMaxDowntime');
    t.stubs.release('src', 'migratePerform');
    await h.result();
    expect(t.stubs.find('src', 'setJobSpeed').map((c) => c.args)).toEqual([['vm1', expect.stringContaining(h.workflowId), 75]]);
  });

  it('offline: no source job, so no speed change is sent', async () => {
    t.stubs.on('dst', 'migratePrepare', { block: 'until-released' });
    const h = await t.start({ flags: ['offline', 'persist-dest'] });
    await t.stubs.started('dst', 'migratePrepare');
    await h.signal(setSpeedSignal, 75);
    t.stubs.release('dst', 'migratePrepare');
    await h.result();
    expect(t.stubs.find('src', 'setJobSpeed')).toEqual([]);
  });
});
