// The fault matrix's storage cells (issue 14): a copy-storage-all migration of a
// guest whose qcow2 disk lives on the source host only, with one component failed
// while the disk mirror runs (a low speed limit keeps every mirror short of ready
// while the fault lands; the test lifts it afterwards) or at the switchover (the
// source paused before it, every mirror ready, none completed). The job must end on
// its own; then the cell looks at the machine, not at what a worker says: exactly
// one QEMU has the disk open for writing (its descriptors in /proc, and QEMU's own
// image lock as qemu-img meets it), no image is lost (the one the guest runs on
// holds the disk's content, hashed; the source image is intact either way), no
// destination image is left after a rollback, and the lease is held by the running
// copy alone, sampled all along so two holders at any moment would show.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setSpeedUpdate } from '../../../src/common/job-messages.js';
import type { MigrateFlag } from '../../../src/common/migration-types.js';
import { canonicalDiskPath } from '../../../src/host/leases/lockspace.js';
import { waitFor } from '../../../src/support/wait.js';
import { outcomeOf, type Observed } from '../case-table.js';
import { guestXml } from '../guest-xml.js';
import { domainOf, startMigration, type MigrateHandle } from '../migration.js';
import { withDeadline } from '../qemu-process.js';
import type { Holds } from './holds.js';
import { clusterQemus, domainWorld, listeningPorts } from './inspect.js';
import type { OwnServerCluster } from './own-server.js';
import type { MatrixTable } from './table.js';

const MiB = 1024 * 1024;
/** The disk's virtual size, and how much of it holds random data (what the mirror must copy). */
const DISK_MiB = 64;
const DATA_MiB = 48;
/** The mirror's limit while the fault lands: the data takes DATA_MiB seconds, far longer than any fault and restart here. */
const MIRROR_MiBps = 1;

export type StorageFault = 'kill -9 src worker' | 'kill -9 dst worker' | 'kill -9 control' | 'restart Temporal';
export const STORAGE_FAULTS: StorageFault[] = ['kill -9 src worker', 'kill -9 dst worker', 'kill -9 control', 'restart Temporal'];

export interface StoragePoint {
  label: string;
  point: 'migrate.mirror' | 'migrate.switchover';
  tls?: boolean;
}
export const STORAGE_POINTS: StoragePoint[] = [
  { label: 'storage: mirror', point: 'migrate.mirror' },
  { label: 'storage: switchover', point: 'migrate.switchover' },
];

/** Issue 14's retried Perform with --tls: the source worker's cell during the mirror runs with --tls (the TLS objects are set up again by the retry). */
export function storageCells(): Array<{ fault: StorageFault; p: StoragePoint; id: string }> {
  return STORAGE_FAULTS.flatMap((fault) =>
    STORAGE_POINTS.map((p0) => {
      const p = fault === 'kill -9 src worker' && p0.point === 'migrate.mirror' ? { ...p0, tls: true } : p0;
      return { fault, p, id: `${fault} @ ${p.label}${p.tls ? ' (tls)' : ''}` };
    }),
  );
}
export const STORAGE_POINT_NAMES = ['mirror', 'switchover'];

export interface StorageMatrix {
  cluster: OwnServerCluster;
  holds: Holds;
  table: MatrixTable;
  src: string;
  dst: string;
  ranges: Array<[number, number]>;
  /** Each host's image directory (not shared: the destination XML moves the path). */
  dirs: { src: string; dst: string };
  lockspace: string;
  inject: (fault: StorageFault) => Promise<string>;
}

function qemuImg(...args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

let template: { raw: string } | undefined;

/** A qcow2 of the disk's content, a raw file made once (the guest, SeaBIOS finding no bootable disk, only reads it). */
function makeImage(dir: string, path: string): void {
  if (!template) {
    const raw = join(dir, 'template.raw');
    const data = Buffer.alloc(DISK_MiB * MiB);
    randomBytes(DATA_MiB * MiB).copy(data);
    writeFileSync(raw, data);
    template = { raw };
  }
  qemuImg('convert', '-O', 'qcow2', template.raw, path);
}

/** Whether the image holds the disk's content as the guest sees it (read without taking QEMU's lock). */
function holdsContent(image: string): boolean {
  return existsSync(image) && spawnSync('qemu-img', ['compare', '-U', '-q', '-f', 'raw', '-F', 'qcow2', template!.raw, image]).status === 0;
}

/** QEMU's own image lock: qemu-img cannot open an image a QEMU writes. */
function qemuLocked(image: string): boolean {
  const r = spawnSync('qemu-img', ['info', image], { encoding: 'utf8' });
  return r.status !== 0 && /lock/i.test(r.stderr);
}

/** The QEMUs with a descriptor open for writing on `file` (O_WRONLY or O_RDWR in fdinfo's flags). */
function writersOf(pids: number[], file: string): number[] {
  return pids.filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== file) return false;
          const flags = /flags:\s*([0-7]+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
          return flags !== undefined && (parseInt(flags, 8) & 3) !== 0;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

function leaseFile(lockspace: string, image: string): string {
  return join(lockspace, createHash('sha256').update(canonicalDiskPath(image)).digest('hex'));
}

/** The QEMUs holding a lease (a descriptor on the lease file: the worker hands them over locked). */
function leaseHolders(pids: number[], lease: string): number[] {
  return pids.filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`) === lease);
    } catch {
      return false;
    }
  });
}

function leaseFree(lease: string): boolean {
  return spawnSync('flock', ['-n', '-x', lease, 'true']).status === 0;
}

/** The mirrors a retried Perform on the source found running (its 'disk mirrors started' line), if it found any. */
function resumedMirrors(m: StorageMatrix, name: string): Array<{ disk: string; ready: boolean }> | undefined {
  const line = (m.cluster.hosts.get(m.src)!.worker?.logs ?? []).find((l) => l.msg === 'disk mirrors started' && l.domain === name);
  return line?.resumed as Array<{ disk: string; ready: boolean }> | undefined;
}

/** When the source's worker logged every mirror ready for `name` (pino's time), if it did. */
function mirrorsReadyAt(m: StorageMatrix, name: string): number | undefined {
  const line = (m.cluster.hosts.get(m.src)!.worker?.logs ?? []).find((l) => l.msg === 'disk mirrors ready' && l.domain === name);
  return typeof line?.time === 'number' ? line.time : undefined;
}

/**
 * After the fault the limit comes off so the cell does not wait out the copy: setSpeed 0,
 * sent again until the source logs its mirrors ready (a retried Perform must hold the job
 * before the change can reach QEMU) or the job ends.
 */
async function unthrottle(m: StorageMatrix, handle: MigrateHandle, name: string, ended: Promise<unknown>): Promise<void> {
  let done = false;
  void ended.finally(() => (done = true));
  await waitFor(
    'the mirror limit to come off after the fault',
    async () => {
      if (done || mirrorsReadyAt(m, name) !== undefined) return true;
      await handle.executeUpdate(setSpeedUpdate, { args: [0] }).catch(() => undefined);
      return undefined;
    },
    { timeoutMs: 90_000, intervalMs: 500 },
  );
}

let seq = 0;

export async function runStorageCell(m: StorageMatrix, fault: StorageFault, p: StoragePoint): Promise<{ pass: boolean; message: string }> {
  const started = Date.now();
  const { cluster, holds, src, dst } = m;
  const name = `fms${seq++}`;
  const uuid = randomUUID();
  for (const d of [m.dirs.src, m.dirs.dst]) mkdirSync(d, { recursive: true });
  const srcImg = join(m.dirs.src, `${name}.qcow2`);
  const dstImg = join(m.dirs.dst, `${name}.qcow2`);
  makeImage(m.dirs.src, srcImg);
  const disk = `\n    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${srcImg}'/><target dev='vda' bus='virtio'/></disk>`;
  await cluster.op(src, { op: 'define', xml: guestXml({ name, uuid, memoryMiB: 64, extraDevices: disk }) });
  await cluster.op(src, { op: 'start', name });
  const dumped = await cluster.op(src, { op: 'dumpxml', name, migratable: true });
  const destinationXml = ('xml' in dumped ? dumped.xml : '').replace(`<source file='${srcImg}'`, `<source file='${dstImg}'`);

  // Never two lease holders, at any moment of the job.
  const leases = [leaseFile(m.lockspace, srcImg), leaseFile(m.lockspace, dstImg)];
  let mostHolders = 0;
  const sampler = setInterval(() => {
    const pids = clusterQemus(cluster);
    mostHolders = Math.max(mostHolders, new Set(leases.flatMap((l) => leaseHolders(pids, l))).size);
  }, 100);
  try {
    return await migrateAndCheck();
  } finally {
    clearInterval(sampler);
    await cluster.removeAllDomains([src, dst]);
    rmSync(srcImg, { force: true });
    rmSync(dstImg, { force: true });
  }

  async function migrateAndCheck(): Promise<{ pass: boolean; message: string }> {
    const mirror = p.point === 'migrate.mirror';
    const aimed = holds.aim({ host: src, point: p.point });
    const flags: MigrateFlag[] = ['live', 'copy-storage-all', ...(p.tls ? (['tls'] as const) : [])];
    const handle = await startMigration(cluster.client, {
      domain: name,
      domainUuid: uuid,
      sourceHost: src,
      destinationHost: dst,
      flags,
      destinationXml,
      ...(mirror ? { bandwidthMiBps: MIRROR_MiBps } : {}),
    });
    const result = outcomeOf(handle.result());
    let injected = 'not reached';
    let injectedAt: number | undefined;
    try {
      const reached = await withDeadline(Promise.race([aimed, result.then(() => undefined)]), 60_000, `${p.point} on ${src} not reached within 60 s`);
      if (reached) {
        injected = await m.inject(fault);
        injectedAt = Date.now();
        holds.release();
        if (mirror) await unthrottle(m, handle, name, result);
      }
    } finally {
      holds.release();
    }
    const outcome: Observed = await withDeadline(result, 150_000, `the job did not end within 150 s of the fault (${fault} at ${p.label})`);
    // The job has ended: what it left is cleaned by its own steps or a reaper within seconds.
    const look = () => {
      const w = domainWorld(cluster, [src, dst], uuid, m.ranges);
      const pids = clusterQemus(cluster);
      const onSrc = w.qemu.get(src)!;
      const onDst = w.qemu.get(dst)!;
      const where =
        onSrc.length === 0 && onDst.length === 1
          ? 'dst'
          : onSrc.length === 1 && onDst.length === 0
            ? 'src'
            : `${onSrc.length} QEMU on src, ${onDst.length} on dst`;
      const writers = [...writersOf(pids, srcImg).map((pid) => `${pid}:src image`), ...writersOf(pids, dstImg).map((pid) => `${pid}:dst image`)];
      const holders = leases.map((l) => leaseHolders(pids, l));
      return { where, running: [...onSrc, ...onDst], writers, holders, listening: listeningPorts(m.ranges, []), strays: w.strays };
    };
    let seen = look();
    // A destination worker back within its watch's heartbeat timeout (10 s) lets the job complete; one slower to
    // restart (a loaded machine) is a lost destination, and the job rolls back. Either end is checked in full.
    const rolledBack = fault === 'kill -9 dst worker' && outcome.type !== 'succeeded' && /^perform: destination host '.*' was lost/.test(outcome.message ?? '');
    const expectWhere = rolledBack ? 'src' : 'dst';
    await waitFor(
      'the world to settle',
      () => {
        seen = look();
        return seen.where === expectWhere && seen.writers.length === 1 && seen.listening.length === 0 && seen.strays.length === 0;
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    ).catch(() => undefined);
    clearInterval(sampler);

    const problems: string[] = [];
    if (outcome.type !== 'succeeded' && !rolledBack) problems.push(`job failed (${outcome.type}: ${outcome.message})`);
    if (seen.where !== expectWhere) problems.push(`the domain runs: ${seen.where}`);
    const runningPid = seen.running[0];
    const image = seen.where === 'src' ? srcImg : dstImg;
    const other = seen.where === 'src' ? dstImg : srcImg;
    if (seen.writers.length !== 1 || seen.writers[0] !== `${runningPid}:${seen.where === 'src' ? 'src' : 'dst'} image`) {
      problems.push(`writers of the disk: [${seen.writers.join(', ')}], running QEMU ${runningPid}`);
    }
    if (runningPid !== undefined) {
      const info = domainOf(await cluster.op(seen.where === 'src' ? src : dst, { op: 'info', name }));
      if (info.state !== 'running' || info.pid !== runningPid) problems.push(`QEMU says ${info.state} (pid ${info.pid})`);
    }
    if (!qemuLocked(image)) problems.push(`${image} is not locked by QEMU`);
    if (existsSync(other) && qemuLocked(other)) problems.push(`${other} is still locked by a QEMU`);
    if (!holdsContent(srcImg)) problems.push('the source image is not intact');
    if (seen.where === 'dst' && !holdsContent(dstImg)) problems.push('the destination image does not hold the whole disk');
    if (seen.where === 'src' && existsSync(dstImg)) problems.push('the destination image was left behind');
    const [srcHolders, dstHolders] = [seen.holders[0]!, seen.holders[1]!];
    const want = seen.where === 'src' ? [srcHolders, dstHolders] : [dstHolders, srcHolders];
    if (want[0]!.length !== 1 || want[0]![0] !== runningPid || want[1]!.length !== 0) problems.push(`lease holders src [${srcHolders}] dst [${dstHolders}]`);
    if (leaseFree(seen.where === 'src' ? leases[0]! : leases[1]!)) problems.push('the running copy’s lease is free');
    if (mostHolders > 1) problems.push(`${mostHolders} QEMUs held the disk's leases at one moment`);
    if (seen.listening.length > 0) problems.push(`listening: ${seen.listening.join(' ')}`);
    if (seen.strays.length > 0) problems.push(`stray QEMU ${seen.strays.join(' ')}`);
    // The fault landed while the mirror ran: QEMU's mirrors became ready only after it was injected and its component back.
    const readyAt = mirrorsReadyAt(m, name);
    const after =
      readyAt !== undefined && injectedAt !== undefined
        ? `mirrors ready ${((readyAt - injectedAt) / 1000).toFixed(1)} s after the fault`
        : 'mirrors never logged ready';
    if (mirror && !rolledBack && !(readyAt !== undefined && injectedAt !== undefined && readyAt > injectedAt))
      problems.push(`the fault did not land during the mirror: ${after}`);
    // A restarted source worker logs only its own lines: its retried Perform says whether it found the mirrors short of ready.
    const resumed = fault === 'kill -9 src worker' ? resumedMirrors(m, name) : undefined;
    if (mirror && fault === 'kill -9 src worker' && !(resumed?.length === 1 && !resumed[0]!.ready))
      problems.push(`the retried Perform did not find the mirror running and short of ready: ${JSON.stringify(resumed)}`);

    const observed = `${seen.where === 'dst' || seen.where === 'src' ? `runs on ${seen.where}` : seen.where}, ${outcome.type === 'succeeded' ? 'job ok' : `fails (${outcome.type})`}, ${seen.writers.length} writer(s)${problems.length > 0 ? `; ${problems.join('; ')}` : ''}`;
    const pass = problems.length === 0;
    m.table.add({
      fault: `${fault}${p.tls ? ' (tls)' : ''}`,
      point: p.label,
      expected:
        fault === 'kill -9 dst worker'
          ? 'runs on dst, job ok (or rolled back: runs on src, dst image gone), 1 writer'
          : 'runs on dst, job ok, 1 writer, lease on dst',
      observed,
      result: pass ? 'PASS' : 'FAIL',
      note: rolledBack
        ? `rolled back: the restarted destination worker came back after its watch's heartbeat timeout (${outcome.message})`
        : mirror
          ? `${after}${resumed ? `; the retried Perform found ${JSON.stringify(resumed)}` : ''}`
          : undefined,
      seconds: (Date.now() - started) / 1000,
    });
    return { pass, message: `${fault} at ${p.label} (${injected}; points passed: ${holds.passed.join(' ')}): ${observed}` };
  }
}
