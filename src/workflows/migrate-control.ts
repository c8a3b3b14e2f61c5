// Job control of a migration: cancel stops the forward steps and reaches the
// source's QEMU at once; speed and downtime changes reach it, in the order they
// were signalled, while the source holds the job (from Begin to the end of Perform).
import { CancellationScope, log } from '@temporalio/workflow';
import type { BeginResult, MigrationTuning } from '../common/migration-types.js';
import type { JobTracker } from './job-tracker.js';
import { message, on } from './migration-steps.js';

export class SourceJobControl {
  private live = false;
  private queue: Promise<void> = Promise.resolve();
  /** A user's speed or downtime change, which the convergence policy keeps until its next step. */
  onUserChange?: (change: { maxDowntimeMs?: number; bandwidthMiBps?: number }) => void;

  constructor(
    private readonly tracker: JobTracker,
    private readonly src: string,
    private readonly domain: string,
    private readonly jobId: string,
    forward: CancellationScope,
  ) {
    tracker.setHooks({
      onCancel: () => this.stop(forward),
      onSetSpeed: (mibps) => {
        this.onUserChange?.({ bandwidthMiBps: mibps });
        return this.live ? this.setSpeed(mibps, `speed ${mibps} MiB/s for '${domain}' on ${src}`) : Promise.resolve();
      },
      onSetMaxDowntime: (ms) => {
        this.onUserChange?.({ maxDowntimeMs: ms });
        return this.live ? this.setMaxDowntime(ms, `max downtime ${ms} ms for '${domain}' on ${src}`) : Promise.resolve();
      },
    });
  }

  /** Begin took the job on the source (a live one: offline has no stream): signals that arrived meanwhile were recorded, not applied. */
  attach(begun: BeginResult, live: boolean): void {
    this.live = live;
    if (!live) return;
    const speed = this.tracker.info.speedLimitMiBps ?? 0;
    if (speed !== begun.bandwidthMiBps) void this.setSpeed(speed, `speed ${speed} MiB/s on ${this.src}`);
    const downtime = this.tracker.info.maxDowntimeMs;
    if (downtime !== undefined && downtime !== begun.maxDowntimeMs) void this.setMaxDowntime(downtime, `max downtime ${downtime} ms on ${this.src}`);
  }

  /** Stops the forward steps, and the source's QEMU stream at once (the long step would hear of it only at its next heartbeat). */
  stop(forward: CancellationScope): void {
    forward.cancel();
    if (!this.live) return;
    const { src, domain, jobId } = this;
    void CancellationScope.nonCancellable(() => on(src, 'control', 'abortJob', [domain, jobId], `abort the migration of '${domain}' on ${src}`)).catch(
      (err: unknown) => log.warn('abortJob failed', { err: message(err) }),
    );
  }

  get isLive(): boolean {
    return this.live;
  }

  // The convergence policy's changes take the same ordered path as the user's; a failed one is logged, the next sample tries again.
  policyMaxDowntime(ms: number): Promise<void> {
    return this.setMaxDowntime(ms, `policy: max downtime ${ms} ms for '${this.domain}' on ${this.src}`).catch((err: unknown) =>
      log.warn('policy downtime not applied', { err: message(err) }),
    );
  }

  policySpeed(mibps: number): Promise<void> {
    return this.setSpeed(mibps, `policy: speed ${mibps} MiB/s for '${this.domain}' on ${this.src}`).catch((err: unknown) =>
      log.warn('policy speed not applied', { err: message(err) }),
    );
  }

  policyTuning(t: MigrationTuning): Promise<void> {
    return this.enqueue(() =>
      on(this.src, 'control', 'setJobTuning', [this.domain, this.jobId, t], `policy: throttle settings for '${this.domain}' on ${this.src}`),
    ).catch((err: unknown) => log.warn('policy tuning not applied', { err: message(err) }));
  }

  policySuspend(): Promise<void> {
    return this.enqueue(() =>
      on(
        this.src,
        'control',
        'suspendJobGuest',
        [this.domain, this.jobId],
        `policy timeout: suspend '${this.domain}' on ${this.src} so the migration completes`,
      ),
    ).catch((err: unknown) => log.warn('policy suspend not applied', { err: message(err) }));
  }

  policyPostcopy(): Promise<void> {
    // The switch itself is PostcopyControl's (migrate-postcopy.ts), which MigrationJob plugs in here.
    return this.onPostcopyRequest?.() ?? Promise.resolve();
  }

  /** Set by the migration: the post-copy switch on request (never rejects). */
  onPostcopyRequest?: () => Promise<void>;

  /** The source's QEMU migration is over (or never started): nothing more to send it. */
  detach(): void {
    this.live = false;
  }

  /** Resolves once every change sent so far has been applied or has failed: the limits are in QEMU before the stream starts. */
  async settled(): Promise<void> {
    await this.queue;
  }

  private setSpeed(mibps: number, summary: string): Promise<void> {
    return this.enqueue(() => on(this.src, 'control', 'setJobSpeed', [this.domain, this.jobId, mibps], summary));
  }

  private setMaxDowntime(ms: number, summary: string): Promise<void> {
    return this.enqueue(() => on(this.src, 'control', 'setJobMaxDowntime', [this.domain, this.jobId, ms], summary));
  }

  private enqueue(fn: () => Promise<unknown>): Promise<void> {
    const next = this.queue.then(async () => void (await fn()));
    this.queue = next.catch(() => undefined);
    return next;
  }
}
