// coreDump: a memory-only dump of a running domain to a file on its host, as a
// job (one per domain, cancellable, observable). Begin checks and takes the job,
// Perform dumps, Finish publishes the file; any failure or cancel runs Cleanup,
// which leaves no partial file and the guest as it was.
import { CancellationScope, isCancellation, proxyActivities, upsertSearchAttributes, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import { ActivityCancellationType } from '@temporalio/common';
import type { DumpActivities } from '../activities/dump-activities.js';
import { hostTaskQueue } from '../common/constants.js';
import { invalidCoreDumpInput, type CoreDumpInput, type CoreDumpResult, type DumpBeginResult } from '../common/dump-types.js';
import { ErrorType, vmError } from '../common/errors.js';
import { SourceHost } from '../common/search-attributes.js';
import { unwrapActivityError } from './activity-errors.js';
import { JobTracker } from './job-tracker.js';
import { FIRST_STEP_SCHEDULE_TO_START } from './save-job.js';

const NON_RETRYABLE = Object.values(ErrorType).filter((t) => t !== ErrorType.QmpTimeout);

function dumpActivities(host: string): { begin: DumpActivities; short: DumpActivities; long: DumpActivities } {
  const base: ActivityOptions = {
    taskQueue: hostTaskQueue(host),
    scheduleToStartTimeout: '1 minute',
    retry: { maximumAttempts: 3, initialInterval: '1 second', nonRetryableErrorTypes: NON_RETRYABLE },
  };
  return {
    // An unknown or dead host fails the job here, before anything changed (see save-job.ts).
    begin: proxyActivities<DumpActivities>({ ...base, startToCloseTimeout: '1 minute', scheduleToStartTimeout: FIRST_STEP_SCHEDULE_TO_START }),
    short: proxyActivities<DumpActivities>({ ...base, startToCloseTimeout: '1 minute' }),
    long: proxyActivities<DumpActivities>({
      ...base,
      startToCloseTimeout: '12 hours',
      // Heartbeats carry progress and bring cancellation; a dead worker is noticed within this.
      heartbeatTimeout: '10 seconds',
      // Cleanup must not start while QEMU may still be writing.
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }),
  };
}

export async function coreDump(input: CoreDumpInput): Promise<CoreDumpResult> {
  const why = invalidCoreDumpInput(input);
  if (why) throw vmError(ErrorType.OperationInvalid, why);
  const { host, name } = input;
  const format = input.format ?? 'elf';
  const tracker = new JobTracker({ jobType: 'coreDump', domain: name, domainUuid: input.uuid, phase: 'begin' });
  upsertSearchAttributes([{ key: SourceHost, value: host }]);
  const { begin: first, short, long } = dumpActivities(host);
  const info = workflowInfo();
  const jobId = `${info.workflowId}/${info.runId}`;
  const step = (s: string): { host: string; step: string } => ({ host, step: s });

  let begun: DumpBeginResult | undefined;
  try {
    begun = await first.dumpBegin(name, jobId, { uuid: input.uuid, path: input.path, format });
    if (tracker.cancelRequested) throw abortedByUser();
    tracker.phase('dumping');
    const scope = new CancellationScope();
    tracker.setHooks({
      onCancel: () => scope.cancel(),
      onSetSpeed: async (mibps) => void (await short.dumpSetSpeed(name, jobId, mibps)),
    });
    const opts = { path: input.path, live: input.live, wasRunning: begun.wasRunning };
    const performed = await scope.run(() =>
      long.dumpPerform(name, jobId, { ...opts, format, bandwidthMiBps: tracker.info.speedLimitMiBps ?? input.bandwidthMiBps }),
    );
    tracker.progress({ dataTotalBytes: performed.dataTotalBytes, dataProcessedBytes: performed.dataTotalBytes, dataRemainingBytes: 0, percent: 100 });
    // A cancel that arrived as the dump completed still means "no dump".
    if (tracker.cancelRequested) throw abortedByUser();
    tracker.phase('finish');
    const finished = await CancellationScope.nonCancellable(() => short.dumpFinish(name, jobId, opts));
    tracker.complete();
    return { path: input.path, format, sizeBytes: finished.sizeBytes, durationMs: performed.durationMs, domainState: finished.domainState };
  } catch (err) {
    // Native cancellation counts as the user's cancel, like the cancel signal.
    if (isCancellation(err)) tracker.requestCancel();
    const phase = tracker.info.phase;
    tracker.fail(isCancellation(err) ? err : unwrapActivityError(err, step(phase)), phase);
    if (begun) {
      const wasRunning = begun.wasRunning;
      tracker.phase('cleanup');
      await CancellationScope.nonCancellable(async () => {
        try {
          await short.dumpCleanup(name, jobId, { path: input.path, live: input.live, wasRunning });
        } catch (cleanupErr) {
          tracker.cleanupError(unwrapActivityError(cleanupErr, step('cleanup')), 'cleanup');
        }
      });
    }
    throw tracker.firstFailure();
  }
}

function abortedByUser(): Error {
  return vmError(ErrorType.OperationAborted, 'core dump aborted by the user');
}
