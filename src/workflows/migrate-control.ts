// Job control of a migration: cancel stops the forward steps and reaches the
// source's QEMU at once; speed and downtime changes reach it, in the order they
// were signalled, while the source holds the job (from Begin to the end of Perform).
import { CancellationScope, log } from '@temporalio/workflow';
import type { BeginResult } from '../common/migration-types.js';
import type { JobTracker } from './job-tracker.js';
import { message, on } from './migration-steps.js';

export class SourceJobControl {
  private live = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly tracker: JobTracker,
    private readonly src: string,
    private readonly domain: string,
    private readonly jobId: string,
    forward: CancellationScope,
  ) {
    tracker.setHooks({
      onCancel: () => {
        forward.cancel();
        // The long step also hears of it at its next heartbeat; this reaches QEMU sooner.
        if (this.live) {
          void CancellationScope.nonCancellable(() => on(src, 'control', 'abortJob', [domain, jobId], `abort the migration of '${domain}' on ${src}`)).catch(
            (err: unknown) => log.warn('abortJob failed', { err: message(err) }),
          );
        }
      },
      onSetSpeed: (mibps) => (this.live ? this.setSpeed(mibps, `speed ${mibps} MiB/s for '${domain}' on ${src}`) : Promise.resolve()),
      onSetMaxDowntime: (ms) => (this.live ? this.setMaxDowntime(ms, `max downtime ${ms} ms for '${domain}' on ${src}`) : Promise.resolve()),
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
