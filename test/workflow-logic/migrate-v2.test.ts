// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The v2 migrate workflow (a destination that speaks only v2, or maxProtocol 2)
// against stub hosts: each step failing with a typed error, and its undo. v2
// undoes the source with an abort instead of a failed Confirm, and once Perform2
// has stopped the source nothing is undone: the destination holds the only copy.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorType } from '../../src/common/errors.js';
import type { MigrateResult } from '../../src/common/migration-types.js';
import { startLogicEnv, type LogicEnv } from './logic-env.js';
import { failed, undos } from './outcome.js';

let t: LogicEnv;
beforeAll(async () => {
  t = await startLogicEnv(['src', 'dst']);
});
afterAll(async () => await t?.stop());
beforeEach(() => {
  t.stubs.reset();
  t.stubs.profile('dst', { protocolVersions: [2] });
});

const BOTH = ['dst:migrateFinish2', 'src:migrateAbortSource'];

describe('workflow logic (time-skipping env, stub activities): v2 success', () => {
  it('runs Begin with the probe, Prepare2, Perform2 with the watch, Finish2, then forgets the job on the source; no cookies, no Confirm', async () => {
    const r: MigrateResult = await (await t.start({ flags: ['live', 'persist-dest', 'undefine-source'] })).result();
    expect(r).toMatchObject({ protocol: 2, domain: 'vm1', sourceUndefined: true });
    expect(t.stubs.sequence((c) => c.act !== 'migrateWatchIncoming' && c.act !== 'hostInfo')).toEqual([
      'src:migrateBegin',
      'dst:migratePrepare2',
      'src:migratePerform2',
      'dst:migrateFinish2',
      'src:migrateForgetSource',
    ]);
    expect(t.stubs.find('dst', 'migratePrepare2')[0]!.args[0]).not.toHaveProperty('cookie');
    expect(t.stubs.find('dst', 'migrateFinish2')[0]!.args[0]).toMatchObject({ success: true, protocol: 2 });
    expect(undos(t.stubs)).toEqual([]);
  });

  it('maxProtocol 2 picks v2 with a destination that speaks both', async () => {
    t.stubs.profile('dst', { protocolVersions: [2, 3] });
    const r: MigrateResult = await (await t.start({ maxProtocol: 2 })).result();
    expect(r.protocol).toBe(2);
    expect(r.sourceUndefined).toBe(false);
    expect(t.stubs.find('src', 'migrateBegin')[0]!.args[0]).toMatchObject({ protocol: 2 });
  });

  it('a failing migrateForgetSource (bookkeeping only) does not fail the migration', async () => {
    t.stubs.on('src', 'migrateForgetSource', { fail: ErrorType.InternalError });
    const r: MigrateResult = await (await t.start({})).result();
    expect(r.protocol).toBe(2);
  });
});

describe('workflow logic (time-skipping env, stub activities): v2 failure points and their undo', () => {
  it('Begin fails (the protocol is not picked yet): the source is undone as v3 does, with a failed Confirm', async () => {
    t.stubs.on('src', 'migrateBegin', { fail: ErrorType.DomainNotFound });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.DomainNotFound, phase: 'begin' });
    expect(undos(t.stubs)).toEqual(['src:migrateConfirm']);
  });

  it('offline needs v3: ConfigUnsupported, the source job aborted', async () => {
    const f = await failed(await t.start({ flags: ['offline', 'persist-dest'] }));
    expect(f).toMatchObject({ type: ErrorType.ConfigUnsupported, phase: 'begin' });
    expect(f.message).toMatch(/offline migration needs protocol v3/);
    expect(undos(t.stubs)).toEqual(['src:migrateAbortSource']);
    expect(t.stubs.find('dst', 'migratePrepare2')).toEqual([]);
  });

  it('persist-dest with a persistent definition that differs from the live one: refused (no cookies to carry it), the source job aborted', async () => {
    t.stubs.on('src', 'migrateBegin', {
      answer: {
        xml: '<domain/>',
        uuid: '6a1f1c55-7c4f-4e77-9d6e-2f9bd0b2a001',
        wasRunning: true,
        persistent: true,
        hostUuid: 'host-uuid-of-src',
        hostname: 'src',
        protocolVersions: [2, 3],
        persistentDiffers: true,
        bandwidthMiBps: 0,
      },
    });
    const f = await failed(await t.start({ flags: ['live', 'persist-dest'] }));
    expect(f).toMatchObject({ type: ErrorType.ConfigUnsupported, phase: 'begin' });
    expect(f.message).toMatch(/speaks only protocol v2 \(no cookies\)/);
    expect(undos(t.stubs)).toEqual(['src:migrateAbortSource']);
  });

  it('a domain whose disks are leased, to a v2-only destination: refused (only a v3 cookie moves leases) before the destination is touched', async () => {
    t.stubs.on('src', 'migrateBegin', {
      answer: {
        xml: '<domain/>',
        uuid: '6a1f1c55-7c4f-4e77-9d6e-2f9bd0b2a001',
        wasRunning: true,
        persistent: true,
        hostUuid: 'host-uuid-of-src',
        hostname: 'src',
        protocolVersions: [2, 3],
        persistentDiffers: false,
        lockStateNeeded: true,
        bandwidthMiBps: 0,
      },
    });
    const f = await failed(await t.start({ flags: ['live'] }));
    expect(f).toMatchObject({ type: ErrorType.ConfigUnsupported, phase: 'begin' });
    expect(f.message).toMatch(/holds disk leases, which only protocol v3 can move/);
    // Begin took the source's job: a failed Confirm gives it back; nothing ran on the destination.
    expect(undos(t.stubs)).toEqual(['src:migrateConfirm']);
    expect(t.stubs.find('dst', 'migratePrepare2')).toEqual([]);
  });

  it('Prepare2 fails: the destination killed with Finish2, the source job aborted, together', async () => {
    t.stubs.on('dst', 'migratePrepare2', { fail: ErrorType.XmlError });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.XmlError, phase: 'prepare' });
    expect(undos(t.stubs)).toEqual(BOTH);
    expect(t.stubs.find('dst', 'migrateFinish2')[0]!.args[0]).toMatchObject({ success: false, protocol: 2, wasRunning: false });
    expect(t.stubs.find('src', 'migrateAbortSource')[0]!.args).toEqual(['vm1', expect.any(String)]);
  });

  it('Perform2 fails: both sides undone', async () => {
    t.stubs.on('src', 'migratePerform2', { fail: ErrorType.QmpError });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.QmpError, phase: 'perform' });
    expect(undos(t.stubs)).toEqual(BOTH);
  });

  it('Finish2 fails: nothing is undone, the destination holds the only copy', async () => {
    t.stubs.on('dst', 'migrateFinish2', { fail: ErrorType.OperationFailed, message: 'cont failed' });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.OperationFailed, message: 'finish: cont failed', phase: 'finish', cleanupErrors: [] });
    expect(undos(t.stubs)).toEqual([]);
    expect(t.stubs.find('dst', 'migrateFinish2')).toHaveLength(1);
    expect(t.stubs.find('src', 'migrateForgetSource')).toEqual([]);
  });

  it('first error kept: Prepare2 fails, the source abort fails too', async () => {
    t.stubs.on('dst', 'migratePrepare2', { fail: ErrorType.DomainExists, message: 'exists' });
    t.stubs.on('src', 'migrateAbortSource', { fail: ErrorType.QemuGone, message: 'source QEMU gone' });
    const f = await failed(await t.start({}));
    expect(f).toMatchObject({ type: ErrorType.DomainExists, message: 'prepare: exists', phase: 'prepare' });
    expect(f.cleanupErrors).toEqual([{ type: ErrorType.QemuGone, message: 'source QEMU gone', phase: 'confirm' }]);
  });
});
