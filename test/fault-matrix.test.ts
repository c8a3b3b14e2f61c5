// Issue 7's fault matrix for live migration: each cell fails one component at
// one exact phase of a v3 direct migration (a "hold" fault point keeps the step
// there while the fault is injected), restarts what crashed the way a supervisor
// would, lets the job run to a terminal state on its own, and checks design §5
// by looking at the machine (helpers/fault-matrix/migration-cells.ts). The file
// runs its own Temporal dev server so one column can stop and restart it on the
// same database. Issue 14's storage cells (helpers/fault-matrix/storage-cells.ts)
// and the save-to-file cells run on the same cluster. The tunnelled, v2 and
// post-copy families are in fault-matrix-protocols.test.ts, on a cluster of their own.
// FM_ONLY=<part of a cell's id> runs only the cells whose id contains it.
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outcomeOf } from './helpers/case-table.js';
import { domainOf } from './helpers/migration.js';
import { fillRandom } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { withDeadline } from './helpers/qemu-process.js';
import { magicOf, startJob } from './helpers/save.js';
import { domainWorld } from './helpers/fault-matrix/inspect.js';
import { A, B, Matrix, type Fault } from './helpers/fault-matrix/matrix.js';
import { expectedOf, phaseOf, POINTS, runCell } from './helpers/fault-matrix/migration-cells.js';
import { waitFor } from '../src/support/wait.js';
import { runStorageCell, storageCells as storageCells0 } from './helpers/fault-matrix/storage-cells.js';

const MiB = 1024 * 1024;
const FAULTS: Fault[] = [
  'kill -9 src worker',
  'kill -9 dst worker',
  'kill -9 control',
  'restart Temporal',
  'kill -9 src QEMU',
  'kill -9 dst QEMU',
  'cut network',
];
// fm-a, fm-b and (network cut) fm-na, fm-nb in two namespaces; ports 51700-51733.
const m = new Matrix({ portBase: 51700, netns: true });

beforeAll(async () => await m.start());

afterAll(async () => {
  const stray = await m.stop(
    'fault matrix: live migration (fm-a -> fm-b; network cut: fm-na -> fm-nb in two network namespaces), save to file (on fm-a) and storage migration (copy-storage-all fm-a -> fm-b, 64 MiB qcow2 with 48 MiB random); 64 MiB guests, 40 MiB random RAM (storage cells: idle RAM)',
    'fault-matrix.txt',
  );
  expect(stray, 'QEMUs the matrix left').toEqual([]);
});

let seq = 0;

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
  await m.cluster.op(A, { op: 'define', xml: guestXml({ name, uuid, memoryMiB: 64 }) });
  const g = domainOf(await m.cluster.op(A, { op: 'start', name }));
  fillRandom(g.memoryBackingFile!, 40 * MiB);
  const path = join(m.images, `${name}.img`);

  const aimed = m.holds.aim({ host: A, point: p.point });
  const handle = await startJob(m.cluster.client, 'save', uuid, { host: A, name, path, format: 'raw' });
  const result = outcomeOf(handle.result());
  let injected = 'not reached';
  const reached = await withDeadline(Promise.race([aimed, result.then(() => undefined)]), 60_000, `${p.point} not reached within 60 s`);
  if (reached) injected = await injectSave(fault, uuid);
  m.holds.release();
  const outcome = await withDeadline(result, 150_000, `the save did not end within 150 s of the fault (${fault} at ${p.label})`);

  const look = (): { end: SaveEnd | string; extra: string[] } => {
    const w = domainWorld(m.cluster, [A], uuid, [m.ranges[A]!]);
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
      ...readdirSync(m.images)
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
  const state = seen.end === 'running' ? domainOf(await m.cluster.op(A, { op: 'info', name })).state : undefined;
  const observed = [
    endLabel(seen.end),
    state && state !== 'running' ? ` (${state})` : '',
    outcome.type === 'succeeded' ? ', job ok' : `, fails at ${phase ?? '?'} (${outcome.type}: ${(outcome.message ?? '').replace(/^[a-z-]+: /, '')})`,
    seen.extra.length > 0 ? `; LEFT: ${seen.extra.join('; ')}` : '',
  ].join('');
  const typed = outcome.type === 'succeeded' || !outcome.type.startsWith('untyped');
  const pass = seen.end === exp.end && (state === undefined || state === 'running') && phase === exp.failedAt && typed && seen.extra.length === 0;
  m.table.add({
    fault,
    point: p.label,
    expected: describeSave(exp),
    observed,
    result: pass ? 'PASS' : 'FAIL',
    note: exp.note,
    seconds: (Date.now() - started) / 1000,
  });
  rmSync(path, { force: true });
  await m.cluster.removeAllDomains([A]);
  expect(pass, `${fault} at ${p.label} (${injected}; points passed: ${m.holds.passed.join(' ')}): expected ${describeSave(exp)}, observed ${observed}`).toBe(
    true,
  );
}

async function injectSave(fault: SaveFault, uuid: string): Promise<string> {
  switch (fault) {
    case 'kill -9 host worker':
      return await m.inject('kill -9 src worker', uuid);
    case 'kill -9 control':
      return await m.inject('kill -9 control', uuid);
    case 'restart Temporal':
      return await m.inject('restart Temporal', uuid);
    case 'kill -9 QEMU':
      return await m.inject('kill -9 src QEMU', uuid);
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
  for (const c of migrationCells)
    it(
      c.id,
      async () => {
        const r = await runCell(m, c.fault, c.p, expectedOf(c.fault, c.p));
        expect(r.pass, r.message).toBe(true);
      },
      240_000,
    );
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
            cluster: m.cluster,
            holds: m.holds,
            table: m.table,
            src: A,
            dst: B,
            ranges: [m.ranges[A]!, m.ranges[B]!],
            dirs: { src: join(m.root, 'disks-a'), dst: join(m.root, 'disks-b') },
            lockspace: m.lockspace,
            inject: async (fault) => await m.inject(fault, ''),
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
