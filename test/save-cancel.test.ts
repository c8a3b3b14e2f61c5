// Cancelling a save while QEMU streams: by the job's cancel signal and by native
// workflow cancellation. Either way QEMU's migration stops, the partial image is
// removed, the guest runs again with its memory untouched, and the job fails
// with OperationAborted. xz on random memory is slow (seconds per MiB on these
// machines), so the save is still streaming when the cancel arrives; the test
// waits for the stream to show progress rather than for a time.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import { cancelSignal, jobInfoQuery } from '../src/common/job-messages.js';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import type { RestoreResult } from '../src/common/save-types.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { waitGuestIdle, writeIdleKernel } from './helpers/idle-kernel.js';
import { failureOf, magicOf, runJob, startJob, waitForStream } from './helpers/save.js';

const cluster = new TestCluster();
const HOST = 'sc-a';
/** QEMU's files go to uid/gid 65534 while it uses them (DAC driver), back to the worker's afterwards. */
const DAC_HOST = 'sc-dac';
const QEMU_ID = 65534;
const FILL = 32 * 1024 * 1024;
let images: string;
let idleKernel: string;

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

beforeAll(async () => {
  idleKernel = join(cluster.root, 'idle-kernel.bin');
  writeIdleKernel(idleKernel);
  await cluster.connect();
  await Promise.all([
    cluster.startHost(HOST),
    cluster.startHost(DAC_HOST, { VMFERRY_SECURITY_DRIVER: 'dac', VMFERRY_QEMU_USER: `+${QEMU_ID}`, VMFERRY_QEMU_GROUP: `+${QEMU_ID}` }),
    cluster.startControl(),
  ]);
  images = join(cluster.root, 'images');
  mkdirSync(images);
});

afterAll(async () => {
  for (const host of [HOST, DAC_HOST]) {
    const list = await cluster.op(host, { op: 'list' }).catch(() => undefined);
    if (list && 'domains' in list) {
      for (const d of list.domains) if (d.state !== 'shutoff') await cluster.op(host, { op: 'destroy', name: d.name }).catch(() => undefined);
    }
  }
  await cluster.stop();
});

describe('cancelling a save', () => {
  for (const how of ['cancel signal', 'native workflow cancellation'] as const) {
    it(`by ${how}: QEMU stops, no image remains, the guest runs on untouched, the job fails OperationAborted`, async () => {
      const name = how === 'cancel signal' ? 'sc-signal' : 'sc-native';
      // A guest that halts once the firmware is done: the resumed guest must leave the hashed range alone
      // (SeaBIOS still running when the range was filled rewrote pages of it after the cancel).
      await cluster.op(HOST, { op: 'define', xml: guestXml({ name, memoryMiB: 64, kernel: idleKernel }) });
      const dom = domainOf(await cluster.op(HOST, { op: 'start', name }));
      await waitGuestIdle(dom.memoryBackingFile!);
      fillRandom(dom.memoryBackingFile!, FILL);
      const before = hashRange(dom.memoryBackingFile!, FILL);
      const path = join(images, `${name}.img`);

      const handle = await startJob(cluster.client, 'save', dom.uuid, { host: HOST, name, path, format: 'xz' });
      const streaming = await waitForStream(cluster.client, handle);
      expect(streaming).toMatchObject({ jobType: 'save', status: 'running', phase: 'perform' });
      expect(streaming.dataTotalBytes).toBeGreaterThanOrEqual(64 * 1024 * 1024);
      expect(streaming.percent).toBeGreaterThanOrEqual(0);
      expect(magicOf(path)).toBe('LibvirtQemudPart');
      expect(domainOf(await cluster.op(HOST, { op: 'info', name })).state).toBe('paused');
      if (how === 'cancel signal') {
        // One job per domain: a second one under the domain's job ID is refused by Temporal,
        // and one started under another ID is refused by the host.
        await expect(startJob(cluster.client, 'save', dom.uuid, { host: HOST, name, path: join(images, 'second.img') })).rejects.toThrow(/already/i);
        const other = await cluster.client.workflow.start('save', {
          taskQueue: CONTROL_TASK_QUEUE,
          workflowId: `sc-second-${dom.uuid}`,
          args: [{ host: HOST, name, path: join(images, 'second.img') }],
        });
        const busy = await failureOf(other.result());
        expect(busy.type).toBe('DomainBusy');
        expect(existsSync(join(images, 'second.img'))).toBe(false);
      }

      const cancelledAt = Date.now();
      if (how === 'cancel signal') await handle.signal(cancelSignal);
      else await handle.cancel();
      const failure = await failureOf(handle.result());
      const tookMs = Date.now() - cancelledAt;
      expect(failure.type).toBe('OperationAborted');
      expect(tookMs).toBeLessThan(5000);
      const info = await handle.query(jobInfoQuery);
      expect(info).toMatchObject({ status: 'cancelled', error: { type: 'OperationAborted', phase: 'perform' } });
      expect(info.cleanupErrors ?? []).toEqual([]);

      expect(existsSync(path)).toBe(false);
      const after = domainOf(await cluster.op(HOST, { op: 'info', name }));
      expect(after).toMatchObject({ state: 'running', pid: dom.pid });
      expect(hashRange(dom.memoryBackingFile!, FILL)).toBe(before);
      expect(readdirSync(images)).toEqual([]);
      await cluster.op(HOST, { op: 'destroy', name });
      await cluster.op(HOST, { op: 'undefine', name });
    });
  }

  it('labels the image for QEMU while the stream runs and puts the original owner back after, on cancel and on success (dac)', async () => {
    const name = 'sc-label';
    await cluster.op(DAC_HOST, { op: 'define', xml: guestXml({ name, memoryMiB: 64, kernel: idleKernel }) });
    const dom = domainOf(await cluster.op(DAC_HOST, { op: 'start', name }));
    await waitGuestIdle(dom.memoryBackingFile!);
    fillRandom(dom.memoryBackingFile!, FILL);
    const before = hashRange(dom.memoryBackingFile!, FILL);
    const path = join(images, `${name}.img`);

    const slow = await startJob(cluster.client, 'save', dom.uuid, { host: DAC_HOST, name, path, format: 'xz' });
    await waitForStream(cluster.client, slow);
    expect(statSync(path)).toMatchObject({ uid: QEMU_ID, gid: QEMU_ID });
    await slow.signal(cancelSignal);
    expect((await failureOf(slow.result())).type).toBe('OperationAborted');
    expect(existsSync(path)).toBe(false);

    await runJob(cluster.client, 'save', dom.uuid, { host: DAC_HOST, name, path, format: 'zstd' });
    const saved = statSync(path);
    expect({ uid: saved.uid, gid: saved.gid, mode: saved.mode & 0o777 }).toEqual({ uid: process.getuid!(), gid: process.getgid!(), mode: 0o600 });
    const restored = await runJob<RestoreResult>(cluster.client, 'restore', dom.uuid, { host: DAC_HOST, path });
    expect(restored.domain.state).toBe('running');
    expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
    expect(statSync(path)).toMatchObject({ uid: process.getuid!(), gid: process.getgid!() });
    await cluster.op(DAC_HOST, { op: 'destroy', name });
    await cluster.op(DAC_HOST, { op: 'undefine', name });
    rmSync(path);
  });
});
