// Crashes in the middle of a save. kill -9 of the host worker: the image on disk
// is still marked partial (restore refuses it), and once a worker is back the
// job ends on its own in exactly one consistent state: a complete image with
// the domain shut off, or no image with the guest running. kill -9 of QEMU: the
// job fails, the partial image is gone.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { isProcessAlive } from '../src/support/proc.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { failureOf, magicOf, runJob, startJob, waitForStream } from './helpers/save.js';

const cluster = new TestCluster();
const HOST = 'sk-a';
/** Small enough that xz, restarted after the crash, finishes in a few seconds. */
const FILL = 8 * 1024 * 1024;
let images: string;

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

async function info(name: string): Promise<DomainInfo> {
  return domainOf(await cluster.op(HOST, { op: 'info', name }));
}

async function startGuest(name: string): Promise<DomainInfo> {
  await cluster.op(HOST, { op: 'define', xml: guestXml({ name, memoryMiB: 64 }) });
  const dom = domainOf(await cluster.op(HOST, { op: 'start', name }));
  fillRandom(dom.memoryBackingFile!, FILL);
  return dom;
}

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([cluster.startHost(HOST), cluster.startControl()]);
  images = join(cluster.root, 'images');
  mkdirSync(images);
});

afterAll(async () => {
  const list = await cluster.op(HOST, { op: 'list' }).catch(() => undefined);
  if (list && 'domains' in list) {
    for (const d of list.domains) if (d.state !== 'shutoff') await cluster.op(HOST, { op: 'destroy', name: d.name }).catch(() => undefined);
  }
  await cluster.stop();
});

describe('crashes during a save', () => {
  it('kill -9 of the host worker: the partial image is refused by restore; the restarted worker brings the job to one consistent end', async () => {
    const name = 'sk-worker';
    const dom = await startGuest(name);
    const before = hashRange(dom.memoryBackingFile!, FILL);
    const path = join(images, `${name}.img`);
    const handle = await startJob(cluster.client, 'save', dom.uuid, { host: HOST, name, path, format: 'xz' });
    await waitForStream(cluster.client, handle);

    await cluster.hosts.get(HOST)!.worker!.kill9();
    // What the crash left on disk, kept aside to show restore refuses it.
    expect(magicOf(path)).toBe('LibvirtQemudPart');
    const partial = join(images, 'left-by-crash.img');
    copyFileSync(path, partial);
    expect(isProcessAlive(dom.pid!)).toBe(true);

    const restarted = await cluster.startHost(HOST);
    const outcome = await handle.result().then(
      (r) => ({ ok: true as const, result: r as SaveResult }),
      (e: unknown) => ({ ok: false as const, error: e }),
    );
    const state = (await info(name)).state;
    // The new worker found the job's record and settled it before anything else ran.
    expect(restarted.worker!.logs.some((l) => l.msg === 'save rolled back' || l.msg === 'save finished')).toBe(true);
    if (outcome.ok) {
      // Finished: a complete image, the domain shut off, its memory in the image.
      expect(magicOf(path)).toBe('LibvirtQemudSave');
      expect(state).toBe('shutoff');
      expect(isProcessAlive(dom.pid!)).toBe(false);
      const restored = await runJob<RestoreResult>(cluster.client, 'restore', dom.uuid, { host: HOST, path });
      expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
      await cluster.op(HOST, { op: 'destroy', name });
    } else {
      // Rolled back: no image, the same QEMU running, memory untouched.
      expect(existsSync(path)).toBe(false);
      expect(await info(name)).toMatchObject({ state: 'running', pid: dom.pid });
      expect(hashRange(dom.memoryBackingFile!, FILL)).toBe(before);
      await cluster.op(HOST, { op: 'destroy', name });
    }

    const refused = await failureOf(runJob(cluster.client, 'restore', dom.uuid, { host: HOST, path: partial }));
    expect(refused.type).toBe('OperationInvalid');
    expect(refused.message).toMatch(/incomplete/);
    expect((await info(name)).state).toBe('shutoff');

    // No helper, socket or pipe left behind in the host's run directory.
    expect(readdirSync(join(cluster.hosts.get(HOST)!.baseDir, 'run'))).toEqual([]);
    rmSync(partial);
    rmSync(path, { force: true });
    await cluster.op(HOST, { op: 'undefine', name });
  });

  it('kill -9 of QEMU: the job fails, no partial image remains', async () => {
    const name = 'sk-qemu';
    const dom = await startGuest(name);
    const path = join(images, `${name}.img`);
    const handle = await startJob(cluster.client, 'save', dom.uuid, { host: HOST, name, path, format: 'xz' });
    await waitForStream(cluster.client, handle);
    process.kill(dom.pid!, 'SIGKILL'); // a QEMU this test started through the host
    const failure = await failureOf(handle.result());
    expect(failure.type).toBe('OperationFailed');
    expect(failure.message).toMatch(/QEMU/);
    expect(existsSync(path)).toBe(false);
    expect((await info(name)).state).toBe('shutoff');
    expect(readdirSync(join(cluster.hosts.get(HOST)!.baseDir, 'run'))).toEqual([]);
    await cluster.op(HOST, { op: 'undefine', name });
  });
});
