// libvirt's v2 protocol, for hosts that speak no v3: Prepare on the destination,
// Perform on the source, Finish on the destination; no cookies, no Confirm.
// Begin still runs (the shared front), to check the domain and take its job.
//
// Until Perform2 completes, a failure or cancel kills the destination's QEMU
// and resumes the source. Perform2 stops the source: from then on the
// destination holds the only copy, and nothing is undone.
import { log } from '@temporalio/workflow';
import { ErrorType, vmError } from '../common/errors.js';
import type { MigrateResult } from '../common/migration-types.js';
import { adoptSourceJob, type Begun } from './migrate-begin.js';
import { finish, migrateResult, perform, prepare } from './migrate-common.js';
import { abortSource } from './migrate-undo.js';
import { message, on } from './migration-steps.js';
import type { MigrationJob } from './migration-job.js';

/** What only cookies could carry: refused before anything on the destination is touched. */
function refuseWithoutCookies(m: MigrationJob, { begun }: Begun): void {
  if (m.has('offline')) throw vmError(ErrorType.ConfigUnsupported, `offline migration needs protocol v3; ${m.dst} speaks only v2`);
  if (m.has('persist-dest') && begun.persistentDiffers) {
    // Without cookies the destination could only persist the live definition, silently dropping the difference.
    throw vmError(
      ErrorType.ConfigUnsupported,
      `'persist-dest' needs the persistent definition of '${m.domain}', which differs from the live one, and ${m.dst} speaks only protocol v2 (no cookies)`,
    );
  }
}

export async function migrateV2(m: MigrationJob, front: Begun): Promise<MigrateResult> {
  const { begun } = front;
  const performed = await m.undoable(async () => {
    // A v2 source ends its job by aborting it, which also covers a stream that completed.
    m.saga.replace(front.sourceUndo, abortSource(m));
    refuseWithoutCookies(m, front);
    adoptSourceJob(m, begun);
    const prepared = await prepare(m, front, { prepare: 'migratePrepare2', undo: 'migrateFinish2' }, undefined);
    const performed = await perform(m, front, prepared, 'migratePerform2');
    m.saga.clear(); // the source is stopped: the destination holds the only copy
    m.control.detach();
    return performed;
  });

  // A failed Finish2 leaves the destination as it is: it holds the only copy.
  const finished = await finish(m, front, 'migrateFinish2', performed).catch((err: unknown) => m.failed(err, 'finish'));
  // Bookkeeping only (the reaper would do it later): the job is over on the source too.
  await m
    .committed(() => on(m.src, 'cleanup', 'migrateForgetSource', [m.domain, m.job.jobId], `forget the finished job on ${m.src}`))
    .catch((err: unknown) => log.warn('migrateForgetSource failed; the reaper will clean up', { err: message(err) }));
  m.tracker.complete();
  return migrateResult(m, front, performed, finished, m.has('undefine-source') && begun.persistent);
}
