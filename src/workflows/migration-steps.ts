// How the migrate workflow runs a step on a host: which task queue, which
// timeouts and retries for each kind of step, a summary for the UI, and the
// host's typed error instead of Temporal's wrapper.
import { ActivityCancellationType, ActivityFailure, isCancellation, proxyActivities, TimeoutFailure, type ActivityOptions } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { DomainActivities } from '../activities/domain-activities.js';
import type { JobControlActivities } from '../activities/job-control.js';
import type { MigrationActivities } from '../activities/migration-activities.js';
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
const FIRST_STEP_WAIT = '15 seconds';
// Errors of steps no worker picked up (see notTaken); identity only, so nothing here is replayed differently.
const NOT_TAKEN = new WeakSet<object>();

/**
 * True when `err` is a step's failure because no worker of its host picked the task
 * up (schedule-to-start timeout): the workflow need not send that host an undo it
 * would wait as long for. Should an earlier attempt have run and crashed, the host's
 * reaper undoes its part once the workflow has closed.
 */
export function notTaken(err: unknown): boolean {
  return typeof err === 'object' && err !== null && NOT_TAKEN.has(err);
}

function options(host: string, kind: StepKind): ActivityOptions {
  const base: ActivityOptions = {
    taskQueue: hostTaskQueue(host),
    retry: { maximumAttempts: 5, initialInterval: '1 second', nonRetryableErrorTypes: NON_RETRYABLE },
  };
  switch (kind) {
    case 'probe':
      // A host whose worker polls picks a task up in milliseconds; an unknown host is reported after
      // FIRST_STEP_WAIT, as domainOperation does (long enough for a supervisor to restart a worker).
      return { ...base, startToCloseTimeout: '10 seconds', scheduleToStartTimeout: FIRST_STEP_WAIT, retry: { ...base.retry, maximumAttempts: 2 } };
    case 'begin':
      // The first step on the source doubles as its probe: an unknown source host is reported as quickly.
      return {
        ...base,
        startToCloseTimeout: '2 minutes',
        heartbeatTimeout: STEP_HEARTBEAT,
        scheduleToStartTimeout: FIRST_STEP_WAIT,
        cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      };
    case 'step':
      // The workflow must know a step has stopped before it undoes it.
      return {
        ...base,
        startToCloseTimeout: '2 minutes',
        heartbeatTimeout: STEP_HEARTBEAT,
        scheduleToStartTimeout: '1 minute',
        cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      };
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
    return await (
      acts[act] as unknown as { executeWithOptions: (o: ActivityOptions, a: unknown[]) => Promise<Awaited<ReturnType<HostActivities[K]>>> }
    ).executeWithOptions({ ...opts, summary }, args);
  } catch (err) {
    // Cancellations stay cancellations: the tracker turns the user's into OperationAborted.
    if (isCancellation(err)) throw err;
    const typed = unwrapActivityError(err, { host, step: String(act) });
    if (
      err instanceof ActivityFailure &&
      err.cause instanceof TimeoutFailure &&
      err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START &&
      typeof typed === 'object' &&
      typed !== null
    ) {
      NOT_TAKEN.add(typed);
    }
    throw typed;
  }
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
