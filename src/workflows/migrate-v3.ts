// libvirt's v3 protocol: Begin on the source, Prepare on the destination,
// Perform on the source, Finish on the destination, Confirm on the source.
//
// Until the stream is complete, a failure or cancel undoes both sides together:
// the destination's QEMU is killed and the source resumed if it ran (safe side
// by side, since only Finish starts the destination's CPUs). A Finish that fails
// has killed the destination, or left it unknown: the source resumes only once
// the destination is known dead. After Finish the guest runs on the destination
// and nothing is undone; a failed Confirm leaves the source copy paused.
//
// Post-copy (migrate-postcopy.ts): Perform returns at the switch, before the
// stream is complete. From then on the destination holds the newest state: Finish
// starts the guest there at once, the workflow waits for the stream's end (and
// recovers it when its link breaks), and only then does Confirm stop the source.
// A failure after the switch never resumes the source: the guest is left paused
// on the destination.
import type { MigrateResult, PerformResult } from '../common/migration-types.js';
import { adoptSourceJob, type Begun } from './migrate-begin.js';
import { finish, migrateResult, perform, prepare, refuseLateCancel } from './migrate-common.js';
import { awaitPostcopyStream, keepPausedOnDestination, postcopyFailure } from './migrate-postcopy.js';
import { on } from './migration-steps.js';
import type { MigrationJob } from './migration-job.js';

export async function migrateV3(m: MigrationJob, front: Begun): Promise<MigrateResult> {
  const { begun } = front;
  let performed = await m.undoable(async () => {
    adoptSourceJob(m, begun);
    const prepared = await prepare(m, front, { prepare: 'migratePrepare', undo: 'migrateFinish' }, begun.cookie);
    // Offline: only the persistent definition moves, there is no stream.
    const performed = m.has('offline') ? undefined : await perform(m, front, prepared, 'migratePerform');
    m.control.detach();
    refuseLateCancel(m, performed);
    return performed;
  });

  const postcopy = performed?.postcopyRunning === true;
  if (postcopy) {
    m.postcopy.enter('active');
    m.saga.clear();
    m.saga.push(keepPausedOnDestination(m, begun.uuid));
  }
  const afterSwitch = (phase: string) => (err: unknown) => m.failed(postcopy ? postcopyFailure(m, err) : err, phase);
  const finished = await finish(m, front, 'migrateFinish', performed).catch(afterSwitch('finish'));
  if (postcopy) {
    // The guest runs on the destination; the source still serves the pages it lacks.
    const final = await m.committed(() => awaitPostcopyStream(m)).catch(afterSwitch('postcopy'));
    performed = { ...(performed as PerformResult), stats: { ...performed!.stats, ...final, postcopy: true } };
    m.tracker.progress(final);
    await m
      .committed(() => on(m.dst, 'cleanup', 'migratePostcopyEnded', [m.destName, m.job.jobId, m.flags], `end post-copy of '${m.destName}' on ${m.dst}`))
      .catch((err: unknown) => m.tracker.cleanupError(err, 'postcopy'));
  }
  m.saga.clear(); // the guest runs on the destination now

  m.tracker.phase('confirm');
  const confirmed = await m
    .committed(() =>
      on(
        m.src,
        'step',
        'migrateConfirm',
        [{ ...m.job, domain: m.domain, uuid: begun.uuid, success: true, cookie: finished.cookie, flags: m.flags }],
        `v3 Confirm: stop '${m.domain}' on ${m.src}`,
      ),
    )
    .catch((err: unknown) => m.failed(err, 'confirm'));
  m.tracker.complete();
  return migrateResult(m, front, performed, finished, confirmed.sourceUndefined);
}
