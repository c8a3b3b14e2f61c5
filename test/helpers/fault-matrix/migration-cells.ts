// A live-migration cell of the fault matrix: one component failed at one exact
// phase (a "hold" fault point keeps the step there while the fault is injected),
// what crashed restarted the way a supervisor would, the job left to end on its
// own; then the machine is looked at (design §5): exactly one QEMU runs the domain
// (or none, when the fault killed its only QEMU), no stray QEMU, socket, status
// file, RAM file, job record, listening migration port or port reservation, and a
// failed job carries the first real error with its phase. The v3 direct cells and
// the tunnelled and v2 families run through here with their flags and protocol.
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { MigrateFlag, MigrationProtocol } from '../../../src/common/migration-types.js';
import { waitFor } from '../../../src/support/wait.js';
import { outcomeOf, type Observed } from '../case-table.js';
import { fillRandom } from '../guest-memory.js';
import { guestXml } from '../guest-xml.js';
import { domainOf, startMigration } from '../migration.js';
import { withDeadline } from '../qemu-process.js';
import { domainWorld, type DomainWorld } from './inspect.js';
import { A, B, NA, NB, STALL_MS, type Fault, type Matrix } from './matrix.js';

const MiB = 1024 * 1024;

export interface Point {
  label: string;
  point: string;
  /** The host whose step holds there. */
  side: 'src' | 'dst';
  /** A speed limit keeps the stream in flight while the fault lands. */
  bandwidthMiBps?: number;
}

export const POINTS: Point[] = [
  { label: 'Begin', point: 'migrate.begin', side: 'src' },
  { label: 'Prepare', point: 'migrate.prepare', side: 'dst' },
  { label: 'Perform early', point: 'migrate.perform', side: 'src', bandwidthMiBps: 16 },
  { label: 'Perform late', point: 'migrate.perform-late', side: 'src', bandwidthMiBps: 16 },
  { label: 'Perform→Finish', point: 'migrate.perform-done', side: 'src' },
  { label: 'Finish', point: 'migrate.finish', side: 'dst' },
  { label: 'Confirm', point: 'migrate.confirm', side: 'src' },
];

export function pointOf(label: string): Point {
  return POINTS.find((p) => p.label === label)!;
}

type Where = 'dst' | 'src' | 'none';
export interface Expected {
  where: Where;
  /** The phase the job fails in; undefined: it succeeds. */
  failedAt?: string;
  /** The fault cannot exist at this point; the outcome is still checked. */
  na?: string;
  note?: string;
}

/** How a cell migrates besides v3 direct live: a family of the matrix. */
export interface Family {
  /** Shown after the fault in the table ('tunnelled', 'v2'); none for v3 direct. */
  name?: string;
  flags?: MigrateFlag[];
  maxProtocol?: MigrationProtocol;
  /** Also check that neither host keeps the job's record (state/jobs/<name>.json) once the job has ended. */
  records?: boolean;
}

export function describeExpected(e: Expected): string {
  const where = e.where === 'dst' ? 'runs on dst' : e.where === 'src' ? 'runs on src' : 'gone';
  return `${where}, ${e.failedAt ? `fails at ${e.failedAt}` : 'job ok'}`;
}

/** The source and destination a cell migrates between. */
function pairOf(fault: Fault): [string, string] {
  return fault === 'cut network' ? [NA, NB] : [A, B];
}

export function whereOf(w: DomainWorld, [src, dst]: [string, string]): Where | string {
  const a = w.qemu.get(src)!.length;
  const b = w.qemu.get(dst)!.length;
  if (a === 0 && b === 1) return 'dst';
  if (a === 1 && b === 0) return 'src';
  if (a === 0 && b === 0) return 'none';
  return `${a} QEMU on src, ${b} on dst`;
}

/** Everything in the world that the expected end state does not explain. */
export function leftovers(
  m: Matrix,
  w: DomainWorld,
  name: string,
  uuid: string,
  where: Where | string,
  [src, dst]: [string, string],
  records = false,
): string[] {
  const out: string[] = [];
  for (const host of [src, dst]) {
    const runs = (where === 'src' && host === src) || (where === 'dst' && host === dst);
    const wantRun = runs ? [`${name}.qmp`, `${name}.xml`] : [];
    const extraRun = w.run.get(host)!.filter((f) => !wantRun.includes(f));
    const extraShm = w.shm.get(host)!.filter((f) => !(runs && f === `${uuid}.ram`));
    if (extraRun.length > 0) out.push(`${host} run: ${extraRun.join(' ')}`);
    if (extraShm.length > 0) out.push(`${host} shm: ${extraShm.join(' ')}`);
    // The job's record (state/jobs/<name>.json) goes when the job ends on that host.
    if (records && existsSync(join(m.cluster.hosts.get(host)!.baseDir, 'state', 'jobs', `${name}.json`))) out.push(`${host} job record ${name}.json`);
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
export function portLeaks(m: Matrix, dst: string, name: string): string[] {
  const lowest = m.ranges[dst]![0];
  const uris = (m.cluster.hosts.get(dst)!.worker?.logs ?? [])
    .filter((l) => l.msg === 'incoming migration prepared' && l.domain === name)
    .map((l) => String(l.uri));
  return uris.filter((u) => !u.endsWith(`:${lowest}`)).map((u) => `Prepare got ${u}, not port ${lowest}: a reservation leaked`);
}

export function phaseOf(o: Observed): string | undefined {
  return o.type === 'succeeded' ? undefined : /^([a-z-]+): /.exec(o.message ?? '')?.[1];
}

let seq = 0;

/** Runs one cell and adds its row; returns whether it passed and what to say if not. */
export async function runCell(m: Matrix, fault: Fault, p: Point, exp: Expected, family: Family = {}): Promise<{ pass: boolean; message: string }> {
  const { cluster, holds } = m;
  const started = Date.now();
  const pair = pairOf(fault);
  const [src, dst] = pair;
  const at = p.side === 'src' ? src : dst;
  const name = `fm${family.name ? family.name[0] : ''}${seq++}`;
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
    flags: ['live', ...(family.flags ?? [])],
    ...(p.bandwidthMiBps ? { bandwidthMiBps: p.bandwidthMiBps } : {}),
    ...(family.maxProtocol ? { maxProtocol: family.maxProtocol } : {}),
  });
  const result = outcomeOf(handle.result());
  let na = exp.na;
  let injected = 'not reached';
  const reached = await withDeadline(Promise.race([aimed, result.then(() => undefined)]), 60_000, `${p.point} on ${at} not reached within 60 s`);
  if (reached) injected = await m.inject(fault, uuid, reached);
  holds.release();
  if (injected === 'n/a') na ??= 'nothing to kill at this point';

  const outcome = await withDeadline(result, 150_000, `the job did not end within 150 s of the fault (${fault} at ${p.label})`).finally(() => {
    if (fault === 'cut network') m.net!.restore();
  });
  const ranges = [m.ranges[src]!, m.ranges[dst]!];
  // The job has ended; what it left behind is cleaned by its own steps, or by a reaper within seconds.
  let world = domainWorld(cluster, pair, uuid, ranges);
  await waitFor(
    'the world to settle',
    () => {
      world = domainWorld(cluster, pair, uuid, ranges);
      return whereOf(world, pair) === exp.where && leftovers(m, world, name, uuid, exp.where, pair, family.records).length === 0;
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  ).catch(() => undefined);

  const where = whereOf(world, pair);
  const extra = [...leftovers(m, world, name, uuid, where, pair, family.records), ...portLeaks(m, dst, name)];
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
  m.table.add({
    fault: family.name ? `${fault} (${family.name})` : fault,
    point: p.label,
    expected: describeExpected(exp),
    observed,
    result: pass ? (na ? 'n/a' : 'PASS') : 'FAIL',
    note: [na, exp.note].filter(Boolean).join('; ') || undefined,
    seconds: (Date.now() - started) / 1000,
  });

  await cluster.removeAllDomains(pair);
  return {
    pass,
    message: `${fault}${family.name ? ` (${family.name})` : ''} at ${p.label} (${injected}; points passed: ${holds.passed.join(' ')}): expected ${describeExpected(exp)}, observed ${observed}`,
  };
}

/** What design §5 asks of a v3 direct cell, and why where it is not "the migration completes". */
export function expectedOf(fault: Fault, p: Point): Expected {
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
