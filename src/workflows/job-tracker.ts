// The workflow side of a job: its phase (also a search attribute), the jobInfo
// query, the control signals, and the first-error rule (cleanup errors are
// attached, never substituted).
import { ApplicationFailure, isCancellation, log, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import {
  cancelSignal,
  invalidDowntime,
  invalidSpeed,
  jobInfoQuery,
  setMaxDowntimeSignal,
  setMaxDowntimeUpdate,
  setSpeedSignal,
  setSpeedUpdate,
} from '../common/job-messages.js';
import type { JobError, JobInfo, JobProgress, JobType } from '../common/job-types.js';
import { ErrorType } from '../common/errors.js';
import { DomainName, DomainUuid, JobPhase, JobType as JobTypeKey } from '../common/search-attributes.js';
import { recordJobEnd } from './job-metrics.js';

export interface JobHooks {
  /** Called once, on the first cancel signal or native cancellation noticed by the workflow. */
  onCancel?: () => void;
  onSetSpeed?: (mibps: number) => Promise<void>;
  onSetMaxDowntime?: (ms: number) => Promise<void>;
  /** Each phase change (a migration's whole-job percentage moves with it). */
  onPhase?: (phase: string) => void;
  /** Why a cancel cannot be honoured now (e.g. a migration past its post-copy switch), or undefined: the cancel is then logged and dropped. */
  cancelRefusal?: () => string | undefined;
}

export class JobTracker {
  readonly info: JobInfo;
  private cancelled = false;

  constructor(
    init: { jobType: JobType; domain: string; domainUuid: string; phase: string },
    private readonly hooks: JobHooks = {},
  ) {
    const startedAtMs = workflowInfo().startTime.getTime();
    this.info = { jobType: init.jobType, domain: init.domain, domainUuid: init.domainUuid, status: 'running', phase: init.phase, startedAtMs, elapsedMs: 0 };
    upsertSearchAttributes([
      { key: JobTypeKey, value: init.jobType },
      { key: DomainName, value: init.domain },
      { key: DomainUuid, value: init.domainUuid },
      { key: JobPhase, value: init.phase },
    ]);
    setHandler(jobInfoQuery, () => ({ ...this.info, elapsedMs: Date.now() - this.info.startedAtMs }));
    setHandler(cancelSignal, () => this.requestCancel());
    setHandler(setSpeedSignal, async (mibps) => {
      const why = invalidSpeed(mibps);
      if (why) return void log.warn('setSpeed ignored', { why });
      await this.applySpeed(mibps);
    });
    setHandler(setMaxDowntimeSignal, async (ms) => {
      const why = invalidDowntime(ms);
      if (why) return void log.warn('setMaxDowntime ignored', { why });
      await this.applyMaxDowntime(ms);
    });
    setHandler(setSpeedUpdate, async (mibps) => ({ speedLimitMiBps: await this.applySpeed(mibps) }), {
      validator: (mibps) => refuseIf(invalidSpeed(mibps), this.info.status),
    });
    setHandler(setMaxDowntimeUpdate, async (ms) => ({ maxDowntimeMs: await this.applyMaxDowntime(ms) }), {
      validator: (ms) => refuseIf(invalidDowntime(ms), this.info.status),
    });
  }

  private async applySpeed(mibps: number): Promise<number> {
    this.info.speedLimitMiBps = mibps;
    await this.hooks.onSetSpeed?.(mibps).catch((err: unknown) => log.warn('setSpeed not applied', { err: String(err) }));
    return mibps;
  }

  private async applyMaxDowntime(ms: number): Promise<number> {
    this.info.maxDowntimeMs = ms;
    await this.hooks.onSetMaxDowntime?.(ms).catch((err: unknown) => log.warn('setMaxDowntime not applied', { err: String(err) }));
    return ms;
  }

  get cancelRequested(): boolean {
    return this.cancelled;
  }

  requestCancel(): void {
    if (this.cancelled) return;
    const refused = this.hooks.cancelRefusal?.();
    if (refused !== undefined) return void log.warn('cancel refused', { why: refused });
    this.cancelled = true;
    this.hooks.onCancel?.();
  }

  setHooks(hooks: JobHooks): void {
    Object.assign(this.hooks, hooks);
  }

  phase(phase: string): void {
    this.info.phase = phase;
    upsertSearchAttributes([{ key: JobPhase, value: phase }]);
    this.hooks.onPhase?.(phase);
  }

  progress(p: JobProgress): void {
    Object.assign(this.info, p);
  }

  /** Records err as the job's error unless one is already recorded; returns the error to throw. */
  fail(err: unknown, phase = this.info.phase): ApplicationFailure {
    const failure = toFailure(err, this.cancelled);
    if (!this.info.error) {
      this.info.error = { type: failure.type ?? ErrorType.InternalError, message: failure.message, phase };
      this.info.status = failure.type === ErrorType.OperationAborted ? 'cancelled' : 'failed';
      recordJobEnd(this.info.jobType, this.info.status, Date.now() - this.info.startedAtMs);
      return failure;
    }
    this.cleanupError(err, phase);
    return this.firstFailure();
  }

  cleanupError(err: unknown, phase: string): void {
    const failure = toFailure(err, false);
    const entry: JobError = { type: failure.type ?? ErrorType.InternalError, message: failure.message, phase };
    (this.info.cleanupErrors ??= []).push(entry);
  }

  /** The error the workflow fails with: the first one, cleanup errors in its details. */
  firstFailure(): ApplicationFailure {
    const e = this.info.error!;
    return ApplicationFailure.create({
      type: e.type,
      message: `${e.phase}: ${e.message}`,
      nonRetryable: true,
      details: [{ phase: e.phase, cleanupErrors: this.info.cleanupErrors ?? [] }],
    });
  }

  complete(): void {
    this.info.status = 'completed';
    recordJobEnd(this.info.jobType, 'completed', Date.now() - this.info.startedAtMs);
    this.phase('completed');
  }
}

function refuseIf(why: string | undefined, status: JobInfo['status']): void {
  if (why) throw ApplicationFailure.create({ type: ErrorType.OperationInvalid, message: why, nonRetryable: true });
  if (status !== 'running') throw ApplicationFailure.create({ type: ErrorType.OperationInvalid, message: `the job is ${status}`, nonRetryable: true });
}

function toFailure(err: unknown, cancelled: boolean): ApplicationFailure {
  if (cancelled && (isCancellation(err) || (err instanceof ApplicationFailure && err.type === ErrorType.OperationAborted))) {
    return ApplicationFailure.create({ type: ErrorType.OperationAborted, message: 'operation aborted by the user', nonRetryable: true });
  }
  if (err instanceof ApplicationFailure) return err;
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof ApplicationFailure) return cause;
  const message = err instanceof Error ? err.message : String(err);
  return ApplicationFailure.create({ type: ErrorType.OperationFailed, message, nonRetryable: true });
}
