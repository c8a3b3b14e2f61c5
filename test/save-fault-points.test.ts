// The save and restore fault points: each is reached, in order, at the step its
// name says (held there, the test looks at what exists at that moment), and a
// `fail` at mid-stream leaves the VM and the files as if the job never ran. A sparse
// (mapped-ram) save held mid-stream is cancelled there, and its worker killed there (the
// fault-matrix cells of test/save-crash.test.ts for the parallel format).
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import { cancelSignal } from '../src/common/job-messages.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { heldMarker } from '../src/support/fault-points.js';
import { isProcessAlive } from '../src/support/proc.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { waitGuestIdle, writeIdleKernel } from './helpers/idle-kernel.js';
import { failureOf, magicOf, runJob, startJob, type JobHandle } from './helpers/save.js';

const cluster = new TestCluster();
/** Every point held: the test walks through them one by one. */
const HOLD_HOST = 'sv-fp-hold';
/** Mid-stream points fail. */
const FAIL_HOST = 'sv-fp-fail';
/** A sparse save held mid-stream (QEMU at pre-switchover: RAM written, device state not): cancelled there, and its worker killed there. */
const SPARSE_HOST = 'sv-fp-sparse';
const FILL = 32 * 1024 * 1024;
let images: string;
let faultDir: string;
let idleKernel: string;

const POINTS = ['before-stream', 'mid-stream', 'after-stream'] as const;

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

async function info(host: string, name: string): Promise<DomainInfo> {
  return domainOf(await cluster.op(host, { op: 'info', name }));
}

/** `idle`: the guest runs a kernel that only halts, and firmware is done before the fill (a guest resumed after a rollback must not change the range). */
async function startGuest(host: string, name: string, idle = false): Promise<DomainInfo> {
  await cluster.op(host, { op: 'define', xml: guestXml({ name, memoryMiB: 64, ...(idle ? { kernel: idleKernel } : {}) }) });
  const dom = domainOf(await cluster.op(host, { op: 'start', name }));
  if (idle) await waitGuestIdle(dom.memoryBackingFile!);
  fillRandom(dom.memoryBackingFile!, FILL);
  return dom;
}

/** Waits until the worker holds at `point`; the job must not have ended meanwhile. */
async function reach(handle: JobHandle, point: string): Promise<() => void> {
  const marker = heldMarker(point, faultDir);
  let ended = false;
  void handle.result().then(
    () => (ended = true),
    () => (ended = true),
  );
  await waitFor(
    `worker held at ${point}`,
    () => {
      if (ended) throw new Error(`the job ended before reaching ${point}`);
      return existsSync(marker);
    },
    { timeoutMs: 30_000, intervalMs: 20 },
  );
  return () => rmSync(marker);
}

beforeAll(async () => {
  await cluster.connect();
  faultDir = join(cluster.root, 'faults');
  mkdirSync(faultDir);
  const all = (action: string, which: readonly string[]) => ['save', 'restore'].flatMap((job) => which.map((p) => `${job}.${p}=${action}`)).join(',');
  await Promise.all([
    cluster.startHost(HOLD_HOST, { VMFERRY_FAULTS: all('hold', POINTS), VMFERRY_FAULT_DIR: faultDir }),
    cluster.startHost(FAIL_HOST, { VMFERRY_FAULTS: all('fail', ['mid-stream']), VMFERRY_FAULT_DIR: faultDir }),
    cluster.startHost(SPARSE_HOST, { VMFERRY_FAULTS: 'save.mid-stream=hold', VMFERRY_FAULT_DIR: faultDir }),
    cluster.startControl(),
  ]);
  images = join(cluster.root, 'images');
  mkdirSync(images);
  idleKernel = join(cluster.root, 'idle-kernel.bin');
  writeIdleKernel(idleKernel);
});

afterAll(async () => {
  // A failed test may have left a worker held at a point.
  rmSync(faultDir, { recursive: true, force: true });
  await cluster.removeAllDomains([HOLD_HOST, FAIL_HOST, SPARSE_HOST]);
  await cluster.stop();
});

describe('save and restore fault points', () => {
  it('save.* and restore.* are reached in order, at the step each names', async () => {
    const host = HOLD_HOST;
    const name = 'sv-fp-walk';
    const dom = await startGuest(host, name);
    const before = hashRange(dom.memoryBackingFile!, FILL);
    const path = join(images, `${name}.img`);

    const save = await startJob(cluster.client, 'save', dom.uuid, { host, name, path });
    let release = await reach(save, 'save.before-stream');
    // The job record and the header are written, the CPUs paused, QEMU not yet writing.
    expect(magicOf(path)).toBe('LibvirtQemudPart');
    expect((await info(host, name)).state).toBe('paused');
    release();
    release = await reach(save, 'save.mid-stream');
    expect(magicOf(path)).toBe('LibvirtQemudPart');
    release();
    release = await reach(save, 'save.after-stream');
    // QEMU is done and the data flushed; the header still says partial.
    expect(magicOf(path)).toBe('LibvirtQemudPart');
    expect(isProcessAlive(dom.pid!)).toBe(true);
    release();
    const saved = (await save.result()) as SaveResult;
    expect(saved.path).toBe(path);
    expect(magicOf(path)).toBe('LibvirtQemudSave');
    expect((await info(host, name)).state).toBe('shutoff');

    const restore = await startJob(cluster.client, 'restore', dom.uuid, { host, path });
    release = await reach(restore, 'restore.before-stream');
    const incoming = await info(host, name);
    expect(incoming).toMatchObject({ state: 'paused', reason: 'incoming migration' });
    release();
    release = await reach(restore, 'restore.mid-stream');
    release();
    release = await reach(restore, 'restore.after-stream');
    // The whole stream is in; the CPUs have not started yet.
    expect((await info(host, name)).state).toBe('paused');
    release();
    const restored = (await restore.result()) as RestoreResult;
    expect(restored.domain).toMatchObject({ name, state: 'running', pid: incoming.pid });
    expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
    await cluster.op(host, { op: 'destroy', name });
    await cluster.op(host, { op: 'undefine', name });
    rmSync(path);
  });

  it('fail at save.mid-stream and restore.mid-stream: typed failure, nothing changed', async () => {
    const name = 'sv-fp-fail';
    // A good image to restore, written on the host without faults armed.
    const dom = await startGuest(HOLD_HOST, name);
    const before = hashRange(dom.memoryBackingFile!, FILL);
    const path = join(images, `${name}.img`);
    const save = await startJob(cluster.client, 'save', dom.uuid, { host: HOLD_HOST, name, path });
    for (const p of POINTS) (await reach(save, `save.${p}`))();
    await save.result();
    await cluster.op(HOLD_HOST, { op: 'undefine', name });

    // Restore on the failing host: no QEMU left, the image as it was.
    const restoreFailure = await failureOf(runJob(cluster.client, 'restore', dom.uuid, { host: FAIL_HOST, path, running: true }));
    expect(restoreFailure).toMatchObject({ type: 'OperationFailed' });
    expect(restoreFailure.message).toMatch(/restore\.mid-stream/);
    expect(await cluster.op(FAIL_HOST, { op: 'list' })).toMatchObject({ domains: [] });
    expect(magicOf(path)).toBe('LibvirtQemudSave');

    // A save that fails mid-stream: the guest runs on, untouched, and no image is left.
    rmSync(path);
    const fresh = await startGuest(FAIL_HOST, name);
    const freshHash = hashRange(fresh.memoryBackingFile!, FILL);
    expect(freshHash).not.toBe(before);
    const target = join(images, `${name}-2.img`);
    const saveFailure = await failureOf(runJob(cluster.client, 'save', fresh.uuid, { host: FAIL_HOST, name, path: target }));
    expect(saveFailure).toMatchObject({ type: 'OperationFailed' });
    expect(saveFailure.message).toMatch(/save\.mid-stream/);
    expect(existsSync(target)).toBe(false);
    expect(await info(FAIL_HOST, name)).toMatchObject({ state: 'running', pid: fresh.pid });
    expect(hashRange(fresh.memoryBackingFile!, FILL)).toBe(freshHash);
    await cluster.op(FAIL_HOST, { op: 'destroy', name });
    await cluster.op(FAIL_HOST, { op: 'undefine', name });
  });

  it('sparse save cancelled mid-stream: QEMU stops, no image, the guest runs untouched, and its QEMU streams plainly again', async () => {
    const host = SPARSE_HOST;
    const name = 'sv-fp-sparse-cancel';
    const dom = await startGuest(host, name, true);
    const before = hashRange(dom.memoryBackingFile!, FILL);
    const path = join(images, `${name}.img`);
    const save = await startJob(cluster.client, 'save', dom.uuid, { host, name, path, parallelChannels: 2 });
    const release = await reach(save, 'save.mid-stream');
    // QEMU has written the RAM pages at their offsets; the header still says partial.
    expect(magicOf(path)).toBe('LibvirtQemudPart');
    expect(statSync(path).size).toBeGreaterThan(FILL);
    await save.signal(cancelSignal);
    const failure = await failureOf(save.result());
    release();
    expect(failure.type).toBe('OperationAborted');
    expect(existsSync(path)).toBe(false);
    expect(await info(host, name)).toMatchObject({ state: 'running', pid: dom.pid });
    expect(hashRange(dom.memoryBackingFile!, FILL)).toBe(before);
    // mapped-ram or multifd left on would break the fd: stream of a classic save (held at its own mid-stream point here).
    const classic = await startJob(cluster.client, 'save', dom.uuid, { host, name, path, format: 'raw' });
    (await reach(classic, 'save.mid-stream'))();
    await classic.result();
    const restored = await runJob<RestoreResult>(cluster.client, 'restore', dom.uuid, { host, path });
    expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
    await cluster.op(host, { op: 'destroy', name });
    await cluster.op(host, { op: 'undefine', name });
    rmSync(path);
  });

  it('sparse save, kill -9 of the host worker mid-stream: the partial image is refused; the restarted worker brings the job to one consistent end', async () => {
    const host = SPARSE_HOST;
    const name = 'sv-fp-sparse-kill';
    const dom = await startGuest(host, name, true);
    const before = hashRange(dom.memoryBackingFile!, FILL);
    const path = join(images, `${name}.img`);
    const save = await startJob(cluster.client, 'save', dom.uuid, { host, name, path, parallelChannels: 4 });
    const release = await reach(save, 'save.mid-stream');
    await cluster.hosts.get(host)!.worker!.kill9();
    release();
    expect(magicOf(path)).toBe('LibvirtQemudPart');
    const partial = join(images, 'sparse-left-by-crash.img');
    copyFileSync(path, partial);
    expect(isProcessAlive(dom.pid!)).toBe(true);

    // Back without the fault armed: the job settles, and a retried Perform may save afresh.
    delete cluster.hosts.get(host)!.env.VMFERRY_FAULTS;
    const restarted = await cluster.startHost(host);
    const outcome = await save.result().then(
      (r) => ({ ok: true as const, result: r as SaveResult }),
      (e: unknown) => ({ ok: false as const, error: e }),
    );
    expect(restarted.worker!.logs.some((l) => l.msg === 'save rolled back' || l.msg === 'save finished')).toBe(true);
    if (outcome.ok) {
      expect(outcome.result.format).toBe('sparse');
      expect(magicOf(path)).toBe('LibvirtQemudSave');
      expect((await info(host, name)).state).toBe('shutoff');
      expect(isProcessAlive(dom.pid!)).toBe(false);
      const restored = await runJob<RestoreResult>(cluster.client, 'restore', dom.uuid, { host, path, parallelChannels: 4 });
      expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
    } else {
      expect(existsSync(path)).toBe(false);
      expect(await info(host, name)).toMatchObject({ state: 'running', pid: dom.pid });
      expect(hashRange(dom.memoryBackingFile!, FILL)).toBe(before);
    }
    await cluster.op(host, { op: 'destroy', name });
    const refused = await failureOf(runJob(cluster.client, 'restore', dom.uuid, { host, path: partial }));
    expect(refused.type).toBe('OperationInvalid');
    expect(refused.message).toMatch(/incomplete/);
    expect(readdirSync(join(cluster.hosts.get(host)!.baseDir, 'run'))).toEqual([]);
    await cluster.op(host, { op: 'undefine', name });
    rmSync(partial);
    rmSync(path, { force: true });
  });
});
