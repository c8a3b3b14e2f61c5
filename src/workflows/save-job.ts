// The workflow half shared by save, restore and the managed-save jobs: the host's
// activities with the options each kind of step needs, and the job skeleton
// Begin -> Perform, with cancel and compensation.
//
// Progress: workflow code cannot see activity heartbeats, and signalling
// progress into the workflow would grow its history with every sample. So the
// jobInfo query answers type, phase, elapsed time and errors from the workflow,
// and the byte counts live in the Perform activity's heartbeat details
// (SaveJobHeartbeat), which `temporal workflow describe` and the Web UI show
// under the pending activity; src/cli/job-lookup.ts merges both for a client.
import {
  ActivityCancellationType,
  CancellationScope,
  isCancellation,
  proxyActivities,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityInterfaceFor,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { DomainActivities } from '../activities/domain-activities.js';
import type { JobControlActivities } from '../activities/job-control.js';
import type { SaveActivities } from '../activities/save-activities.js';
import { hostTaskQueue } from '../common/constants.js';
import { ErrorType, vmError } from '../common/errors.js';
import { DomainName, DomainUuid, SourceHost } from '../common/search-attributes.js';
import { unwrapActivityError } from './activity-errors.js';
import { JobTracker } from './job-tracker.js';
import type { JobType } from '../common/job-types.js';
import { uuidOfJobWorkflowId } from '../common/save-types.js';

type HostActivities = SaveActivities & JobControlActivities & DomainActivities;

const NON_RETRYABLE = Object.values(ErrorType).filter((t) => t !== ErrorType.QmpTimeout);

export interface SaveJobHost {
  host: string;
  acts: ActivityInterfaceFor<HostActivities>;
  short: ActivityOptions;
  long: ActivityOptions;
  /**
   * The job's first step on the host (Begin, or a lone step): nothing has changed
   * if no worker took it, so an unknown or dead host is reported after a
   * supervisor's restart time, as domainOperation does, not after a minute.
   */
  begin: ActivityOptions;
}

/** Schedule-to-start of a job's first host step (see SaveJobHost.begin). */
export const FIRST_STEP_SCHEDULE_TO_START = '15 seconds';

export function saveJobHost(host: string): SaveJobHost {
  const short: ActivityOptions = {
    taskQueue: hostTaskQueue(host),
    startToCloseTimeout: '2 minutes',
    // A host whose worker stays down longer than a restart is reported, not waited on forever.
    scheduleToStartTimeout: '1 minute',
    retry: { maximumAttempts: 3, initialInterval: '1 second', nonRetryableErrorTypes: NON_RETRYABLE },
  };
  const long: ActivityOptions = {
    ...short,
    startToCloseTimeout: '24 hours',
    // The host heartbeats every 500 ms (throttled to 1 s): 5 s of silence means its worker is gone,
    // and the retry (on the restarted worker) settles the job from its record.
    heartbeatTimeout: '5 seconds',
    // Compensation must not start before the host has stopped QEMU's stream.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  };
  const begin: ActivityOptions = { ...short, scheduleToStartTimeout: FIRST_STEP_SCHEDULE_TO_START };
  return { host, acts: proxyActivities<HostActivities>(short), short, long, begin };
}

export interface JobPlanRef {
  name: string;
  uuid: string;
  jobId: string;
}

/**
 * Runs Begin (never interrupted: its answer may be that it took the domain),
 * then Perform in a scope the cancel signal or a native cancellation cancels;
 * the cancel also reaches QEMU at once through the host's abortJob activity.
 * On any failure after Begin the host's cleanupSaveJob runs, non-cancellable,
 * and the workflow fails with the first error (OperationAborted for a cancel).
 */
export async function runSaveJob<P extends JobPlanRef, R>(opts: {
  tracker: JobTracker;
  hostJob: SaveJobHost;
  begin: () => Promise<P>;
  perform: (plan: P) => Promise<R>;
}): Promise<R> {
  const { tracker, hostJob } = opts;
  const { acts, host } = hostJob;
  let plan: P | undefined;
  const performScope = new CancellationScope();
  tracker.setHooks({
    onCancel: () => {
      const p = plan;
      if (p) {
        void CancellationScope.nonCancellable(() =>
          acts.abortJob.executeWithOptions({ ...hostJob.short, summary: `abort job on '${p.name}' at ${host}` }, [p.name, p.jobId]),
        ).catch(() => undefined);
      }
      performScope.cancel();
    },
  });
  CancellationScope.current().cancelRequested.catch(() => tracker.requestCancel());
  try {
    tracker.phase('begin');
    plan = await CancellationScope.nonCancellable(() => opts.begin());
    tracker.info.domain = plan.name;
    tracker.info.domainUuid = plan.uuid;
    upsertSearchAttributes([
      { key: DomainName, value: plan.name },
      { key: DomainUuid, value: plan.uuid },
    ]);
    if (tracker.cancelRequested) throw vmError(ErrorType.OperationAborted, 'aborted before the stream started');
    tracker.phase('perform');
    const p = plan;
    const result = await performScope.run(() => opts.perform(p));
    tracker.complete();
    return result;
  } catch (err) {
    if (isCancellation(err)) tracker.requestCancel();
    tracker.fail(isCancellation(err) ? err : unwrapActivityError(err, { host, step: tracker.info.phase }));
    const p = plan;
    if (p) {
      await CancellationScope.nonCancellable(async () => {
        try {
          await acts.cleanupSaveJob.executeWithOptions({ ...hostJob.short, summary: `clean up job on '${p.name}' at ${host}` }, [p.name, p.jobId]);
        } catch (cleanupErr) {
          tracker.cleanupError(unwrapActivityError(cleanupErr, { host, step: 'cleanup' }), 'cleanup');
        }
      });
    }
    throw tracker.firstFailure();
  }
}

/** The opening every save-family job shares: its host-side job id, its tracker and the host's activities. */
export function openSaveJob(
  jobType: JobType,
  host: string,
  domain: string,
  domainUuid: string | undefined,
): { jobId: string; tracker: JobTracker; hostJob: SaveJobHost } {
  const wf = workflowInfo();
  const tracker = new JobTracker({ jobType, domain, domainUuid: domainUuid ?? uuidOfJobWorkflowId(wf.workflowId) ?? '', phase: 'begin' });
  upsertSearchAttributes([{ key: SourceHost, value: host }]);
  return { jobId: `${wf.workflowId}/${wf.runId}`, tracker, hostJob: saveJobHost(host) };
}
