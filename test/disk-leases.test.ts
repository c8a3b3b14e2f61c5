// Disk leases end to end, on real QEMU and real Temporal: two host workers
// share one lockspace directory (as hosts share one on a SAN or NFS), one
// qcow2 both can open. A second domain naming a leased disk is refused on
// either host and starts nothing, also while the holder is suspended (a
// <shareable/> one is shared, until a guest would write it alone); a v3 migration moves the lease at the
// switchover (host-a's fault point holds Perform there, so the test sees the
// lease free with both QEMUs paused); a switchover that fails gives the lease
// back to the source, which runs on, or stays paused when someone else took
// it; a kill -9 of the worker releases nothing (running, or at the switchover);
// save releases and restore takes; v2 is refused.
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heldMarker } from '../src/support/fault-points.js';
import { isProcessAlive } from '../src/support/proc.js';
import { waitFor } from '../src/support/wait.js';
import { readStatus } from '../src/host/status-file.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, failureOf, startMigration } from './helpers/migration.js';
import { runJob } from './helpers/save.js';
import { worldOf } from './helpers/world.js';

const cluster = new TestCluster();
const A = 'lk-a';
const B = 'lk-b';
const lockspace = join(cluster.root, 'lockspace');
const faultDir = join(cluster.root, 'faults');
const disk = join(cluster.root, 'shared.qcow2');
const HOLD = 'migrate.perform-done';

const hostEnv = (min: number, extra: Record<string, string> = {}): Record<string, string> => ({
  VMFERRY_HOST_MIGRATION_PORT_MIN: String(min),
  VMFERRY_HOST_MIGRATION_PORT_MAX: String(min + 7),
  VMFERRY_LOCKSPACE_DIR: lockspace,
  // The disk is one file both hosts open: storage they share, so a migration does not copy it.
  VMFERRY_SHARED_STORAGE_PATHS: cluster.root,
  ...extra,
});

const diskXml = `
    <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>`;

function leaseFile(): string {
  return join(lockspace, createHash('sha256').update(realpathSync(disk)).digest('hex'));
}

/** flock -n on the lease file, as any host would probe it: true when nobody holds the lease. */
function leaseFree(): boolean {
  return spawnSync('flock', ['-n', '-x', leaseFile(), 'true']).status === 0;
}

function leaseRecord(): { host: string; domain: string; uuid: string } {
  return JSON.parse(readFileSync(leaseFile(), 'utf8')) as { host: string; domain: string; uuid: string };
}

function qemuHoldsLease(pid: number): boolean {
  return readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === leaseFile();
    } catch {
      return false;
    }
  });
}

async function info(host: string, name: string) {
  return domainOf(await cluster.op(host, { op: 'info', name }));
}

/** Waits for host-a's Perform to stop at the switchover (stream complete, source paused). */
async function atSwitchover(): Promise<void> {
  await waitFor('Perform held at the switchover', () => existsSync(heldMarker(HOLD, faultDir)), { timeoutMs: 60_000, intervalMs: 50 });
}

function releaseSwitchover(): void {
  rmSync(heldMarker(HOLD, faultDir), { force: true });
}

const uuid = randomUUID();

beforeAll(async () => {
  await cluster.connect();
  expect(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']).status).toBe(0);
  await Promise.all([
    cluster.startHost(A, hostEnv(49280, { VMFERRY_FAULTS: `${HOLD}=hold`, VMFERRY_FAULT_DIR: faultDir })),
    cluster.startHost(B, hostEnv(49288)),
    cluster.startControl(),
  ]);
  // Three domains name the same disk: lk1 on host-a (runs), lk2 on host-a and lk3 on host-b (refused while lk1 runs).
  await cluster.op(A, { op: 'define', xml: guestXml({ name: 'lk1', uuid, extraDevices: diskXml }) });
  await cluster.op(A, { op: 'define', xml: guestXml({ name: 'lk2', extraDevices: diskXml }) });
  await cluster.op(B, { op: 'define', xml: guestXml({ name: 'lk3', extraDevices: diskXml }) });
});

afterAll(async () => {
  releaseSwitchover();
  await cluster.removeAllDomains([A, B]);
  await cluster.stop();
});

async function expectRefused(host: string, name: string, holderHost: string): Promise<void> {
  const f = await failureOf(cluster.op(host, { op: 'start', name }));
  expect(f.type).toBe('DiskLeaseHeld');
  expect(f.message).toContain(realpathSync(disk));
  expect(f.message).toContain(`domain 'lk1' (${uuid}) on host ${holderHost}`);
}

describe('disk leases', () => {
  it('a second domain naming a leased disk is refused on the same host and on another, and starts nothing', async () => {
    const lk1 = domainOf(await cluster.op(A, { op: 'start', name: 'lk1' }));
    expect(leaseFree()).toBe(false);
    expect(leaseRecord()).toMatchObject({ host: A, domain: 'lk1', uuid });
    expect(qemuHoldsLease(lk1.pid!)).toBe(true);
    // QEMU's own image locking is asked for too, whatever its default.
    expect(readFileSync(`/proc/${lk1.pid}/cmdline`, 'utf8')).toContain('file.locking=on');

    const before = await worldOf(cluster, [A, B]);
    await expectRefused(A, 'lk2', A);
    await expectRefused(B, 'lk3', A);
    expect(await worldOf(cluster, [A, B])).toEqual(before);
  });

  it('a suspended (paused) domain keeps its lease: a second domain naming the disk is still refused', async () => {
    const pid = (await info(A, 'lk1')).pid!;
    expect(domainOf(await cluster.op(A, { op: 'suspend', name: 'lk1' }))).toMatchObject({ state: 'paused', pid });
    expect(qemuHoldsLease(pid)).toBe(true);
    expect(leaseFree()).toBe(false);
    await expectRefused(B, 'lk3', A);
    expect(domainOf(await cluster.op(A, { op: 'resume', name: 'lk1' }))).toMatchObject({ state: 'running', pid });
    expect(qemuHoldsLease(pid)).toBe(true);
  });

  it('a <shareable/> disk: guests on both hosts share it (shared leases, share-rw), a guest that would write it alone is refused', async () => {
    const raw = join(cluster.root, 'shared.raw');
    writeFileSync(raw, Buffer.alloc(1024 * 1024));
    const shared = (extra: string) =>
      `\n    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/><source file='${raw}'/><target dev='vdb' bus='virtio'/>${extra}</disk>`;
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'sh1', extraDevices: shared('<shareable/>') }) });
    await cluster.op(B, { op: 'define', xml: guestXml({ name: 'sh2', extraDevices: shared('<shareable/>') }) });
    await cluster.op(B, { op: 'define', xml: guestXml({ name: 'sh3', extraDevices: shared('') }) });
    const sh1 = domainOf(await cluster.op(A, { op: 'start', name: 'sh1' }));
    const sh2 = domainOf(await cluster.op(B, { op: 'start', name: 'sh2' }));
    expect([sh1.state, sh2.state]).toEqual(['running', 'running']);
    const f = await failureOf(cluster.op(B, { op: 'start', name: 'sh3' }));
    expect(f.type).toBe('DiskLeaseHeld');
    expect(f.message).toContain(realpathSync(raw));
    await cluster.op(A, { op: 'destroy', name: 'sh1' });
    await cluster.op(B, { op: 'destroy', name: 'sh2' });
    // Once the sharers are gone, the guest that writes it alone may start.
    expect(domainOf(await cluster.op(B, { op: 'start', name: 'sh3' })).state).toBe('running');
    await cluster.op(B, { op: 'destroy', name: 'sh3' });
  });

  it('v2 is refused while the disk is leased, before anything starts', async () => {
    const before = await worldOf(cluster, [A, B]);
    const handle = await startMigration(cluster.client, {
      domain: 'lk1',
      domainUuid: uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live'],
      maxProtocol: 2,
    });
    const f = await failureOf(handle.result());
    expect(f.type).toBe('ConfigUnsupported');
    expect(f.message).toMatch(/disk leases.*v3/);
    expect(await worldOf(cluster, [A, B])).toEqual(before);
    expect(leaseRecord()).toMatchObject({ host: A, domain: 'lk1' });
  });

  it('a switchover that fails after the source released: the source takes the lease back and runs on', async () => {
    const pid = (await info(A, 'lk1')).pid!;
    const handle = await startMigration(cluster.client, { domain: 'lk1', domainUuid: uuid, sourceHost: A, destinationHost: B, flags: ['live'] });
    await atSwitchover();
    // Released with the stream complete, both QEMUs paused: nobody holds the lease.
    expect(leaseFree()).toBe(true);
    expect(qemuHoldsLease(pid)).toBe(false);
    // The destination dies before Finish: its QEMU is gone, Finish fails, the source must resume.
    const incoming = readStatus(join(cluster.hosts.get(B)!.baseDir, 'run'), 'lk1').pid;
    process.kill(incoming, 'SIGKILL');
    releaseSwitchover();
    const f = await failureOf(handle.result());
    expect(f.message).toMatch(/^finish:/);
    expect(await info(A, 'lk1')).toMatchObject({ state: 'running', pid });
    expect(qemuHoldsLease(pid)).toBe(true);
    expect(leaseFree()).toBe(false);
    expect(leaseRecord()).toMatchObject({ host: A, domain: 'lk1' });
  });

  it('a lease another holder took at the switchover: Finish is refused and the source stays paused until it can take it back', async () => {
    const pid = (await info(A, 'lk1')).pid!;
    const handle = await startMigration(cluster.client, { domain: 'lk1', domainUuid: uuid, sourceHost: A, destinationHost: B, flags: ['live'] });
    await atSwitchover();
    // Someone else (a tool outside vmferry) takes the free lease on its own open file description.
    const fd = openSync(leaseFile(), 'r');
    try {
      expect(spawnSync('flock', ['-n', '-x', '3'], { stdio: ['ignore', 'ignore', 'ignore', fd] }).status).toBe(0);
      releaseSwitchover();
      const f = await failureOf(handle.result());
      expect(f.type).toBe('DiskLeaseHeld');
      expect(f.message).toMatch(/^finish:/);
      const onA = await info(A, 'lk1');
      expect(onA).toMatchObject({ state: 'paused', reason: 'lease-lost', pid });
      expect((await info(B, 'lk1').catch(() => undefined))?.state ?? 'shutoff').toBe('shutoff');
      // Still held elsewhere: resume is refused and the guest stays paused.
      expect((await failureOf(cluster.op(A, { op: 'resume', name: 'lk1' }))).type).toBe('DiskLeaseHeld');
    } finally {
      closeSync(fd);
    }
    expect(leaseFree()).toBe(true);
    expect(await info(A, 'lk1')).toMatchObject({ state: 'paused' });
    expect(domainOf(await cluster.op(A, { op: 'resume', name: 'lk1' }))).toMatchObject({ state: 'running', pid });
    expect(qemuHoldsLease(pid)).toBe(true);
  });

  it('v3 moves the lease at the switchover: the destination holds it before its CPUs start', async () => {
    const pid = (await info(A, 'lk1')).pid!;
    const handle = await startMigration(cluster.client, { domain: 'lk1', domainUuid: uuid, sourceHost: A, destinationHost: B, flags: ['live'] });
    await atSwitchover();
    expect(leaseFree()).toBe(true);
    const incoming = await info(B, 'lk1');
    expect(incoming).toMatchObject({ state: 'paused' });
    expect(qemuHoldsLease(incoming.pid!)).toBe(false);
    releaseSwitchover();
    const r = await handle.result();
    expect(r).toMatchObject({ protocol: 3, destination: { state: 'running', host: B, pid: incoming.pid } });
    expect(isProcessAlive(pid)).toBe(false);
    expect(qemuHoldsLease(incoming.pid!)).toBe(true);
    expect(leaseFree()).toBe(false);
    expect(leaseRecord()).toMatchObject({ host: B, domain: 'lk1', uuid });
    const logsA = cluster.hosts.get(A)!.worker!.logs;
    expect(logsA.some((l) => l.msg === 'disk lease released' && l.domain === 'lk1')).toBe(true);
    // The Perform cookie's lock state reached Finish, which took what it listed.
    const logsB = cluster.hosts.get(B)!.worker!.logs;
    expect(logsB.some((l) => l.msg === 'took the disk leases the source released' && l.leases === 1)).toBe(true);
    // host-a's domains still cannot have the disk: host-b holds it now.
    await expectRefused(A, 'lk2', B);
  });

  it('a kill -9 of the worker releases nothing: a second start is refused before and after it reconnects', async () => {
    const pid = (await info(B, 'lk1')).pid!;
    await cluster.hosts.get(B)!.worker!.kill9();
    expect(isProcessAlive(pid)).toBe(true);
    expect(leaseFree()).toBe(false);
    await expectRefused(A, 'lk2', B);
    await cluster.startHost(B);
    expect(await info(B, 'lk1')).toMatchObject({ state: 'running', pid });
    await expectRefused(A, 'lk2', B);
    await expectRefused(B, 'lk3', B);
    expect(qemuHoldsLease(pid)).toBe(true);

    // Its QEMU gone, the lease is free for the next domain.
    await cluster.op(B, { op: 'destroy', name: 'lk1' });
    expect(leaseFree()).toBe(true);
    const lk2 = domainOf(await cluster.op(A, { op: 'start', name: 'lk2' }));
    expect(qemuHoldsLease(lk2.pid!)).toBe(true);
    expect(leaseRecord()).toMatchObject({ host: A, domain: 'lk2' });
    await cluster.op(A, { op: 'destroy', name: 'lk2' });
  });

  it('save releases the lease as QEMU exits; restore is refused while another domain holds it, and takes it once free', async () => {
    const lk1 = domainOf(await cluster.op(A, { op: 'start', name: 'lk1' }));
    expect(qemuHoldsLease(lk1.pid!)).toBe(true);
    const image = join(cluster.root, 'lk1.save');
    await runJob(cluster.client, 'save', uuid, { host: A, name: 'lk1', path: image });
    expect(isProcessAlive(lk1.pid!)).toBe(false);
    expect(leaseFree()).toBe(true);

    const lk2 = domainOf(await cluster.op(A, { op: 'start', name: 'lk2' }));
    const before = await worldOf(cluster, [A, B]);
    const f = await failureOf(runJob(cluster.client, 'restore', uuid, { host: B, path: image }));
    expect(f.type).toBe('DiskLeaseHeld');
    expect(f.message).toContain(`held by domain 'lk2'`);
    expect(f.message).toContain(`on host ${A}`);
    expect(await worldOf(cluster, [A, B])).toEqual(before);

    await cluster.op(A, { op: 'destroy', name: 'lk2' });
    expect(isProcessAlive(lk2.pid!)).toBe(false);
    await runJob(cluster.client, 'restore', uuid, { host: B, path: image });
    const restored = await info(B, 'lk1');
    expect(restored.state).toBe('running');
    expect(qemuHoldsLease(restored.pid!)).toBe(true);
    expect(leaseRecord()).toMatchObject({ host: B, domain: 'lk1', uuid });
    await cluster.op(B, { op: 'destroy', name: 'lk1' });
  });

  it('a kill -9 of the source worker at the switchover: the retried Perform ends the job, the destination takes the lease, never two holders', async () => {
    const src = domainOf(await cluster.op(A, { op: 'start', name: 'lk1' })).pid!;
    const handle = await startMigration(cluster.client, { domain: 'lk1', domainUuid: uuid, sourceHost: A, destinationHost: B, flags: ['live'] });
    await atSwitchover();
    const dst = (await info(B, 'lk1')).pid!;
    let most = 0;
    const sample = (): void => {
      most = Math.max(most, [src, dst].filter((pid) => isProcessAlive(pid) && qemuHoldsLease(pid)).length);
    };
    const sampler = setInterval(sample, 20);
    try {
      await cluster.hosts.get(A)!.worker!.kill9();
      expect(leaseFree()).toBe(true);
      releaseSwitchover();
      // The restarted worker's Perform finds the stream complete and stops at the same point again.
      await cluster.startHost(A);
      await atSwitchover();
      expect(isProcessAlive(src)).toBe(true);
      releaseSwitchover();
      const r = await handle.result();
      expect(r.destination).toMatchObject({ state: 'running', host: B, pid: dst });
      sample();
    } finally {
      clearInterval(sampler);
    }
    expect(most).toBe(1);
    expect(isProcessAlive(src)).toBe(false);
    expect(qemuHoldsLease(dst)).toBe(true);
    expect(leaseRecord()).toMatchObject({ host: B, domain: 'lk1' });
    await cluster.op(B, { op: 'destroy', name: 'lk1' });
  });
});
