// The one recovery of work in flight (libvirt's qemuProcessRecoverJob is the
// model): a switch over the record's kind says what to finish or undo, for two
// occasions. At worker start, after reconnectAll, for what a killed worker left
// behind; and from the auto-destroy reaper, once Temporal says the workflow that
// owns a job has closed without ending it. What the switch leaves alone, a
// retried activity or the workflow's own cleanup step takes care of.
import type { JobType } from '../../common/job-types.js';
import { abortDestination } from '../migration/destination-side.js';
import { abortSource } from '../migration/source-side.js';
import type { JobDeps } from './deps.js';
import { adoptLegacyRecords } from './legacy-records.js';
import type { JobRecord, MigrationRecord } from './records.js';
import { settleJob } from './save-settle.js';

export type RecoveryOccasion = 'worker-start' | 'workflow-closed';

export interface RecoveryStep {
  /** The job type the domain is held under while the step runs (worker start). */
  type: JobType;
  /** The workflow run whose end makes the step due (reaper). */
  owner?: { workflowId: string; runId: string };
  run(): Promise<void>;
}

/** What recovery does with a record on this occasion; undefined when nothing. */
export function recoveryStep(deps: JobDeps, rec: JobRecord, occasion: RecoveryOccasion): RecoveryStep | undefined {
  const { rt } = deps;
  switch (rec.kind) {
    case 'save':
    case 'restore':
      // Settled at start (finish what is finished, undo the rest); afterwards the workflow's
      // cleanupSaveJob owns them, so the reaper does not ask about them.
      if (occasion !== 'worker-start' || rec.state !== 'running') return undefined;
      return { type: rec.type, run: () => settleJob(deps, rec) };
    case 'dump':
      // The dump's pipe died with the worker, so QEMU ended the dump itself; a retried
      // dumpPerform or the workflow's dumpCleanup resumes the guest and removes the partial file.
      return undefined;
    case 'migrate-in':
      // At start the workflow's retried step decides; only a closed workflow makes the QEMU an orphan.
      if (occasion !== 'workflow-closed') return undefined;
      return orphanedMigration(deps, rec, 'migrateIn', 'the migration workflow closed without Finish; killing the incoming QEMU', () =>
        abortDestination(deps, rec.name, rec.jobId),
      );
    case 'migrate-out':
      if (occasion !== 'workflow-closed') return undefined;
      // A stream that completed stays paused: the destination may run the guest.
      return orphanedMigration(deps, rec, 'migrateOut', 'the migration workflow closed without Confirm; undoing the source side', () =>
        abortSource(rt, rec.name, rec.jobId, { resumeAfterCompletion: false }),
      );
    default:
      return unknownKind(rec);
  }
}

/** The reaper's step for one side of a migration whose workflow has closed without ending it. */
function orphanedMigration(deps: JobDeps, rec: MigrationRecord, type: JobType, why: string, undo: () => Promise<unknown>): RecoveryStep {
  return {
    type,
    owner: { workflowId: rec.workflowId, runId: rec.runId },
    run: async () => {
      deps.rt.log.warn({ domain: rec.name, job: rec.jobId, workflowId: rec.workflowId }, `auto-destroy: ${why}`);
      await undo();
    },
  };
}

function unknownKind(rec: never): undefined {
  throw new Error(`job record of unknown kind ${(rec as { kind: string }).kind}`);
}

/**
 * At worker start-up, after reconnectAll: recovers every job a previous worker
 * left. The domains are held for the duration (taken before the first await, so
 * no activity slips in), then released: the workflow's retried activity takes
 * its job again and finds the record settled.
 */
export async function recoverJobs(deps: JobDeps): Promise<void> {
  adoptLegacyRecords(deps);
  const todo: { rec: JobRecord; step: RecoveryStep }[] = [];
  for (const name of deps.records.names()) {
    try {
      const rec = deps.records.read(name);
      const step = rec && recoveryStep(deps, rec, 'worker-start');
      if (!rec || !step) continue;
      deps.rt.locks.beginJob(name, rec.jobId, step.type, 'recovery');
      todo.push({ rec, step });
    } catch (err) {
      deps.log.error({ domain: name, err }, 'cannot read or take a job left by a previous worker');
    }
  }
  for (const { rec, step } of todo) {
    try {
      await step.run();
    } catch (err) {
      deps.log.error({ domain: rec.name, job: rec.jobId, err }, 'recovering a job left by a previous worker failed; the workflow retries it');
    } finally {
      deps.rt.locks.endJob(rec.name, rec.jobId);
    }
  }
}
