// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The v3 migrate workflow against stub hosts: each step failing with a typed
// error, and the undo each failure must run (which cleanup, on which host, in
// which order), plus the first-error rule when a cleanup fails too.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorType } from '../../src/common/errors.js';
import { jobInfoQuery } from '../../src/common/job-messages.js';
import type { MigrateResult } from '../../src/common/migration-types.js';
import { startLogicEnv, type LogicEnv } from './logic-env.js';
import { failed, isUndo, undos } from './outcome.js';
import { DOMAIN_UUID } from './stub-hosts.js';

let t: LogicEnv;
beforeAll(async () => {
  t = await startLogicEnv(['src', 'dst']);
});
afterAll(async () => await t?.stop());
beforeEach(() => t.stubs.reset());

const BOTH = ['dst:migrateFinish', 'src:migrateConfirm'];

describe('workflow logic (time-skipping env, stub activities): v3 success', () => {
  it('runs Begin with the destination probe, Prepare, Perform with the watch, Finish, Confirm, and reports the result', async () => {
    const h = await t.start({ flags: ['live', 'persist-dest', 'undefine-source'], dname: 'vm1-new' });
    const r: MigrateResult = await h.result();
    expect(r).toMatchObject({ domain: 'vm1-new', uuid: DOMAIN_UUID, protocol: 3, sourceHost: 'src', destinationHost: 'dst', sourceUndefined: true });
    expect(r.measuredDowntimeMs).toBe(40);
    expect(t.stubs.sequence((c) => c.act !== 'migrateWatchIncoming' && c.act !== 'hostInfo')).toEqual([
      'src:migrateBegin',
      'dst:migratePrepare',
      'src:migratePerform',
      'dst:migrateFinish',
      'src:migrateConfirm',
    ]);
    expect(t.stubs.find('dst', 'hostInfo')).toHaveLength(1);
    expect(t.stubs.find('dst', 'migrateWatchIncoming')[0]!.args).toEqual(['vm1-new', expect.stringContaining(h.workflowId)]);
    // Cookies travel Begin -> Prepare, Prepare -> Perform, Perform -> Finish, Finish -> Confirm.
    expect(t.stubs.find('dst', 'migratePrepare')[0]!.args[0]).toMatchObject({ cookie: 'begin-cookie', protocol: 3, dname: 'vm1-new' });
    expect(t.stubs.find('src', 'migratePerform')[0]!.args[0]).toMatchObject({ cookie: 'prepare-cookie', uri: 'tcp:dst:49152' });
    expect(t.stubs.find('dst', 'migrateFinish')[0]!.args[0]).toMatchObject({ cookie: 'perform-cookie', success: true, name: 'vm1-new', wasRunning: true });
    expect(t.stubs.find('src', 'migrateConfirm')[0]!.args[0]).toMatchObject({ cookie: 'finish-cookie', success: true });
    expect(undos(t.stubs)).toEqual([]);
    const info = await h.query(jobInfoQuery);
    expect(info).toMatchObject({ status: 'completed', phase: 'completed', domainUuid: DOMAIN_UUID });
  });

  it('offline: no Perform, Finish gets no cookie from it', async () => {
    const r: MigrateResult = await (await t.start({ flags: ['offline', 'persist-dest'] })).result();
    expect(r.protocol).toBe(3);
    expect(t.stubs.find('src', 'migratePerform')).toEqual([]);
    expect(t.stubs.find('dst', 'migrateWatchIncoming')).toEqual([]);
    const fin = t.stubs.find('dst', 'migrateFinish')[0]!.args[0] as { success: boolean; cookie?: string };
    expect(fin.success).toBe(true);
    expect(fin.cookie).toBeUndefined();
  });
});

describe('workflow logic (time-skipping env, stub activities): v3 failure points and their undo', () => {
  it('tunnel support missing on the destination: ConfigUnsupported before anything is touched, nothing to undo', async () => {
    t.stubs.on('dst', 'migrateTunnelSupport', { answer: { host: 'dst', configured: false } });
    const f = await failed(await t.start({ flags: ['live', 'tls'] }));
    expect(f).toMatchObject({ type: ErrorType.ConfigUnsupported, phase: 'begin', cleanupErrors: [] });
    expect(f.message).toMatch(/none configured on 'dst'/);
    expect(t.stubs.sequence().sort()).toEqual(['dst:migrateTunnelSupport', 'src:migrateTunnelSupport']);
  });

  it('tunnel support probe failing: the probe error, nothing to undo', async () => {
    t.stubs.on('src', 'migrateTunnelSupport', { fail: ErrorType.InternalError });
    const f = await failed(await t.start({ flags: ['live', 'tunnelled'] }));
    expect(f).toMatchObject({ type: ErrorType.InternalError, phase: 'begin' });
    expect(t.stubs.find('src', 'migrateBegin')).toEqual([]);
  });

  it('Begin fails: the source is asked to undo (Confirm, no UUID yet); the destination is not touched', async () => {
    t.stubs.on('src', 'migrateBegin', { fail: ErrorType.MigrateUnsafe, message: 'disk vda has cache=writeback' });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.MigrateUnsafe, message: 'begin: disk vda has cache=writeback', phase: 'begin', cleanupErrors: [] });
    expect(undos(t.stubs)).toEqual(['src:migrateConfirm']);
    expect(t.stubs.find('src', 'migrateConfirm')[0]!.args[0]).toMatchObject({ success: false, uuid: '' });
  });

  it('the destination probe fails: Begin is undone on the source', async () => {
    t.stubs.on('dst', 'hostInfo', { fail: ErrorType.OperationFailed, message: 'no hostinfo' });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.OperationFailed, phase: 'begin' });
    expect(undos(t.stubs)).toEqual(['src:migrateConfirm']);
    expect(t.stubs.find('src', 'migrateConfirm')[0]!.args[0]).toMatchObject({ success: false, uuid: DOMAIN_UUID });
  });

  it('same host UUID on both sides: OperationInvalid, Begin undone', async () => {
    t.stubs.profile('dst', { hostUuid: 'host-uuid-of-src' });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.OperationInvalid, phase: 'begin' });
    expect(f.message).toMatch(/same host/);
    expect(undos(t.stubs)).toEqual(['src:migrateConfirm']);
  });

  it('no protocol in common: ConfigUnsupported, Begin undone', async () => {
    t.stubs.profile('dst', { protocolVersions: [4] });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.ConfigUnsupported, phase: 'begin' });
    expect(f.message).toMatch(/no migration protocol in common/);
    expect(undos(t.stubs)).toEqual(['src:migrateConfirm']);
  });

  it('Prepare fails: the destination is killed and the source resumed, together', async () => {
    // The kill waits for the test: the source's resume must not wait for it.
    t.stubs.on('dst', 'migratePrepare', { fail: ErrorType.ConfigUnsupported, message: 'no such emulator' });
    t.stubs.on('dst', 'migrateFinish', { block: 'until-released' }, ([a]) => (a as { success: boolean }).success === false);
    const h = await t.start({});
    const resume = await t.stubs.started('src', 'migrateConfirm');
    await expect.poll(() => resume.outcome).toBe('ok');
    expect(t.stubs.find('dst', 'migrateFinish')[0]!.outcome).toBeUndefined();
    t.stubs.release('dst', 'migrateFinish');
    const f = await failed(h);
    expect(f).toMatchObject({ type: ErrorType.ConfigUnsupported, message: 'prepare: no such emulator', phase: 'prepare', cleanupErrors: [] });
    expect(undos(t.stubs)).toEqual(BOTH);
    expect(t.stubs.find('dst', 'migrateFinish')[0]!.args[0]).toMatchObject({ success: false, name: 'vm1', wasRunning: false, protocol: 3 });
    expect(t.stubs.find('src', 'migratePerform')).toEqual([]);
  });

  it('a retryable error (QmpTimeout) in Prepare is retried with backoff, then undone', async () => {
    t.stubs.on('dst', 'migratePrepare', { fail: ErrorType.QmpTimeout });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.QmpTimeout, phase: 'prepare' });
    expect(t.stubs.find('dst', 'migratePrepare')).toHaveLength(5);
    expect(undos(t.stubs)).toEqual(BOTH);
  });

  it('Perform fails: both sides undone together, the destination killed under the name Prepare gave', async () => {
    t.stubs.on('src', 'migratePerform', { fail: ErrorType.QemuGone, message: 'source QEMU exited' });
    const f = await failed(await t.start({ dname: 'renamed' }));
    expect(f).toMatchObject({ type: ErrorType.QemuGone, message: 'perform: source QEMU exited', phase: 'perform' });
    expect(undos(t.stubs)).toEqual(BOTH);
    expect(t.stubs.find('dst', 'migrateFinish')[0]!.args[0]).toMatchObject({ name: 'renamed', success: false });
  });

  it('the destination watch fails while Perform runs: after the grace Perform is stopped, the error blames the lost destination', async () => {
    t.stubs.on('dst', 'migrateWatchIncoming', { fail: ErrorType.QemuGone, message: 'incoming QEMU died' });
    t.stubs.on('src', 'migratePerform', { block: 'until-cancelled' });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.OperationFailed, phase: 'perform' });
    expect(f.message).toBe("perform: destination host 'dst' was lost during the migration: incoming QEMU died");
    expect(t.stubs.find('src', 'migratePerform')[0]!.outcome).toBe('cancelled');
    expect(undos(t.stubs)).toEqual(BOTH);
  });

  it('the destination watch fails but Perform reports its own error within the grace: that error wins', async () => {
    t.stubs.on('dst', 'migrateWatchIncoming', { fail: ErrorType.QemuGone, message: 'incoming QEMU died' });
    // Later than the watch's failure: the Java test server refuses to cancel an activity whose end is not in history yet.
    t.stubs.on('src', 'migratePerform', { fail: ErrorType.QmpError, message: 'migration failed: Unable to write to socket', afterMs: 1000 });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.QmpError, message: 'perform: migration failed: Unable to write to socket' });
    expect(undos(t.stubs)).toEqual(BOTH);
  });

  it('Finish fails: the destination is killed first, and only then the source resumed', async () => {
    t.stubs.on('dst', 'migrateFinish', { fail: ErrorType.OperationFailed, message: 'cont failed' }, ([a]) => (a as { success: boolean }).success);
    t.stubs.on('dst', 'migrateFinish', { block: 'until-released' }, ([a]) => !(a as { success: boolean }).success);
    const h = await t.start({});
    const kill = await t.stubs.started('dst', 'migrateFinish', isUndo);
    await new Promise((r) => setTimeout(r, 500));
    expect(t.stubs.find('src', 'migrateConfirm')).toEqual([]);
    t.stubs.release('dst', 'migrateFinish');
    const f = await failed(h);
    expect(f).toMatchObject({ type: ErrorType.OperationFailed, message: 'finish: cont failed', phase: 'finish', cleanupErrors: [] });
    const resume = t.stubs.find('src', 'migrateConfirm')[0]!;
    expect(resume.args[0]).toMatchObject({ success: false });
    expect(resume.started).toBeGreaterThan(kill.ended!);
  });

  it('Confirm fails after a successful Finish: nothing is undone (the guest runs on the destination)', async () => {
    t.stubs.on('src', 'migrateConfirm', { fail: ErrorType.QemuGone, message: 'quit failed' });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.QemuGone, message: 'confirm: quit failed', phase: 'confirm', cleanupErrors: [] });
    expect(undos(t.stubs)).toEqual([]);
    expect(t.stubs.find('src', 'migrateConfirm')).toHaveLength(1);
  });

  it('a host no worker polls: its step is never taken (the schedule-to-start wait is not skipped by the test server: 15 s); an untaken Begin gets no undo, an untaken probe undoes Begin', async () => {
    const [fromGhost, toGhost] = await Promise.all([failed(await t.start({ sourceHost: 'ghost' })), failed(await t.start({ destinationHost: 'ghost' }))]);
    expect(fromGhost).toMatchObject({ type: ErrorType.OperationFailed, phase: 'begin' });
    expect(fromGhost.message).toMatch(/host 'ghost' did not take the migrateBegin step/);
    expect(toGhost).toMatchObject({ type: ErrorType.OperationFailed, phase: 'begin' });
    expect(toGhost.message).toMatch(/host 'ghost' did not take the hostInfo step/);
    // Of the two runs, only the one whose source took Begin is undone there; nothing reaches the ghost.
    expect(t.stubs.sequence()).toEqual(expect.arrayContaining(['dst:hostInfo', 'src:migrateBegin']));
    expect(undos(t.stubs)).toEqual(['src:migrateConfirm']);
    expect(t.stubs.calls.filter((c) => c.host === 'ghost')).toEqual([]);
  });
});

describe('workflow logic (time-skipping env, stub activities): v3 first error kept when a cleanup fails too', () => {
  it('Prepare fails, then both undos fail: the Prepare error is the workflow error, both cleanup errors attached', async () => {
    t.stubs.on('dst', 'migratePrepare', { fail: ErrorType.DomainExists, message: "'vm1' exists on dst" });
    t.stubs.on('dst', 'migrateFinish', { fail: ErrorType.QemuGone, message: 'kill failed' });
    t.stubs.on('src', 'migrateConfirm', { fail: ErrorType.DomainNotFound, message: 'source vanished' });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.DomainExists, message: "prepare: 'vm1' exists on dst", phase: 'prepare' });
    expect(f.cleanupErrors).toHaveLength(2);
    expect(f.cleanupErrors).toEqual(
      expect.arrayContaining([
        { type: ErrorType.QemuGone, message: 'kill failed', phase: 'finish' },
        { type: ErrorType.DomainNotFound, message: 'source vanished', phase: 'confirm' },
      ]),
    );
    expect(undos(t.stubs)).toEqual(BOTH);
  });

  it('Finish fails and the destination cannot be confirmed dead: the source stays paused, both reasons attached', async () => {
    t.stubs.on('dst', 'migrateFinish', { fail: ErrorType.OperationFailed, message: 'cont failed' }, ([a]) => (a as { success: boolean }).success);
    t.stubs.on('dst', 'migrateFinish', { fail: ErrorType.QemuGone, message: 'kill failed' }, ([a]) => !(a as { success: boolean }).success);
    const h = await t.start({});
    const f = await failed(h);
    expect(f).toMatchObject({ type: ErrorType.OperationFailed, message: 'finish: cont failed', phase: 'finish' });
    expect(f.cleanupErrors).toEqual([
      { type: ErrorType.QemuGone, message: 'kill failed', phase: 'finish' },
      {
        type: ErrorType.OperationFailed,
        message: expect.stringMatching(/'vm1' stays paused on src: the destination dst could not be confirmed dead/),
        phase: 'confirm',
      },
    ]);
    expect(t.stubs.find('src', 'migrateConfirm')).toEqual([]);
    expect((await h.query(jobInfoQuery)).status).toBe('failed');
  });

  it('Perform fails, the source resume fails: the Perform error, the resume error attached', async () => {
    t.stubs.on('src', 'migratePerform', { fail: ErrorType.QmpError, message: 'migrate refused' });
    t.stubs.on('src', 'migrateConfirm', { fail: ErrorType.QmpError, message: 'cont refused' });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.QmpError, message: 'perform: migrate refused', phase: 'perform' });
    expect(f.cleanupErrors).toEqual([{ type: ErrorType.QmpError, message: 'cont refused', phase: 'confirm' }]);
    expect(undos(t.stubs)).toEqual(BOTH);
  });
});
