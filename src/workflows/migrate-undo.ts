// What undoes each side of a migration. An undo that fails records a cleanup
// error on the job (the first error stays the workflow's) and reports false.
import { ErrorType, vmError } from '../common/errors.js';
import type { MigrationProtocol } from '../common/migration-types.js';
import type { Compensation } from './compensation.js';
import { on } from './migration-steps.js';
import type { MigrationJob } from './migration-job.js';

async function attempt(m: MigrationJob, phase: string, undo: () => Promise<unknown>): Promise<boolean> {
  try {
    await undo();
    return true;
  } catch (err) {
    m.tracker.cleanupError(err, phase);
    return false;
  }
}

/** The source is resumed only once the destination is known dead: two running copies are worse than a paused one. */
function staysPaused(m: MigrationJob): void {
  m.tracker.cleanupError(
    vmError(
      ErrorType.OperationFailed,
      `'${m.domain}' stays paused on ${m.src}: the destination ${m.dst} could not be confirmed dead, and resuming could run two copies`,
    ),
    'confirm',
  );
}

/** v3: a failed Confirm resumes the source's CPUs if they ran and ends its job. `uuid` is '' when Begin itself failed. */
export function confirmFailure(m: MigrationJob, uuid: string): Compensation {
  return {
    run: () =>
      attempt(m, 'confirm', () =>
        on(m.src, 'cleanup', 'migrateConfirm', [{ ...m.job, domain: m.domain, uuid, success: false, flags: m.flags }], `resume '${m.domain}' on ${m.src}`),
      ),
    skipped: () => staysPaused(m),
  };
}

/** v2 has no Confirm: the source aborts its job (also after a completed stream) and resumes the guest if it ran. */
export function abortSource(m: MigrationJob): Compensation {
  return {
    run: () => attempt(m, 'confirm', () => on(m.src, 'cleanup', 'migrateAbortSource', [m.domain, m.job.jobId], `resume '${m.domain}' on ${m.src}`)),
    skipped: () => staysPaused(m),
  };
}

/** A failed Finish kills the incoming QEMU and frees what Prepare took; it reads the destination name when it runs (Prepare may have set it). */
export function finishFailure(m: MigrationJob, act: 'migrateFinish' | 'migrateFinish2', protocol: MigrationProtocol, uuid: string): Compensation {
  return {
    run: () =>
      attempt(m, 'finish', () =>
        on(
          m.dst,
          'cleanup',
          act,
          [{ ...m.job, name: m.destName, domain: m.domain, uuid, success: false, flags: m.flags, wasRunning: false, protocol }],
          `kill the incoming '${m.destName}' on ${m.dst}`,
        ),
      ),
  };
}
