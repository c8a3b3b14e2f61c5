// Steps v3 and v2 take alike, named by their activity: Prepare on the
// destination (pushing its undo as it starts), Perform with its prelude, Finish,
// and the result a migration reports.
import { CancelledFailure } from '@temporalio/workflow';
import type { FinishResult, MigrateResult, PerformResult, PrepareResult } from '../common/migration-types.js';
import type { Begun } from './migrate-begin.js';
import { performWatched } from './migrate-perform.js';
import { finishFailure } from './migrate-undo.js';
import { on } from './migration-steps.js';
import type { MigrationJob } from './migration-job.js';

/** Starts the destination's QEMU paused, listening; from its start on, a failure kills it again. */
export async function prepare(
  m: MigrationJob,
  front: Begun,
  steps: { prepare: 'migratePrepare' | 'migratePrepare2'; undo: 'migrateFinish' | 'migrateFinish2' },
  cookie: string | undefined,
): Promise<PrepareResult> {
  const { begun, protocol, sourceTlsIdentity } = front;
  m.tracker.phase('prepare');
  m.saga.push(finishFailure(m, steps.undo, protocol, begun.uuid));
  const prepared = await on(
    m.dst,
    'step',
    steps.prepare,
    [
      {
        ...m.job,
        domain: m.domain,
        uuid: begun.uuid,
        xml: begun.xml,
        cookie,
        dname: m.input.dname,
        flags: m.flags,
        sourceHostUuid: begun.hostUuid,
        uri: m.input.uri,
        protocol,
        sourceHost: m.src,
        ...(sourceTlsIdentity !== undefined ? { sourceTlsIdentity } : {}),
        ...(begun.postcopyPreempt ? { postcopyPreempt: true } : {}),
        ...(m.parallelConnections !== undefined ? { parallelConnections: m.parallelConnections } : {}),
      },
    ],
    `v${protocol} Prepare: start '${m.destName}' paused with -incoming on ${m.dst}`,
  );
  m.destName = prepared.name;
  return prepared;
}

/** Streams the guest (the limits signalled so far are in QEMU before it starts); the source's QEMU job ends with it. */
export async function perform(m: MigrationJob, front: Begun, prepared: PrepareResult, act: 'migratePerform' | 'migratePerform2'): Promise<PerformResult> {
  m.tracker.phase('perform');
  await m.control.settled();
  const performed = await performWatched(m, front, prepared, act);
  m.tracker.progress(performed.stats);
  return performed;
}

/**
 * A cancel that arrived while the last bytes went is still honoured: nothing runs on the
 * destination yet. Not after a post-copy switch: the destination must run the guest now.
 */
export function refuseLateCancel(m: MigrationJob, performed: PerformResult | undefined): void {
  if (m.tracker.cancelRequested && !performed?.postcopyRunning) throw new CancelledFailure('cancelled after the stream completed');
}

/** Finish on the destination, past the point of no return: a cancel no longer stops it. */
export async function finish(
  m: MigrationJob,
  { begun, protocol }: Begun,
  act: 'migrateFinish' | 'migrateFinish2',
  performed: PerformResult | undefined,
): Promise<FinishResult> {
  m.tracker.phase('finish');
  const start = m.has('paused') || !begun.wasRunning ? 'keep' : 'start';
  return await m.committed(() =>
    on(
      m.dst,
      'step',
      act,
      [
        {
          ...m.job,
          name: m.destName,
          domain: m.domain,
          uuid: begun.uuid,
          success: true,
          cookie: performed?.cookie,
          flags: m.flags,
          wasRunning: begun.wasRunning,
          protocol,
          ...(performed?.postcopyRunning ? { postcopy: true } : {}),
        },
      ],
      `v${protocol} Finish: ${start} '${m.destName}' on ${m.dst}${performed?.postcopyRunning ? ' while its pages are pulled (post-copy)' : ''}`,
    ),
  );
}

export function migrateResult(
  m: MigrationJob,
  { begun, protocol }: Begun,
  performed: PerformResult | undefined,
  finished: FinishResult,
  sourceUndefined: boolean,
): MigrateResult {
  const stats = performed?.stats ?? {};
  const stopped = stats.sourceStoppedAtMs;
  return {
    domain: m.destName,
    uuid: begun.uuid,
    protocol,
    sourceHost: m.src,
    destinationHost: m.dst,
    destination: finished.domain!,
    stats,
    ...(stopped !== undefined && finished.resumedAtMs !== undefined ? { measuredDowntimeMs: finished.resumedAtMs - stopped } : {}),
    persistent: finished.persistent,
    sourceUndefined,
    ...(finished.parallelConnections !== undefined ? { parallelConnections: finished.parallelConnections } : {}),
  };
}
