// Load and soak on two real host workers. Load: 20 jobs at once (live
// migrations both ways, saves, restores of small guests) all succeed; the run
// prints throughput and each worker's peak resident memory. Soak: 100
// back-and-forth migrations of one guest leak nothing: each worker's open
// descriptors, the processes under the host workers, QEMUs, listening
// migration ports and the files in the hosts' directories are the same before
// and after (counted after a warm-up round trip).
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrateResult } from '../src/common/migration-types.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { TestCluster } from './helpers/cluster.js';
import { peakRssMiB, resourcesOf, workerPids } from './helpers/fault-matrix/resources.js';
import { fillRandom } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, startMigration } from './helpers/migration.js';
import { magicOf, runJob } from './helpers/save.js';

const cluster = new TestCluster();
const A = 'ld-a';
const B = 'ld-b';
const RANGES: Record<string, [number, number]> = { [A]: [51740, 51755], [B]: [51760, 51775] };
const MiB = 1024 * 1024;
let images: string;
const report: string[] = [];

interface Guest {
  name: string;
  uuid: string;
  host: string;
}

async function startGuest(name: string, host: string, memoryMiB: number, randomMiB: number): Promise<Guest> {
  const uuid = randomUUID();
  await cluster.op(host, { op: 'define', xml: guestXml({ name, uuid, memoryMiB }) });
  const dom = domainOf(await cluster.op(host, { op: 'start', name }));
  if (randomMiB > 0) fillRandom(dom.memoryBackingFile!, randomMiB * MiB);
  return { name, uuid, host };
}

const other = (host: string): string => (host === A ? B : A);

/** Destroys and undefines every domain on both hosts, all at once (the cluster's own teardown goes one by one). */
async function removeAll(): Promise<void> {
  await Promise.all(
    [A, B].map(async (host) => {
      const list = await cluster.op(host, { op: 'list' });
      await Promise.all(
        ('domains' in list ? list.domains : []).map(async (d) => {
          if (d.state !== 'shutoff') await cluster.op(host, { op: 'destroy', name: d.name });
          if (d.persistent) await cluster.op(host, { op: 'undefine', name: d.name });
        }),
      );
    }),
  );
}

async function migrate(g: Guest): Promise<MigrateResult> {
  const h = await startMigration(cluster.client, {
    domain: g.name,
    domainUuid: g.uuid,
    sourceHost: g.host,
    destinationHost: other(g.host),
    flags: ['live', 'persist-dest', 'undefine-source'],
  });
  const r = await h.result();
  g.host = other(g.host);
  return r;
}

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([
    ...[A, B].map((h) =>
      cluster.startHost(h, { VMFERRY_HOST_MIGRATION_PORT_MIN: String(RANGES[h]![0]), VMFERRY_HOST_MIGRATION_PORT_MAX: String(RANGES[h]![1]) }),
    ),
    cluster.startControl(),
  ]);
  images = join(cluster.root, 'images');
  mkdirSync(images);
});

afterAll(async () => {
  if (report.length > 0) {
    console.log(`\n${report.join('\n')}`);
    mkdirSync('test-artifacts', { recursive: true });
    writeFileSync(join('test-artifacts', 'load.txt'), `${report.join('\n')}\n`);
  }
  await cluster.removeAllDomains([A, B]);
  await cluster.stop();
});

describe('load and soak', () => {
  it('20 concurrent jobs (8 migrations both ways, 6 saves, 6 restores) all succeed', async () => {
    // Setup, not timed: guests to migrate and save, and images to restore.
    const many = (n: number, prefix: string, memoryMiB: number, randomMiB: number): Promise<Guest[]> =>
      Promise.all(Array.from({ length: n }, (_, i) => startGuest(`${prefix}${i}`, i % 2 ? B : A, memoryMiB, randomMiB)));
    const [migrating, saving, restoring] = await Promise.all([many(8, 'ld-m', 48, 16), many(6, 'ld-s', 32, 8), many(6, 'ld-r', 32, 8)]);
    await Promise.all(
      restoring.map((g) => runJob<SaveResult>(cluster.client, 'save', g.uuid, { host: g.host, name: g.name, path: join(images, `${g.name}.img`) })),
    );

    const began = Date.now();
    const timed = async <T>(what: string, p: Promise<T>): Promise<{ what: string; ms: number; r: T }> => {
      const t = Date.now();
      const r = await p;
      return { what, ms: Date.now() - t, r };
    };
    const jobs = [
      ...migrating.map((g) => timed(`migrate ${g.name} ${g.host}->${other(g.host)}`, migrate(g))),
      ...saving.map((g) =>
        timed(`save ${g.name}`, runJob<SaveResult>(cluster.client, 'save', g.uuid, { host: g.host, name: g.name, path: join(images, `${g.name}.img`) })),
      ),
      ...restoring.map((g) =>
        timed(`restore ${g.name}`, runJob<RestoreResult>(cluster.client, 'restore', g.uuid, { host: g.host, path: join(images, `${g.name}.img`) })),
      ),
    ];
    const settled = await Promise.allSettled(jobs);
    const wallMs = Date.now() - began;
    const failed = settled.filter((s) => s.status === 'rejected').map((s) => String((s as PromiseRejectedResult).reason));
    expect(failed).toEqual([]);

    const done = settled.map((s) => (s as PromiseFulfilledResult<{ what: string; ms: number }>).value);
    const longest = done.reduce((a, b) => (b.ms > a.ms ? b : a));
    const pids = workerPids(cluster);
    report.push(
      `load: 20 jobs (8 live migrations of 48 MiB guests, 6 saves and 6 restores of 32 MiB guests) on ${A} and ${B}`,
      `  wall ${(wallMs / 1000).toFixed(1)} s, throughput ${((20 * 60_000) / wallMs).toFixed(1)} jobs/min, longest job ${longest.what} ${(longest.ms / 1000).toFixed(1)} s`,
      `  peak RSS (VmHWM): ${Object.entries(pids)
        .map(([n, pid]) => `${n} ${peakRssMiB(pid)} MiB`)
        .join(', ')}`,
    );

    // Each job's end state: migrated and restored guests run (migrated ones on the other host only), images complete.
    const lists = new Map(
      await Promise.all([A, B].map(async (h) => [h, await cluster.op(h, { op: 'list' }).then((r) => ('domains' in r ? r.domains : []))] as const)),
    );
    const state = (host: string, name: string): string | undefined => lists.get(host)!.find((d) => d.name === name)?.state;
    for (const g of [...migrating, ...restoring]) expect(`${g.name} ${state(g.host, g.name)}`).toBe(`${g.name} running`);
    for (const g of migrating) expect(state(other(g.host), g.name)).toBeUndefined();
    for (const g of saving) expect(magicOf(join(images, `${g.name}.img`))).toBe('LibvirtQemudSave');
    await removeAll();
  }, 300_000);

  it('100 back-and-forth migrations of one guest leak no descriptor, process, port or file', async () => {
    const g = await startGuest('ld-soak', A, 32, 0);
    const ranges = [RANGES[A]!, RANGES[B]!];
    // Warm-up round trip: first-use allocations (connections, caches) are not leaks.
    await migrate(g);
    await migrate(g);
    const before = resourcesOf(cluster, ranges);
    const began = Date.now();
    for (let i = 0; i < 100; i++) await migrate(g);
    const ms = Date.now() - began;
    expect(g.host).toBe(A);
    const after = resourcesOf(cluster, ranges);
    report.push(
      `soak: 100 live migrations of a 32 MiB guest between ${A} and ${B} in ${(ms / 1000).toFixed(1)} s: ${((100 * 60_000) / ms).toFixed(1)} migrations/min`,
      `  before: fds ${JSON.stringify(before.fds)}, qemus ${before.qemus}, files ${before.files.length}, listening [${before.listening.join(' ')}]`,
      `  after:  fds ${JSON.stringify(after.fds)}, qemus ${after.qemus}, files ${after.files.length}, listening [${after.listening.join(' ')}]`,
    );
    expect(after).toEqual(before);
    await removeAll();
  }, 300_000);
});
