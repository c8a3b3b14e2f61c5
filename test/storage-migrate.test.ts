// Storage migration (libvirt's --copy-storage-all / --copy-storage-inc over NBD), end to end on
// real Temporal and real QEMU (TCG): two host workers on this machine whose disk directories are
// NOT shared (host-a's images in one directory, host-b's in another; the destination XML maps
// the path). The Linux test guest appends sequence-numbered records to its qcow2 disk and reports
// each one it saw acknowledged on its serial console. One guest makes the whole round:
//   refusals before anything changes (no copy flag; destination image already there),
//   copy-storage-inc A -> B over a backing file present on both hosts (only the top image moves; the
//   persistent definition host-b keeps names host-b's path),
//   a cancel during the mirror B -> A (source running and writing, destination image gone, no NBD
//   server left), with setSpeed changing the mirror's limit while it runs,
//   `vmferry migrate --copy-storage-all --migrate-disks vda --tls` B -> A (the NBD server accepts only the source's certificate; a capture of
//   the hosts' ports shows the guest's records in clear without --tls and none with it),
//   copy-storage-all A -> B with the source worker killed and restarted during the mirror.
// After each migration every acknowledged record is on the destination's image and the guest
// keeps writing there.
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelSignal, setSpeedUpdate } from '../src/common/job-messages.js';
import { STORAGE_COPY_PHASE } from '../src/common/job-types.js';
import type { MigrateFlag, MigrateInput, MigrateResult, MigrationHeartbeat } from '../src/common/migration-types.js';
import { freePort } from '../src/local/free-port.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { checkDiskRecords, guestCmdline, lastDiskAck, linuxGuest, linuxGuestXml, waitForSerial } from './helpers/linux-guest.js';
import { domainOf, failureOf, performHeartbeat, startMigration } from './helpers/migration.js';
import { capture, countOf } from './helpers/tcpdump.js';
import { makeCa, makeHostCert, tunnelEnv } from './helpers/tunnel-certs.js';
import { vmferry } from './helpers/vmferry-cli.js';
import { localWorldOf } from './helpers/world.js';

const A = 'st-a';
const B = 'st-b';
const NAME = 'stguest';
const MiB = 1024 * 1024;
const DISK_MIB = 32;
const isRoot = process.getuid?.() === 0;
const cluster = new TestCluster();
const dir = mkdtempSync(join(tmpdir(), 'vmf-storage-'));
const dirA = join(dir, 'a');
const dirB = join(dir, 'b');
const serialLog = join(dir, 'serial.log');
const uuid = randomUUID();
/**
 * What the base image holds in its last MiB, where the guest's writer never reaches during the test
 * (so only the disk copy carries it): a marker a capture can look for.
 */
const MARKER = Buffer.from('VMF-NBD-MARKER-7');
const basePattern = Buffer.alloc(MiB, MARKER);
/** The guest writer's record magic: in guest RAM and on the disk, so in any clear stream. */
const RECORD_MAGIC = Buffer.from('VMFGDISK');

function qemuImg(...args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function domainXml(disk: string): string {
  return linuxGuestXml({
    name: NAME,
    uuid,
    memoryMiB: 192,
    cmdline: guestCmdline({ disk: '/dev/vda', diskIntervalMs: 50 }),
    serialLog,
    disk: { path: disk, format: 'qcow2' },
  });
}

/** The image as the guest sees it (backing chain included), read without taking QEMU's lock. */
function flatten(image: string): string {
  const out = join(dir, `flat-${randomBytes(4).toString('hex')}.raw`);
  qemuImg('convert', '-U', '-O', 'raw', image, out);
  return out;
}

/** Every record the guest acknowledged so far is on `image`. */
async function expectAckedOn(image: string, what: string): Promise<number> {
  const acked = lastDiskAck(readFileSync(serialLog, 'utf8'));
  const flat = flatten(image);
  try {
    const check = await checkDiskRecords(flat, acked);
    console.log(`${what}: ${acked} records acknowledged, highest on ${image} ${check.highest}, ${check.missing.length} missing`);
    expect(acked).toBeGreaterThan(0);
    expect(check.missing).toEqual([]);
    return acked;
  } finally {
    rmSync(flat, { force: true });
  }
}

/** The guest goes on writing where it runs now: a higher acknowledgement shows up on the console. */
async function expectStillWriting(after: number): Promise<void> {
  await waitFor('a newer disk acknowledgement', () => lastDiskAck(readFileSync(serialLog, 'utf8')) > after + 5, { timeoutMs: 30_000, intervalMs: 200 });
}

/** Migration and NBD traffic on loopback (the hosts' port range) while `during` runs, as a pcap of whole packets. */
async function captureMigrationPorts(during: () => Promise<void>): Promise<Buffer> {
  const file = join(dir, `cap-${Date.now()}.pcap`);
  return await capture(['tcpdump', '-i', 'lo', '-U', '-B', '65536', '-s', '0', '-w', file, 'tcp', 'portrange', '49152-49215'], file, during);
}

async function migratableXmlWith(host: string, disk: string): Promise<string> {
  const r = await cluster.op(host, { op: 'dumpxml', name: NAME, migratable: true });
  if (!('xml' in r)) throw new Error(`dumpxml answered ${JSON.stringify(r)}`);
  return r.xml.replace(/<source file='[^']*'/, `<source file='${disk}'`);
}

function input(from: string, to: string, flags: MigrateFlag[], extra: Partial<MigrateInput> = {}): MigrateInput & { domainUuid: string } {
  return { domain: NAME, domainUuid: uuid, sourceHost: from, destinationHost: to, flags, ...extra };
}

async function expectRunningOn(host: string, pid?: number): Promise<void> {
  const d = domainOf(await cluster.op(host, { op: 'info', name: NAME }));
  expect(d.state).toBe('running');
  if (pid !== undefined) expect(d.pid).toBe(pid);
}

async function namesOn(host: string): Promise<string[]> {
  const r = await cluster.op(host, { op: 'list' });
  return 'domains' in r ? r.domains.map((d) => d.name) : [];
}

beforeAll(async () => {
  if (!isRoot) return;
  mkdirSync(dirA);
  mkdirSync(dirB);
  // The base image, the same on both hosts; the guest's top image over it on host-a.
  const base = join(dir, 'base.raw');
  const data = Buffer.alloc(DISK_MIB * MiB);
  basePattern.copy(data, (DISK_MIB - 1) * MiB);
  writeFileSync(base, data);
  for (const d of [dirA, dirB]) qemuImg('convert', '-O', 'qcow2', base, join(d, 'base.qcow2'));
  rmSync(base);
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=131072', '-b', 'base.qcow2', '-F', 'qcow2', join(dirA, 'top.qcow2'));
  const ca = makeCa(dir, 'st-ca');
  await cluster.connect();
  await Promise.all([
    cluster.startHost(A, tunnelEnv(`127.0.0.1:${await freePort()}`, makeHostCert(dir, ca, A))),
    cluster.startHost(B, tunnelEnv(`127.0.0.1:${await freePort()}`, makeHostCert(dir, ca, B))),
    cluster.startControl(),
  ]);
}, 120_000);

afterAll(async () => {
  if (isRoot) {
    await cluster.removeAllDomains([A, B]).catch(() => undefined);
    await cluster.stop();
  }
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!isRoot)('storage migration over NBD (real QEMU and Temporal, unshared directories)', () => {
  let pid = 0;
  let clearCapture: Buffer = Buffer.alloc(0);

  it('refuses before anything changes: an unshared disk without a copy flag, a destination image that exists', async () => {
    await cluster.op(A, { op: 'define', xml: domainXml(join(dirA, 'top.qcow2')) });
    pid = domainOf(await cluster.op(A, { op: 'start', name: NAME })).pid!;
    const ready = await waitForSerial(serialLog, /^VMFERRY-GUEST-(READY|FAILED).*$/m, 120_000);
    expect(ready).not.toMatch(/VMFERRY-GUEST-FAILED/);
    await waitFor('a first disk acknowledgement', () => lastDiskAck(readFileSync(serialLog, 'utf8')) > 0, { timeoutMs: 30_000, intervalMs: 200 });

    // Files of both workers and host-b's image directory (host-a's image grows as the guest writes), and QEMU processes.
    const before = localWorldOf(cluster, [dirB]);
    const unshared = await failureOf((await startMigration(cluster.client, input(A, B, ['live']))).result());
    expect(unshared.type).toBe('MigrateUnsafe');
    expect(unshared.message).toMatch(/migration without shared storage is unsafe: disk vda \(.*top\.qcow2\)/);

    const taken = join(dirB, 'top.qcow2');
    writeFileSync(taken, 'not an image of this job');
    const xml = await migratableXmlWith(A, taken);
    const exists = await failureOf((await startMigration(cluster.client, input(A, B, ['live', 'copy-storage-inc'], { destinationXml: xml }))).result());
    expect(exists.type).toBe('OperationInvalid');
    expect(exists.message).toMatch(/destination image .*top\.qcow2 already exists/);
    expect(readFileSync(taken, 'utf8')).toBe('not an image of this job');
    rmSync(taken);

    const unknown = await failureOf((await startMigration(cluster.client, input(A, B, ['live', 'copy-storage-all'], { migrateDisks: ['vdz'] }))).result());
    expect(unknown.type).toBe('OperationInvalid');
    expect(unknown.message).toMatch(/no disk with target 'vdz'/);

    const after = localWorldOf(cluster, [dirB]);
    expect(after.files).toEqual(before.files);
    expect(after.qemu).toEqual(before.qemu);
    expect(await namesOn(B)).toEqual([]);
    await expectRunningOn(A, pid);
  });

  it('copy-storage-inc: only the top image moves, over the backing file each host has; every acknowledged write is there and the guest writes on', async () => {
    const dest = join(dirB, 'top.qcow2');
    const xml = await migratableXmlWith(A, dest);
    clearCapture = await captureMigrationPorts(async () => {
      const handle = await startMigration(cluster.client, input(A, B, ['live', 'copy-storage-inc', 'persist-dest'], { destinationXml: xml }));
      expect((await handle.result()).destination).toMatchObject({ state: 'running', host: B });
    });
    // The persistent definition host-b keeps names the image where host-b made it, not host-a's path.
    const kept = await cluster.op(B, { op: 'dumpxml', name: NAME, inactive: true });
    expect('xml' in kept ? kept.xml : '').toContain(`<source file='${dest}'/>`);
    // In clear, the guest's records cross the wire (the disk copy and its RAM); the --tls case below shows none.
    expect(countOf(clearCapture, RECORD_MAGIC)).toBeGreaterThan(0);
    const acked = await expectAckedOn(dest, 'after copy-storage-inc A -> B');
    // The same geometry and backing file; the base's data is read through it, not copied.
    const info = JSON.parse(qemuImg('info', '-U', '--output=json', dest)) as Record<string, unknown>;
    expect(info).toMatchObject({ format: 'qcow2', 'virtual-size': DISK_MIB * MiB, 'cluster-size': 131072, 'backing-filename': 'base.qcow2' });
    expect(statSync(dest).size).toBeLessThan((DISK_MIB / 2) * MiB);
    const flat = flatten(dest);
    try {
      expect(
        readFileSync(flat)
          .subarray((DISK_MIB - 1) * MiB)
          .equals(basePattern),
      ).toBe(true);
    } finally {
      rmSync(flat, { force: true });
    }
    // The source's own image stays where it was (only the destination's are this job's to create or delete).
    expect(existsSync(join(dirA, 'top.qcow2'))).toBe(true);
    await expectStillWriting(acked);
  });

  it('a cancel during the mirror stops it: the source runs and writes on, the destination image is gone, no NBD server is left; setSpeed reaches the mirror', async () => {
    const dest = join(dirA, 'full.qcow2');
    const handle = await startMigration(
      cluster.client,
      input(B, A, ['live', 'copy-storage-all'], { destinationXml: await migratableXmlWith(B, dest), bandwidthMiBps: 1 }),
    );
    const mirroring = await waitFor(
      'the disk mirror under way',
      async () => {
        const hb = (await performHeartbeat(handle)) as (MigrationHeartbeat & { phase?: string }) | undefined;
        return hb?.phase === STORAGE_COPY_PHASE && (hb.progress.diskProcessedBytes ?? 0) > 0 ? hb : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    expect(mirroring.speedLimitMiBps).toBe(1);
    // virsh's domjobinfo: the disk copy is its own phase, with its File rows.
    const info = await vmferry({ address: cluster.address, host: B }, 'domjobinfo', NAME);
    expect(info.code, info.stderr).toBe(0);
    expect(info.stdout).toMatch(/Phase:\s+storage-copy/);
    expect(info.stdout).toMatch(/File processed:\s+\d+\.\d{3} MiB/);
    expect(info.stdout).toMatch(/File remaining:\s+\d+\.\d{3} MiB/);
    // QEMU's mirror length: the virtual disk, growing by what the guest rewrites while it copies.
    expect(mirroring.progress.diskTotalBytes).toBeGreaterThanOrEqual(DISK_MIB * MiB);
    expect(existsSync(dest)).toBe(true);
    // Changed while it runs (libvirt cannot): QEMU's own view of the mirror job shows the new limit.
    await handle.executeUpdate(setSpeedUpdate, { args: [2] });
    await waitFor(
      'the mirror at 2 MiB/s',
      async () => {
        const hb = await performHeartbeat(handle);
        return hb?.speedLimitMiBps === 2 ? hb : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    // Two QEMUs now: the source, and the destination serving its NBD export.
    expect(localWorldOf(cluster).qemu).toHaveLength(2);
    const acked = lastDiskAck(readFileSync(serialLog, 'utf8'));
    await handle.signal(cancelSignal);
    const failure = await failureOf(handle.result());
    expect(failure.type).toBe('OperationAborted');
    await expectRunningOn(B);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(join(dirB, 'top.qcow2'))).toBe(true);
    // host-a keeps only the persistent definition it had (shut off): the incoming domain is gone.
    expect(domainOf(await cluster.op(A, { op: 'info', name: NAME })).state).toBe('shutoff');
    // The destination QEMU, and with it its NBD server and export, is gone: only the source runs.
    const src = domainOf(await cluster.op(B, { op: 'info', name: NAME }));
    expect(localWorldOf(cluster).qemu).toEqual([src.pid]);
    await expectStillWriting(acked);
    await expectAckedOn(join(dirB, 'top.qcow2'), 'after the cancelled copy, on the source');
  });

  it('vmferry migrate --copy-storage-all --migrate-disks vda --tls: the whole disk moves through the NBD server that pins the source certificate', async () => {
    const dest = join(dirA, 'full.qcow2');
    const xmlFile = join(dir, 'dest.xml');
    writeFileSync(xmlFile, await migratableXmlWith(B, dest));
    const tls = await captureMigrationPorts(async () => {
      const cli = await vmferry(
        { address: cluster.address, host: B },
        ...['migrate', NAME, A, '--live', '--copy-storage-all', '--migrate-disks', 'vda', '--tls', '--xml', xmlFile, '--json'],
      );
      expect(cli.code, cli.stderr).toBe(0);
      const result = JSON.parse(cli.stdout) as MigrateResult;
      expect(result.destination).toMatchObject({ state: 'running', host: A });
      // domjobinfo --completed's File rows: the whole virtual disk (plus what the guest rewrote meanwhile), nothing remaining.
      expect(result.stats.diskTotalBytes).toBeGreaterThanOrEqual(DISK_MIB * MiB);
      expect(result.stats).toMatchObject({ diskProcessedBytes: result.stats.diskTotalBytes, diskRemainingBytes: 0 });
    });
    // The whole disk went, the base's marker MiB with it, and neither it nor a record is readable on the wire.
    expect(tls.length).toBeGreaterThan(MiB);
    expect(countOf(tls, MARKER)).toBe(0);
    expect(countOf(tls, RECORD_MAGIC)).toBe(0);
    const done = await vmferry({ address: cluster.address, host: A }, 'domjobinfo', NAME, '--completed');
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/File total:\s+3\d\.\d{3} MiB/);
    expect(done.stdout).toMatch(/File remaining:\s+0\.000 MiB/);
    const acked = await expectAckedOn(dest, 'after copy-storage-all --tls B -> A');
    const info = JSON.parse(qemuImg('info', '-U', '--output=json', dest)) as Record<string, unknown>;
    // A whole copy stands alone: no backing file, the base's data inside.
    expect(info['backing-filename']).toBeUndefined();
    const flat = flatten(dest);
    try {
      expect(
        readFileSync(flat)
          .subarray((DISK_MIB - 1) * MiB)
          .equals(basePattern),
      ).toBe(true);
    } finally {
      rmSync(flat, { force: true });
    }
    await expectStillWriting(acked);
  });

  it('a source worker killed (SIGKILL) during the mirror is restarted: the retried Perform finds the mirrors running and the migration completes', async () => {
    const dest = join(dirB, 'full.qcow2');
    const source = cluster.hosts.get(A)!;
    const handle = await startMigration(
      cluster.client,
      input(A, B, ['live', 'copy-storage-all'], { destinationXml: await migratableXmlWith(A, dest), bandwidthMiBps: 1 }),
    );
    await waitFor(
      'the disk mirror under way',
      async () => {
        const hb = (await performHeartbeat(handle)) as (MigrationHeartbeat & { phase?: string }) | undefined;
        return hb?.phase === STORAGE_COPY_PHASE && (hb.progress.diskProcessedBytes ?? 0) > 0 ? hb : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    const qemuBefore = localWorldOf(cluster).qemu;
    await source.worker!.kill9();
    await cluster.startHost(A);
    // The QEMUs outlived the worker; the retried Perform takes the limit off so the copy ends soon.
    expect(localWorldOf(cluster).qemu).toEqual(qemuBefore);
    // Until the retried Perform holds the job again the restarted worker has no job to change: wait for its first heartbeat.
    const restartedAt = Date.now();
    await waitFor(
      'a heartbeat of the retried Perform',
      async () => {
        const d = await handle.describe();
        return (d.raw.pendingActivities ?? []).some(
          (a) =>
            String(a.activityType?.name) === 'migratePerform' &&
            (a.attempt ?? 1) >= 2 &&
            Number(a.lastHeartbeatTime?.seconds ?? 0) * 1000 + Math.floor((a.lastHeartbeatTime?.nanos ?? 0) / 1e6) > restartedAt,
        )
          ? true
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    await handle.executeUpdate(setSpeedUpdate, { args: [0] });
    expect((await handle.result()).destination).toMatchObject({ state: 'running', host: B });
    const acked = await expectAckedOn(dest, 'after copy-storage-all A -> B with a source worker restart');
    await expectStillWriting(acked);
    const onB = domainOf(await cluster.op(B, { op: 'info', name: NAME }));
    expect(localWorldOf(cluster).qemu).toEqual([onB.pid]);
    expect(domainOf(await cluster.op(B, { op: 'destroy', name: NAME })).state).toBe('shutoff');
  });
});
