// One migration run's shared state: its request, its job (phase, signals, first
// error), its undo stack and the scope that a cancel stops. The protocol
// functions (migrate-v3.ts, migrate-v2.ts) drive it step by step.
import { CancellationScope, log, isCancellation, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { validateMigrateInput, type MigrateFlag, type MigrateInput, type MigrationJobRef } from '../common/migration-types.js';
import { DestinationHost, SourceHost } from '../common/search-attributes.js';
import { Compensations } from './compensation.js';
import { JobTracker } from './job-tracker.js';
import { SourceJobControl } from './migrate-control.js';
import { MigrationConvergence } from './migrate-convergence.js';
import { ErrorType, isVmError } from '../common/errors.js';
import { PostcopyControl } from './migrate-postcopy.js';
import { checkParallel } from '../common/parallel-migration.js';

export class MigrationJob {
  readonly flags: MigrateFlag[];
  /** 'parallel': the multifd channel count both ends run with; otherwise undefined. */
  readonly parallelConnections: number | undefined;
  readonly domain: string;
  readonly src: string;
  readonly dst: string;
  readonly job: MigrationJobRef;
  readonly tracker: JobTracker;
  readonly control: SourceJobControl;
  readonly convergence: MigrationConvergence;
  /** The post-copy switch and recovery (its Updates are registered for every migration; they refuse without 'postcopy'). */
  readonly postcopy: PostcopyControl;
  readonly saga = new Compensations();
  /** The forward steps, up to the end of the stream: a cancel stops them, and what they did is undone. */
  private readonly forward = new CancellationScope();
  /** The domain's name on the destination: the requested one until Prepare says. */
  destName: string;

  /** Throws a typed error, before anything is touched, for a request that must not start. */
  constructor(readonly input: MigrateInput) {
    this.flags = validateMigrateInput(input);
    this.parallelConnections = checkParallel(input.parallelConnections, this.flags);
    this.domain = input.domain;
    this.src = input.sourceHost;
    this.dst = input.destinationHost;
    this.destName = input.dname ?? input.domain;
    const wf = workflowInfo();
    this.job = { jobId: `${wf.workflowId}/${wf.runId}`, workflowId: wf.workflowId, runId: wf.runId };
    upsertSearchAttributes([
      { key: SourceHost, value: this.src },
      { key: DestinationHost, value: this.dst },
    ]);
    this.tracker = new JobTracker({ jobType: 'migrateOut', domain: this.domain, domainUuid: input.domainUuid ?? 'unknown', phase: 'begin' });
    if (input.bandwidthMiBps !== undefined) this.tracker.info.speedLimitMiBps = input.bandwidthMiBps;
    if (input.maxDowntimeMs !== undefined) this.tracker.info.maxDowntimeMs = input.maxDowntimeMs;
    this.control = new SourceJobControl(this.tracker, this.src, this.domain, this.job.jobId, this.forward);
    this.convergence = new MigrationConvergence(
      {
        tracker: this.tracker,
        control: this.control,
        flags: this.flags,
        // A policy's timeout: its error is the first one, then the stream stops and both sides are undone as for a cancel.
        fail: (err) => {
          this.tracker.fail(err, this.tracker.info.phase);
          this.control.stop(this.forward);
        },
      },
      input.policy,
    );
    this.postcopy = new PostcopyControl(this);
    // A convergence policy's switch goes the way the startPostcopy Update does (still refused at input: unbuiltPolicyPart).
    this.control.onPostcopyRequest = async () => {
      if (this.postcopy.switchRefusal() !== undefined) return;
      await this.postcopy.request().catch((err: unknown) => log.warn('post-copy switch by policy failed', { err: String(err) }));
    };
  }

  has(f: MigrateFlag): boolean {
    return this.flags.includes(f);
  }

  /**
   * Runs forward steps that can still be undone. On a failure or cancel their undos
   * run together (nothing runs on the destination yet, so none makes another unsafe)
   * and the workflow fails with the first error, with its phase.
   */
  async undoable<T>(steps: () => Promise<T>): Promise<T> {
    try {
      return await this.forward.run(steps);
    } catch (err) {
      this.control.detach();
      const phase = this.tracker.info.phase;
      // A policy timeout recorded its error and then cancelled: that cancel is its consequence, not the user's.
      const policyStopped = this.tracker.info.error !== undefined && (isCancellation(err) || isVmError(err, ErrorType.OperationAborted));
      if (isCancellation(err) && !policyStopped) this.tracker.requestCancel();
      if (!policyStopped) this.tracker.fail(err, phase);
      await this.saga.unwindTogether();
      throw this.tracker.firstFailure();
    }
  }

  /** Runs a step past the point of no return: cancels no longer stop it. */
  async committed<T>(step: () => Promise<T>): Promise<T> {
    return await CancellationScope.nonCancellable(step);
  }

  /**
   * A step past the stream failed: what is left on the undo stack is undone in
   * order (the source resumes only once the destination is known dead), and the
   * workflow fails with the first error.
   */
  async failed(err: unknown, phase: string): Promise<never> {
    this.tracker.fail(err, phase);
    await this.saga.unwindInOrder();
    throw this.tracker.firstFailure();
  }
}
