// Issue 7's fault matrix for live migration: each cell fails one component at
// one exact phase of a v3 migration (a "hold" fault point keeps the step there
// while the fault is injected), restarts what crashed the way a supervisor
// would, lets the job run to a terminal state on its own, and checks design §5
// by looking at the machine: exactly one QEMU runs the domain (or none, when
// the fault killed the domain's only QEMU), no stray QEMU, socket, status file,
// RAM file, migration record or listening migration port, and a failed job
// carries the first real error with its phase. The file runs its own Temporal
// dev server so one column can stop and restart it on the same database.
// Issue 14's storage cells (helpers/fault-matrix/storage-cells.ts) run on the
// same cluster: fm-a and fm-b share a lockspace and have TLS certificates.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outcomeOf, type Observed } from './helpers/case-table.js';
import { domainOf, startMigration } from './helpers/migration.js';
import { fillRandom } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { withDeadline } from './helpers/qemu-process.js';
import { magicOf, startJob } from './helpers/save.js';
import { Holds, type Reached } from './helpers/fault-matrix/holds.js';
import { clusterQemus, domainWorld, type DomainWorld } from './helpers/fault-matrix/inspect.js';
import { OwnServer, OwnServerCluster } from './helpers/fault-matrix/own-server.js';
import { createNetnsPair, type NetnsPair } from './helpers/netns.js';
import { forwardTcp, type TcpForward } from './helpers/tcp-forward.js';
import { MatrixTable } from './helpers/fault-matrix/table.js';
import { waitFor } from '../src/support/wait.js';
import { freePort } from '../src/local/free-port.js';
import { makeCa, makeHostCert, tunnelEnv } from './helpers/tunnel-certs.js';
import { runStorageCell, STORAGE_POINT_NAMES, storageCells as storageCells0 } from './helpers/fault-matrix/storage-cells.js';

// A killed control worker's workflows wait on its sticky queue; 1 s instead of 10 s per control-kill cell.
const CONTROL_ENV = { VMFERRY_STICKY_QUEUE_TIMEOUT_MS: '1000' };
const MiB = 1024 * 1024;
const A = 'fm-a';
const B = 'fm-b';
/** Hosts in two network namespaces, for the network cut: the migration link between them is what is cut. */
const NA = 'fm-na';
const NB = 'fm-nb';
const RANGES: Record<string, [number, number]> = { [A]: [51700, 51703], [B]: [51710, 51713], [NA]: [51720, 51723], [NB]: [51730, 51733] };
let net: NetnsPair | undefined;
let relay: TcpForward | undefined;
const POINT_NAMES = ['begin', 'prepare', 'perform', 'perform-late', 'perform-done', 'finish', 'confirm'];
const SAVE_POINT_NAMES = ['before-stream', 'mid-stream', 'after-stream'];
const server = new OwnServer();
let cluster: OwnServerCluster;
const faultRoot = mkdtempSync(join(tmpdir(), 'vmf-fm-faults-'));
const holds = new Holds(new Map([A, B, NA, NB].map((h) => [h, join(faultRoot, h)])));
const table = new MatrixTable();
const images = join(faultRoot, 'images');
const lockspace = join(faultRoot, 'lockspace');

interface Point {
  label: string;
  point: string;
  /** The host whose step holds there. */
  side: 'src' | 'dst';
  /** A speed limit keeps the stream in flight while the fault lands. */
  bandwidthMiBps?: number;
}

const POINTS: Point[] = [
  { label: 'Begin', point: 'migrate.begin', side: 'src' },
  { label: 'Prepare', point: 'migrate.prepare', side: 'dst' },
  { label: 'Perform early', point: 'migrate.perform', side: 'src', bandwidthMiBps: 16 },
  { label: 'Perform late', point: 'migrate.perform-late', side: 'src', bandwidthMiBps: 16 },
  { label: 'Perform→Finish', point: 'migrate.perform-done', side: 'src' },
  { label: 'Finish', point: 'migrate.finish', side: 'dst' },
  { label: 'Confirm', point: 'migrate.confirm', side: 'src' },
];

type Fault = 'kill -9 src worker' | 'kill -9 dst worker' | 'kill -9 control' | 'restart Temporal' | 'kill -9 src QEMU' | 'kill -9 dst QEMU' | 'cut network';
const FAULTS: Fault[] = [
  'kill -9 src worker',
  'kill -9 dst worker',
  'kill -9 control',
  'restart Temporal',
  'kill -9 src QEMU',
  'kill -9 dst QEMU',
  'cut network',
];
/** The stall detector's limit on the namespaced hosts: a cut link stalls TCP without an error. */
const STALL_MS = 5000;

type Where = 'dst' | 'src' | 'none';
interface Expected {
  where: Where;
  /** The phase the job fails in; undefined: it succeeds. */
  failedAt?: string;
  /** The fault cannot exist at this point; the outcome is still checked. */
  na?: string;
  note?: string;
}

/** What design §5 asks of each cell, and why where it is not "the migration completes". */
function expectedOf(fault: Fault, p: Point): Expected {
  switch (fault) {
    case 'kill -9 src worker':
    case 'kill -9 dst worker':
    case 'kill -9 control':
    case 'restart Temporal':
      // Restarted, the component picks its step up again (records on disk, QEMU outlives the worker) and the job completes.
      return { where: 'dst' };
    case 'kill -9 src QEMU':
      switch (p.label) {
        case 'Begin':
          // Begin applies the speed and downtime limits over QMP after the held point.
          return { where: 'none', failedAt: 'begin' };
        case 'Prepare':
          return { where: 'none', failedAt: 'perform', note: 'the source QEMU is found dead when Perform starts' };
        case 'Perform early':
        case 'Perform late':
          return { where: 'none', failedAt: 'perform' };
        default:
          // The stream had completed: the destination holds the whole guest and goes on.
          return {
            where: 'dst',
            note:
              p.label === 'Perform→Finish'
                ? 'the stream was complete: the destination holds the whole guest, so losing the paused source costs nothing'
                : undefined,
          };
      }
    case 'kill -9 dst QEMU':
      switch (p.label) {
        case 'Begin':
          return { where: 'dst', na: 'no destination QEMU exists during Begin' };
        case 'Prepare':
          return { where: 'src', failedAt: 'prepare' };
        case 'Perform early':
        case 'Perform late':
          return { where: 'src', failedAt: 'perform' };
        case 'Perform→Finish':
        case 'Finish':
          return { where: 'src', failedAt: 'finish' };
        default:
          return {
            where: 'none',
            note: 'the destination already ran the guest when its QEMU was killed; Confirm stops the source as asked: the domain is gone, never twice',
          };
      }
    case 'cut network':
      switch (p.label) {
        case 'Begin':
        case 'Prepare':
          return { where: 'src', failedAt: 'perform', note: 'the link stays cut: QEMU cannot reach the destination when Perform starts the stream' };
        case 'Perform early':
        case 'Perform late':
          return {
            where: 'src',
            failedAt: 'perform',
            note: `a cut link stalls the stream without an error; Perform gives up after the stall limit (${STALL_MS / 1000} s here, VMFERRY_MIGRATION_STALL_TIMEOUT_MS, default 60 s)`,
          };
        default:
          return {
            where: 'dst',
            note: p.label === 'Perform→Finish' ? 'the stream was complete; the steps after it talk through Temporal, not the cut link' : undefined,
          };
      }
  }
}

function describeExpected(e: Expected): string {
  const where = e.where === 'dst' ? 'runs on dst' : e.where === 'src' ? 'runs on src' : 'gone';
  return `${where}, ${e.failedAt ? `fails at ${e.failedAt}` : 'job ok'}`;
}

/** The source and destination a cell migrates between. */
function pairOf(fault: Fault): [string, string] {
  return fault === 'cut network' ? [NA, NB] : [A, B];
}

function whereOf(w: DomainWorld, [src, dst]: [string, string]): Where | string {
  const a = w.qemu.get(src)!.length;
  const b = w.qemu.get(dst)!.length;
  if (a === 0 && b === 1) return 'dst';
  if (a === 1 && b === 0) return 'src';
  if (a === 0 && b === 0) return 'none';
  return `${a} QEMU on src, ${b} on dst`;
}

/** Everything in the world that the expected end state does not explain. */
function leftovers(w: DomainWorld, name: string, uuid: string, where: Where | string, [src, dst]: [string, string]): string[] {
  const out: string[] = [];
  for (const host of [src, dst]) {
    const runs = (where === 'src' && host === src) || (where === 'dst' && host === dst);
    const wantRun = runs ? [`${name}.qmp`, `${name}.xml`] : [];
    const extraRun = w.run.get(host)!.filter((f) => !wantRun.includes(f));
    const extraShm = w.shm.get(host)!.filter((f) => !(runs && f === `${uuid}.ram`));
    if (extraRun.length > 0) out.push(`${host} run: ${extraRun.join(' ')}`);
    if (extraShm.length > 0) out.push(`${host} shm: ${extraShm.join(' ')}`);
  }
  if (w.listening.length > 0) out.push(`listening: ${w.listening.join(' ')}`);
  for (const [host, procs] of w.helpers) if (procs.length > 0) out.push(`${host} children: ${procs.join(' ')}`);
  if (w.strays.length > 0) out.push(`stray QEMU ${w.strays.join(' ')}`);
  return out;
}

/**
 * The allocator keeps its reservations in memory: a leaked one shows as a later Prepare
 * getting a port above the lowest of the range, which is free again after every cell.
 */
function portLeaks(dst: string, name: string): string[] {
  const lowest = RANGES[dst]![0];
  const uris = (cluster.hosts.get(dst)!.worker?.logs ?? [])
    .filter((l) => l.msg === 'incoming migration prepared' && l.domain === name)
    .map((l) => String(l.uri));
  return uris.filter((u) => !u.endsWith(`:${lowest}`)).map((u) => `Prepare got ${u}, not port ${lowest}: a reservation leaked`);
}

function phaseOf(o: Observed): string | undefined {
  return o.type === 'succeeded' ? undefined : /^([a-z-]+): /.exec(o.message ?? '')?.[1];
}

let seq = 0;

async function runCell(fault: Fault, p: Point): Promise<void> {
  const started = Date.now();
  const exp = expectedOf(fault, p);
  const pair = pairOf(fault);
  const [src, dst] = pair;
  const at = p.side === 'src' ? src : dst;
  const name = `fm${seq++}`;
  const uuid = randomUUID();
  await cluster.op(src, { op: 'define', xml: guestXml({ name, uuid, memoryMiB: 64 }) });
  const g = domainOf(await cluster.op(src, { op: 'start', name }));
  fillRandom(g.memoryBackingFile!, 40 * MiB);

  const aimed = holds.aim({ host: at, point: p.point });
  const handle = await startMigration(cluster.client, {
    domain: name,
    domainUuid: uuid,
    sourceHost: src,
    destinationHost: dst,
    flags: ['live'],
    ...(p.bandwidthMiBps ? { bandwidthMiBps: p.bandwidthMiBps } : {}),
  });
  const result = outcomeOf(handle.result());
  let na = exp.na;
  let injected = 'not reached';
  const reached = await withDeadline(Promise.race([aimed, result.then(() => undefined)]), 60_000, `${p.point} on ${at} not reached within 60 s`);
  if (reached) injected = await injectFault(fault, uuid, reached);
  holds.release();
  if (injected === 'n/a') na ??= 'nothing to kill at this point';

  const outcome = await withDeadline(result, 150_000, `the job did not end within 150 s of the fault (${fault} at ${p.label})`).finally(() => {
    if (fault === 'cut network') net!.restore();
  });
  const ranges = [RANGES[src]!, RANGES[dst]!];
  // The job has ended; what it left behind is cleaned by its own steps, or by a reaper within seconds.
  let world = domainWorld(cluster, pair, uuid, ranges);
  await waitFor(
    'the world to settle',
    () => {
      world = domainWorld(cluster, pair, uuid, ranges);
      return whereOf(world, pair) === exp.where && leftovers(world, name, uuid, exp.where, pair).length === 0;
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  ).catch(() => undefined);

  const where = whereOf(world, pair);
  const extra = [...leftovers(world, name, uuid, where, pair), ...portLeaks(dst, name)];
  const phase = phaseOf(outcome);
  const typed = outcome.type === 'succeeded' || !outcome.type.startsWith('untyped');
  let state: string | undefined;
  if (where === 'src' || where === 'dst') {
    const info = domainOf(await cluster.op(where === 'src' ? src : dst, { op: 'info', name }));
    state = info.state;
  }
  const observed = [
    where === 'dst' ? 'runs on dst' : where === 'src' ? 'runs on src' : where === 'none' ? 'gone' : where,
    state && state !== 'running' ? `(${state})` : '',
    outcome.type === 'succeeded' ? ', job ok' : `, fails at ${phase ?? '?'} (${outcome.type}: ${(outcome.message ?? '').replace(/^[a-z-]+: /, '')})`,
    extra.length > 0 ? `; LEFT: ${extra.join('; ')}` : '',
  ].join('');
  const pass = where === exp.where && (state === undefined || state === 'running') && phase === exp.failedAt && typed && extra.length === 0;
  table.add({
    fault,
    point: p.label,
    expected: describeExpected(exp),
    observed,
    result: pass ? (na ? 'n/a' : 'PASS') : 'FAIL',
    note: [na, exp.note].filter(Boolean).join('; ') || undefined,
    seconds: (Date.now() - started) / 1000,
  });

  await cluster.removeAllDomains(pair);
  expect(pass, `${fault} at ${p.label} (${injected}; points passed: ${holds.passed.join(' ')}): expected ${describeExpected(exp)}, observed ${observed}`).toBe(
    true,
  );
}

/** Injects the fault while the step holds; restarts what crashed. Returns what was done, or 'n/a'. */
async function injectFault(fault: Fault, uuid: string, r?: Reached): Promise<string> {
  switch (fault) {
    case 'kill -9 src worker':
    case 'kill -9 dst worker': {
      const host = fault === 'kill -9 src worker' ? A : B;
      await cluster.hosts.get(host)!.worker!.kill9();
      holds.release(); // the dead worker's marker; the restarted worker's retry passes
      await cluster.startHost(host);
      return 'killed';
    }
    case 'kill -9 control':
      await cluster.control!.kill9();
      holds.release();
      await cluster.startControl(CONTROL_ENV);
      return 'killed';
    case 'restart Temporal':
      await server.restart();
      return 'restarted';
    case 'kill -9 src QEMU':
    case 'kill -9 dst QEMU': {
      const host = fault === 'kill -9 src QEMU' ? A : B;
      const pids = domainWorld(cluster, [host], uuid, []).qemu.get(host)!;
      if (pids.length === 0) return 'n/a';
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      return `killed QEMU ${pids.join(' ')}${r ? ` while ${r.host} held at ${r.point}` : ''}`;
    }
    case 'cut network':
      net!.cut(); // restored once the job has ended
      return 'cut the migration link';
  }
}

beforeAll(async () => {
  await server.start();
  cluster = new OwnServerCluster(server.address);
  await cluster.connect();
  const faults = [...POINT_NAMES, ...STORAGE_POINT_NAMES]
    .map((n) => `migrate.${n}=hold`)
    .concat(SAVE_POINT_NAMES.map((n) => `save.${n}=hold`))
    .join(',');
  // fm-a and fm-b also hold disk leases in one lockspace and have TLS certificates, for the storage cells.
  const ca = makeCa(faultRoot, 'fm-ca');
  const tls = new Map(await Promise.all([A, B].map(async (h) => [h, tunnelEnv(`127.0.0.1:${await freePort()}`, makeHostCert(faultRoot, ca, h))] as const)));
  await Promise.all([
    ...[A, B].map((h) =>
      cluster.startHost(h, {
        ...tls.get(h)!,
        VMFERRY_LOCKSPACE_DIR: lockspace,
        VMFERRY_FAULTS: faults,
        VMFERRY_FAULT_DIR: holds.dirs.get(h)!,
        VMFERRY_HOST_MIGRATION_PORT_MIN: String(RANGES[h]![0]),
        VMFERRY_HOST_MIGRATION_PORT_MAX: String(RANGES[h]![1]),
        VMFERRY_AUTO_DESTROY_INTERVAL_MS: '500',
      }),
    ),
    cluster.startControl(CONTROL_ENV),
  ]);
  // Two more hosts, each inside its own network namespace: the migration link between them
  // is what the network column cuts; each reaches this file's Temporal through a relay.
  net = createNetnsPair();
  relay = await forwardTcp([net.mgmtRootA, net.mgmtRootB], { host: '127.0.0.1', port: Number(server.address.split(':')[1]) });
  await Promise.all(
    (
      [
        [NA, net.a, net.addrA, net.mgmtRootA],
        [NB, net.b, net.addrB, net.mgmtRootB],
      ] as const
    ).map(([h, ns, addr, via]) =>
      cluster.startHost(
        h,
        {
          VMFERRY_FAULTS: faults,
          VMFERRY_FAULT_DIR: holds.dirs.get(h)!,
          VMFERRY_HOST_MIGRATION_ADDRESS: addr,
          VMFERRY_HOST_MIGRATION_PORT_MIN: String(RANGES[h]![0]),
          VMFERRY_HOST_MIGRATION_PORT_MAX: String(RANGES[h]![1]),
          VMFERRY_AUTO_DESTROY_INTERVAL_MS: '500',
          VMFERRY_MIGRATION_STALL_TIMEOUT_MS: String(STALL_MS),
          TEMPORAL_ADDRESS: `${via}:${relay!.port}`,
        },
        { commandPrefix: net!.prefix(ns) },
      ),
    ),
  );
  mkdirSync(images);
  holds.start();
});

afterAll(async () => {
  holds.stop();
  const text = table.format();
  console.log(
    `\nfault matrix: live migration (fm-a -> fm-b; network cut: fm-na -> fm-nb in two network namespaces), save to file (on fm-a) and storage migration (copy-storage-all fm-a -> fm-b, 64 MiB qcow2 with 48 MiB random); 64 MiB guests, 40 MiB random RAM (storage cells: idle RAM)\n${text}`,
  );
  table.write(join('test-artifacts', 'fault-matrix.txt'));
  await cluster?.removeAllDomains([A, B, NA, NB]).catch(() => undefined);
  const stray = cluster ? clusterQemus(cluster) : [];
  await cluster?.stop();
  await relay?.close();
  net?.destroy();
  await server.stop();
  rmSync(faultRoot, { recursive: true, force: true });
  expect(stray, 'QEMUs the matrix left').toEqual([]);
});

// ---- save to file, on fm-a ----

type SaveFault = 'kill -9 host worker' | 'kill -9 control' | 'restart Temporal' | 'kill -9 QEMU';
const SAVE_FAULTS: SaveFault[] = ['kill -9 host worker', 'kill -9 control', 'restart Temporal', 'kill -9 QEMU'];
const SAVE_POINTS: Array<{ label: string; point: string }> = [
  { label: 'save: before', point: 'save.before-stream' },
  { label: 'save: mid', point: 'save.mid-stream' },
  { label: 'save: after', point: 'save.after-stream' },
];

/** image: a complete image and no QEMU; running: no image, the guest runs on; none: neither. */
type SaveEnd = 'image' | 'running' | 'none';
interface SaveExpected {
  end: SaveEnd;
  failedAt?: string;
  note?: string;
}

function saveExpectedOf(fault: SaveFault, point: string): SaveExpected {
  switch (fault) {
    case 'kill -9 host worker':
      return { end: 'image', note: SAVE_WORKER_NOTE };
    case 'kill -9 control':
    case 'restart Temporal':
      return { end: 'image' };
    case 'kill -9 QEMU':
      // After the stream the image holds all of QEMU's state: only the header's final magic was missing.
      return point === 'save.after-stream'
        ? { end: 'image', note: 'the stream was complete and flushed when QEMU died: the image is whole' }
        : { end: 'none', failedAt: 'perform' };
  }
}

const SAVE_WORKER_NOTE =
  'the restarted worker rolls back the save the killed one left (partial image removed, guest resumed), then the retried step saves again from the start';

function endLabel(end: SaveEnd | string): string {
  return end === 'image' ? 'image complete, no QEMU' : end === 'running' ? 'no image, guest runs' : end === 'none' ? 'no image, no QEMU' : end;
}

function describeSave(e: { end: SaveEnd; failedAt?: string }): string {
  return `${endLabel(e.end)}, ${e.failedAt ? `fails at ${e.failedAt}` : 'job ok'}`;
}

async function runSaveCell(fault: SaveFault, p: { label: string; point: string }): Promise<void> {
  const started = Date.now();
  const exp = saveExpectedOf(fault, p.point);
  const name = `fm${seq++}`;
  const uuid = randomUUID();
  await cluster.op(A, { op: 'define', xml: guestXml({ name, uuid, memoryMiB: 64 }) });
  const g = domainOf(await cluster.op(A, { op: 'start', name }));
  fillRandom(g.memoryBackingFile!, 40 * MiB);
  const path = join(images, `${name}.img`);

  const aimed = holds.aim({ host: A, point: p.point });
  const handle = await startJob(cluster.client, 'save', uuid, { host: A, name, path, format: 'raw' });
  const result = outcomeOf(handle.result());
  let injected = 'not reached';
  const reached = await withDeadline(Promise.race([aimed, result.then(() => undefined)]), 60_000, `${p.point} not reached within 60 s`);
  if (reached) injected = await injectSave(fault, uuid);
  holds.release();
  const outcome = await withDeadline(result, 150_000, `the save did not end within 150 s of the fault (${fault} at ${p.label})`);

  const look = (): { end: SaveEnd | string; extra: string[] } => {
    const w = domainWorld(cluster, [A], uuid, [RANGES[A]!]);
    const qemus = w.qemu.get(A)!.length;
    const magic = existsSync(path) ? magicOf(path) : undefined;
    const end =
      qemus === 0 && magic === 'LibvirtQemudSave'
        ? 'image'
        : qemus === 1 && magic === undefined
          ? 'running'
          : qemus === 0 && magic === undefined
            ? 'none'
            : `${qemus} QEMU, image ${magic ?? 'absent'}`;
    const runs = end === 'running';
    const extra = [
      ...w.run
        .get(A)!
        .filter((f) => !(runs && (f === `${name}.qmp` || f === `${name}.xml`)))
        .map((f) => `run: ${f}`),
      ...w.shm
        .get(A)!
        .filter((f) => !(runs && f === `${uuid}.ram`))
        .map((f) => `shm: ${f}`),
      ...readdirSync(images)
        .filter((f) => f !== `${name}.img`)
        .map((f) => `images: ${f}`),
      ...w.helpers.get(A)!.map((c) => `child: ${c}`),
      ...w.strays.map((pid) => `stray QEMU ${pid}`),
    ];
    return { end, extra };
  };
  let seen = look();
  await waitFor(
    'the world to settle',
    () => {
      seen = look();
      return seen.end === exp.end && seen.extra.length === 0;
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  ).catch(() => undefined);
  const phase = phaseOf(outcome);
  const state = seen.end === 'running' ? domainOf(await cluster.op(A, { op: 'info', name })).state : undefined;
  const observed = [
    endLabel(seen.end),
    state && state !== 'running' ? ` (${state})` : '',
    outcome.type === 'succeeded' ? ', job ok' : `, fails at ${phase ?? '?'} (${outcome.type}: ${(outcome.message ?? '').replace(/^[a-z-]+: /, '')})`,
    seen.extra.length > 0 ? `; LEFT: ${seen.extra.join('; ')}` : '',
  ].join('');
  const typed = outcome.type === 'succeeded' || !outcome.type.startsWith('untyped');
  const pass = seen.end === exp.end && (state === undefined || state === 'running') && phase === exp.failedAt && typed && seen.extra.length === 0;
  table.add({
    fault,
    point: p.label,
    expected: describeSave(exp),
    observed,
    result: pass ? 'PASS' : 'FAIL',
    note: exp.note,
    seconds: (Date.now() - started) / 1000,
  });
  rmSync(path, { force: true });
  await cluster.removeAllDomains([A]);
  expect(pass, `${fault} at ${p.label} (${injected}; points passed: ${holds.passed.join(' ')}): expected ${describeSave(exp)}, observed ${observed}`).toBe(
    true,
  );
}

async function injectSave(fault: SaveFault, uuid: string): Promise<string> {
  switch (fault) {
    case 'kill -9 host worker':
      return await injectFault('kill -9 src worker', uuid);
    case 'kill -9 control':
      return await injectFault('kill -9 control', uuid);
    case 'restart Temporal':
      return await injectFault('restart Temporal', uuid);
    case 'kill -9 QEMU':
      return await injectFault('kill -9 src QEMU', uuid);
  }
}

const ONLY = process.env.FM_ONLY;
const saveCells = SAVE_FAULTS.flatMap((fault) => SAVE_POINTS.map((p) => ({ fault, p, id: `${fault} @ ${p.label}` }))).filter(
  (c) => !ONLY || c.id.includes(ONLY),
);
const migrationCells = FAULTS.flatMap((fault) => POINTS.map((p) => ({ fault, p, id: `${fault} @ ${p.label}` }))).filter((c) => !ONLY || c.id.includes(ONLY));
describe.skipIf(saveCells.length === 0)('fault matrix: save to file', () => {
  for (const c of saveCells) it(c.id, async () => await runSaveCell(c.fault, c.p), 240_000);
});

describe.skipIf(migrationCells.length === 0)('fault matrix: live migration', () => {
  for (const c of migrationCells) it(c.id, async () => await runCell(c.fault, c.p), 240_000);
});

// Storage migration (copy-storage-all, fm-a -> fm-b, unshared image directories).
const storageCells = storageCells0().filter((c) => !ONLY || c.id.includes(ONLY));
describe.skipIf(storageCells.length === 0)('fault matrix: storage migration', () => {
  for (const c of storageCells) {
    it(
      c.id,
      async () => {
        const r = await runStorageCell(
          {
            cluster,
            holds,
            table,
            src: A,
            dst: B,
            ranges: [RANGES[A]!, RANGES[B]!],
            dirs: { src: join(faultRoot, 'disks-a'), dst: join(faultRoot, 'disks-b') },
            lockspace,
            inject: async (fault) => await injectFault(fault, ''),
          },
          c.fault,
          c.p,
        );
        expect(r.pass, r.message).toBe(true);
      },
      240_000,
    );
  }
});
