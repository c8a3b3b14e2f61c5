// How the migrate workflow runs a step on a host: which task queue, which
// timeouts and retries for each kind of step, a summary for the UI, and the
// host's typed error instead of Temporal's wrapper.
import { ActivityCancellationType, isCancellation, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { DomainActivities } from '../activities/host/domain-activities.js';
import type { JobControlActivities } from '../activities/host/job-control.js';
import type { MigrationActivities } from '../activities/host/migration-activities.js';
import { hostTaskQueue } from '../common/constants.js';
import { ErrorType } from '../common/errors.js';
import { unwrapActivityError } from './activity-errors.js';

export type HostActivities = MigrationActivities & DomainActivities & JobControlActivities;
export type StepKind = 'probe' | 'begin' | 'step' | 'long' | 'watch' | 'control' | 'cleanup';

/**
 * The short steps heartbeat every second while they run (step-heartbeat.ts): a worker
 * killed in one is noticed within this, and the step retried on the restarted worker.
 */
const STEP_HEARTBEAT = '5 seconds';

const NON_RETRYABLE = Object.values(ErrorType).filter((t) => t !== ErrorType.QmpTimeout);

function options(host: string, kind: StepKind): ActivityOptions {
  const base: ActivityOptions = {
    taskQueue: hostTaskQueue(host),
    retry: { maximumAttempts: 5, initialInterval: '1 second', nonRetryableErrorTypes: NON_RETRYABLE },
  };
  switch (kind) {
    case 'probe':
      // A host whose worker polls picks a task up in milliseconds; an unknown host is reported quickly.
      return { ...base, startToCloseTimeout: '10 seconds', scheduleToStartTimeout: '5 seconds', retry: { ...base.retry, maximumAttempts: 2 } };
    case 'begin':
      // The first step on the source doubles as its probe: an unknown source host is reported quickly.
      return { ...base, startToCloseTimeout: '2 minutes', heartbeatTimeout: STEP_HEARTBEAT, scheduleToStartTimeout: '5 seconds', cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED };
    case 'step':
      // The workflow must know a step has stopped before it undoes it.
      return { ...base, startToCloseTimeout: '2 minutes', heartbeatTimeout: STEP_HEARTBEAT, scheduleToStartTimeout: '1 minute', cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED };
    case 'long':
      return {
        ...base,
        startToCloseTimeout: '24 hours',
        heartbeatTimeout: '10 seconds',
        scheduleToStartTimeout: '1 minute',
        cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        retry: { ...base.retry, maximumAttempts: 3 },
      };
    case 'watch':
      // One attempt: a destination that stops heartbeating is a lost destination.
      return { ...base, startToCloseTimeout: '24 hours', heartbeatTimeout: '10 seconds', scheduleToStartTimeout: '30 seconds', retry: { maximumAttempts: 1 } };
    case 'control':
      return { ...base, startToCloseTimeout: '10 seconds', scheduleToStartTimeout: '10 seconds', retry: { ...base.retry, maximumAttempts: 2 } };
    case 'cleanup':
      return { ...base, startToCloseTimeout: '2 minutes', heartbeatTimeout: STEP_HEARTBEAT, scheduleToStartTimeout: '2 minutes' };
  }
}

/** Runs activity `act` on `host` with the options of `kind` and a summary for the UI; errors come back as the host's typed error. */
export async function on<K extends keyof HostActivities>(
  host: string,
  kind: StepKind,
  act: K,
  args: Parameters<HostActivities[K]>,
  summary: string,
): Promise<Awaited<ReturnType<HostActivities[K]>>> {
  const opts = options(host, kind);
  const acts = proxyActivities<HostActivities>(opts);
  try {
    return await (acts[act] as unknown as { executeWithOptions: (o: ActivityOptions, a: unknown[]) => Promise<Awaited<ReturnType<HostActivities[K]>>> }).executeWithOptions({ ...opts, summary }, args);
  } catch (err) {
    // Cancellations stay cancellations: the tracker turns the user's into OperationAborted.
    if (isCancellation(err)) throw err;
    throw unwrapActivityError(err, { host, step: String(act) });
  }
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
