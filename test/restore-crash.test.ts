// kill -9 of the host worker in the middle of a restore, at a known point: the
// worker holds at restore.mid-stream (the first MiB is in QEMU, the rest held
// back), the test kills it there. With the worker gone QEMU's stream breaks and
// the half-loaded QEMU ends; the restarted worker settles the job from its
// record and the workflow's retried step restores again. Afterwards: the job
// finished by itself, exactly one QEMU runs the domain (with the image's RAM),
// no helper or pipe is left, and the image is byte for byte what it was.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import type { RestoreResult } from '../src/common/save-types.js';
import { heldMarker } from '../src/support/fault-points.js';
import { isProcessAlive } from '../src/support/proc.js';
import type { SaveJobRecord } from '../src/host/jobs/records.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { magicOf, runJob, startJob } from './helpers/save.js';

const cluster = new TestCluster();
const HOST = 'sv-rk';
const FILL = 32 * 1024 * 1024;
let images: string;
let faultDir: string;

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

const fileHash = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Every live process whose command line runs QEMU for this UUID (any host, any worker). */
function qemusOf(uuid: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0');
      const i = argv.indexOf('-uuid');
      if (i >= 0 && argv[i + 1] === uuid && isProcessAlive(Number(entry))) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

async function armedHost(): Promise<void> {
  // The handle keeps its env across restarts: arm it explicitly each time.
  Object.assign(cluster.hostHandle(HOST).env, { VMFERRY_FAULTS: 'restore.mid-stream=hold', VMFERRY_FAULT_DIR: faultDir });
  await cluster.startHost(HOST);
}

beforeAll(async () => {
  await cluster.connect();
  faultDir = join(cluster.root, 'faults');
  mkdirSync(faultDir);
  await Promise.all([armedHost(), cluster.startControl()]);
  images = join(cluster.root, 'images');
  mkdirSync(images);
});

afterAll(async () => {
  rmSync(faultDir, { recursive: true, force: true });
  await cluster.removeAllDomains([HOST]);
  await cluster.stop();
});

describe('kill -9 of the host worker during a restore', () => {
  for (const format of ['raw', 'gzip'] as const) {
    it(`${format}: held at restore.mid-stream, killed, restarted: the restore completes once, nothing left over, the image untouched`, async () => {
      const name = `sv-rk-${format}`;
      await cluster.op(HOST, { op: 'define', xml: guestXml({ name, memoryMiB: 64 }) });
      const dom = domainOf(await cluster.op(HOST, { op: 'start', name }));
      fillRandom(dom.memoryBackingFile!, FILL);
      const before = hashRange(dom.memoryBackingFile!, FILL);
      const path = join(images, `${name}.img`);
      await runJob(cluster.client, 'save', dom.uuid, { host: HOST, name, path, format });
      const imageHash = fileHash(path);

      const handle = await startJob(cluster.client, 'restore', dom.uuid, { host: HOST, path });
      const marker = heldMarker('restore.mid-stream', faultDir);
      let ended = false;
      void handle
        .result()
        .finally(() => (ended = true))
        .catch(() => undefined);
      await waitFor(
        'the worker held at restore.mid-stream',
        () => {
          if (ended) throw new Error('the restore ended before reaching restore.mid-stream');
          return existsSync(marker);
        },
        { timeoutMs: 30_000, intervalMs: 20 },
      );
      // What the crash interrupts: the incoming QEMU and the pipeline's helpers, as recorded for recovery.
      const host = cluster.hosts.get(HOST)!;
      const rec = JSON.parse(readFileSync(join(host.baseDir, 'state', 'jobs', `${name}.json`), 'utf8')) as SaveJobRecord;
      expect(rec).toMatchObject({ kind: 'restore', state: 'running' });
      const incomingPid = rec.qemuPid!;
      expect(qemusOf(dom.uuid)).toEqual([incomingPid]);
      const helperPids = rec.helpers.map((h) => h.pid);
      expect(helperPids.length).toBeGreaterThan(0);

      await host.worker!.kill9();
      rmSync(marker);
      expect(fileHash(path)).toBe(imageHash);
      // Nobody feeds the half-loaded QEMU any more: it ends on its own, it does not wait forever.
      await waitFor('the half-loaded QEMU gone', () => !isProcessAlive(incomingPid), { timeoutMs: 30_000, intervalMs: 50 });

      delete host.env.VMFERRY_FAULTS;
      const restarted = await cluster.startHost(HOST);
      const result = (await handle.result()) as RestoreResult;
      // The new worker settled the job before anything else, then the retried step restored afresh.
      expect(restarted.worker!.logs.some((l) => l.msg === 'restore rolled back' && l.job === rec.jobId)).toBe(true);
      expect(result.domain).toMatchObject({ name, uuid: dom.uuid, state: 'running' });
      expect(result.domain.pid).not.toBe(incomingPid);
      expect(qemusOf(dom.uuid)).toEqual([result.domain.pid]);
      expect(hashRange(result.domain.memoryBackingFile!, FILL)).toBe(before);
      for (const pid of helperPids) expect(isProcessAlive(pid), `helper ${pid}`).toBe(false);
      expect(readdirSync(join(host.baseDir, 'run')).filter((f) => !f.startsWith(`${name}.`))).toEqual([]);
      expect(magicOf(path)).toBe('LibvirtQemudSave');
      expect(fileHash(path)).toBe(imageHash);

      await cluster.op(HOST, { op: 'destroy', name });
      await cluster.op(HOST, { op: 'undefine', name });
      rmSync(path);
      // The next case needs the point armed again.
      await host.worker!.stop();
      await armedHost();
    });
  }
});
