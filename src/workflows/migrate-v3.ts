// libvirt's v3 protocol: Begin on the source, Prepare on the destination,
// Perform on the source, Finish on the destination, Confirm on the source.
//
// Until the stream is complete, a failure or cancel undoes both sides together:
// the destination's QEMU is killed and the source resumed if it ran (safe side
// by side, since only Finish starts the destination's CPUs). A Finish that fails
// has killed the destination, or left it unknown: the source resumes only once
// the destination is known dead. After Finish the guest runs on the destination
// and nothing is undone; a failed Confirm leaves the source copy paused.
import type { MigrateResult } from '../common/migration-types.js';
import { adoptSourceJob, type Begun } from './migrate-begin.js';
import { finish, migrateResult, perform, prepare, refuseLateCancel } from './migrate-common.js';
import { on } from './migration-steps.js';
import type { MigrationJob } from './migration-job.js';

export async function migrateV3(m: MigrationJob, front: Begun): Promise<MigrateResult> {
  const { begun } = front;
  const performed = await m.undoable(async () => {
    adoptSourceJob(m, begun);
    const prepared = await prepare(m, front, { prepare: 'migratePrepare', undo: 'migrateFinish' }, begun.cookie);
    // Offline: only the persistent definition moves, there is no stream.
    const performed = m.has('offline') ? undefined : await perform(m, front, prepared, 'migratePerform');
    m.control.detach();
    refuseLateCancel(m);
    return performed;
  });

  const finished = await finish(m, front, 'migrateFinish', performed).catch((err: unknown) => m.failed(err, 'finish'));
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
