// The fault matrix's post-copy cells (issue 15): a worker killed with SIGKILL after
// the switch to post-copy, while the guest already runs on the destination and its
// pages still flow from the paused source (a low post-copy speed keeps the stream
// going while the fault lands and the worker comes back). The job must recover by
// itself and end as a completed post-copy: the guest runs on the destination, its
// RAM is the source's (a random range hashed before and after), the source's QEMU is
// gone, and neither host keeps a file, job record or listening port of the job.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startPostcopyUpdate } from '../../../src/common/postcopy.js';
import { waitFor } from '../../../src/support/wait.js';
import { outcomeOf, type Observed } from '../case-table.js';
import { fillRandom, hashRange } from '../guest-memory.js';
import { guestXml } from '../guest-xml.js';
import { domainOf, jobInfo, postcopyHeartbeat, startMigration, waitForPerform } from '../migration.js';
import { withDeadline } from '../qemu-process.js';
import { domainWorld } from './inspect.js';
import { A, B, type Matrix } from './matrix.js';
import { leftovers, portLeaks, whereOf } from './migration-cells.js';

const MiB = 1024 * 1024;
/** Random guest RAM: what post-copy has left to move after the switch, at the post-copy speed below. */
const RANDOM_MiB = 24;
const PRECOPY_MiBps = 4;
const POSTCOPY_MiBps = 3;

export type PostcopyFault = 'kill -9 src worker' | 'kill -9 dst worker';
export const POSTCOPY_FAULTS: PostcopyFault[] = ['kill -9 src worker', 'kill -9 dst worker'];

let seq = 0;

export async function runPostcopyCell(m: Matrix, fault: PostcopyFault): Promise<{ pass: boolean; message: string }> {
  const { cluster } = m;
  const started = Date.now();
  const pair: [string, string] = [A, B];
  const name = `fmp${seq++}`;
  const uuid = randomUUID();
  await cluster.op(A, { op: 'define', xml: guestXml({ name, uuid, memoryMiB: 64 }) });
  const g = domainOf(await cluster.op(A, { op: 'start', name }));
  fillRandom(g.memoryBackingFile!, RANDOM_MiB * MiB);
  const before = hashRange(g.memoryBackingFile!, RANDOM_MiB * MiB);
  const problems: string[] = [];
  let injected = 'not reached';
  let atKill = '';
  let recoveries = 0;
  let outcome: Observed = { type: 'untyped', message: 'not run' };
  try {
    const handle = await startMigration(cluster.client, {
      domain: name,
      domainUuid: uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live', 'postcopy'],
      bandwidthMiBps: PRECOPY_MiBps,
      postcopyBandwidthMiBps: POSTCOPY_MiBps,
    });
    const result = outcomeOf(handle.result());
    await waitForPerform(handle, 60_000);
    await handle.executeUpdate(startPostcopyUpdate);
    // Finish has started the guest on the destination; the source's QEMU still serves its pages.
    await waitFor('post-copy after Finish', async () => (await jobInfo(handle)).phase === 'postcopy', { timeoutMs: 60_000, intervalMs: 100 });
    const hb = await waitFor('a post-copy heartbeat', async () => await postcopyHeartbeat(handle), { timeoutMs: 30_000, intervalMs: 100 });
    const onDst = domainOf(await cluster.op(B, { op: 'info', name }));
    atKill = `QEMU ${hb.status}, ${((hb.progress.memRemainingBytes ?? 0) / MiB).toFixed(1)} MiB left; destination ${onDst.state}`;
    if (hb.status !== 'postcopy-active' || (hb.progress.memRemainingBytes ?? 0) === 0) problems.push(`not in the middle of post-copy at the fault: ${atKill}`);
    if (onDst.state !== 'running') problems.push(`the destination did not run the guest during post-copy (${onDst.state})`);
    injected = await m.inject(fault, uuid);
    outcome = await withDeadline(result, 150_000, `the job did not end within 150 s of the fault (${fault} during post-copy)`);
    if (outcome.type !== 'succeeded') problems.push(`job failed (${outcome.type}: ${outcome.message})`);
    const info = await jobInfo(handle);
    if (info.status !== 'completed' || info.postcopyState !== 'completed') problems.push(`job ${info.status}, post-copy ${info.postcopyState}`);
    // A worker's death does not break QEMU's stream: the retried step picks the wait up again, no recovery of the link is needed.
    recoveries = info.postcopyRecoveries ?? 0;

    const ranges = [m.ranges[A]!, m.ranges[B]!];
    let world = domainWorld(cluster, pair, uuid, ranges);
    await waitFor(
      'the world to settle',
      () => {
        world = domainWorld(cluster, pair, uuid, ranges);
        return whereOf(world, pair) === 'dst' && leftovers(m, world, name, uuid, 'dst', pair, true).length === 0;
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    ).catch(() => undefined);
    const where = whereOf(world, pair);
    if (where !== 'dst') problems.push(`the domain runs: ${where}`);
    const extra = [...leftovers(m, world, name, uuid, where, pair, true), ...portLeaks(m, B, name)];
    if (extra.length > 0) problems.push(`LEFT: ${extra.join('; ')}`);
    if (where === 'dst') {
      const there = domainOf(await cluster.op(B, { op: 'info', name }));
      if (there.state !== 'running' || there.pid !== world.qemu.get(B)![0]) problems.push(`the destination says ${there.state} (pid ${there.pid})`);
      if (hashRange(there.memoryBackingFile!, RANDOM_MiB * MiB) !== before) problems.push("the destination's RAM differs from the source's");
    }
    if (existsSync(join(cluster.hosts.get(A)!.baseDir, 'run', `${name}.qmp`))) problems.push('the source still has its monitor socket');
  } finally {
    await cluster.removeAllDomains(pair);
  }
  const pass = problems.length === 0;
  const observed = pass ? 'runs on dst, job ok, RAM identical, source gone' : problems.join('; ');
  m.table.add({
    fault: `${fault} (post-copy)`,
    point: 'post-copy',
    expected: 'runs on dst, job ok, RAM identical',
    observed,
    result: pass ? 'PASS' : 'FAIL',
    note: `at the fault: ${atKill}; ${recoveries} post-copy recovery attempt(s) after it`,
    seconds: (Date.now() - started) / 1000,
  });
  return { pass, message: `${fault} during post-copy (${injected}; ${atKill}): ${observed}` };
}
