// The fault matrix beyond v3 direct (issue 15 item 5), on one cluster of its own
// (helpers/fault-matrix/matrix.ts: fm-a -> fm-b, no namespaces): the families are
//  - tunnelled (--tunnelled, the stream through the host workers' TLS listener): the
//    source, destination and control workers killed mid-Perform, and a worker killed
//    at the boundaries where the tunnel is set up (Prepare), handed over (Perform ->
//    Finish) and taken down (Finish);
//  - v2 (a migration limited to protocol 2): a worker killed in each of its three
//    phases, Prepare2, Perform2 (after the stream, before the source is stopped) and
//    Finish2;
//  - post-copy: either host worker killed after the switch, the guest running on the
//    destination while its pages still come (helpers/fault-matrix/postcopy-cells.ts).
// The cells of the first two run through the same driver as the v3 direct ones
// (migration-cells.ts), also checking that no job record is left on either host.
// FM_ONLY=<part of a cell's id> runs only the cells whose id contains it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Matrix, type Fault } from './helpers/fault-matrix/matrix.js';
import { pointOf, runCell, type Expected, type Family, type Point } from './helpers/fault-matrix/migration-cells.js';
import { POSTCOPY_FAULTS, runPostcopyCell } from './helpers/fault-matrix/postcopy-cells.js';

// Ports 51740-51753: apart from fault-matrix.test.ts's, should both ever run at once.
const m = new Matrix({ portBase: 51740 });

beforeAll(async () => await m.start());

afterAll(async () => {
  const stray = await m.stop(
    'fault matrix, other protocols: tunnelled, v2 and post-copy (fm-a -> fm-b; 64 MiB guests, 40 MiB random RAM, post-copy 24 MiB)',
    'fault-matrix-protocols.txt',
  );
  expect(stray, 'QEMUs the matrix left').toEqual([]);
});

interface Cell {
  fault: Fault;
  p: Point;
  exp: Expected;
  family: Family;
  id: string;
}

const TUNNELLED: Family = { name: 'tunnelled', flags: ['tunnelled'], records: true };
const V2: Family = { name: 'v2', maxProtocol: 2, records: true };
const ok: Expected = { where: 'dst' };

function cell(family: Family, fault: Fault, label: string, exp: Expected = ok): Cell {
  const p = pointOf(label);
  return { fault, p, exp, family, id: `${fault} (${family.name}) @ ${p.label}` };
}

const ONLY = process.env.FM_ONLY;
const cells = [
  cell(TUNNELLED, 'kill -9 dst worker', 'Prepare', { where: 'dst', note: 'the retried Prepare registers the job with the new listener' }),
  cell(TUNNELLED, 'kill -9 src worker', 'Perform early', {
    where: 'dst',
    note: "the stream is QEMU's and goes on through the destination's listener; the retried Perform dials the watch again",
  }),
  cell(TUNNELLED, 'kill -9 dst worker', 'Perform early', {
    where: 'src',
    failedAt: 'perform',
    note: 'the destination worker relays the stream: its death breaks it, and the job rolls back (the source resumes)',
  }),
  cell(TUNNELLED, 'kill -9 control', 'Perform early'),
  cell(TUNNELLED, 'kill -9 src worker', 'Perform→Finish'),
  cell(TUNNELLED, 'kill -9 dst worker', 'Finish'),
  cell(V2, 'kill -9 dst worker', 'Prepare'),
  cell(V2, 'kill -9 src worker', 'Perform→Finish', {
    where: 'dst',
    note: 'the stream was complete, the source not yet stopped: the retried Perform2 stops it',
  }),
  cell(V2, 'kill -9 dst worker', 'Finish'),
].filter((c) => !ONLY || c.id.includes(ONLY));

describe.skipIf(cells.length === 0)('fault matrix: tunnelled and v2 migrations', () => {
  for (const c of cells)
    it(
      c.id,
      async () => {
        const r = await runCell(m, c.fault, c.p, c.exp, c.family);
        expect(r.pass, r.message).toBe(true);
      },
      240_000,
    );
});

const postcopyCells = POSTCOPY_FAULTS.map((fault) => ({ fault, id: `${fault} (post-copy) @ post-copy` })).filter((c) => !ONLY || c.id.includes(ONLY));
describe.skipIf(postcopyCells.length === 0)('fault matrix: post-copy', () => {
  for (const c of postcopyCells)
    it(
      c.id,
      async () => {
        const r = await runPostcopyCell(m, c.fault);
        expect(r.pass, r.message).toBe(true);
      },
      240_000,
    );
});
