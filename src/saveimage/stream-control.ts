// What the save and restore pipelines share: how the activity steers them
// (abort, progress, recording helper PIDs for crash recovery) and a watcher
// that follows QEMU's migration stream together with the helper processes.
import { ErrorType, vmError } from '../common/errors.js';
import type { JobProgress } from '../common/job-types.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { Helper, HelperRef } from './compressor.js';

export interface StreamControl {
  /** Polled: the abort activity or the activity's cancellation asked the job to stop. */
  aborted(): boolean;
  /** Called before QEMU sees the stream, so a restarted worker can find orphaned helpers. */
  onHelpers(helpers: HelperRef[]): void;
  onProgress(progress: JobProgress, status: string): void;
  /**
   * Test fault points only (`*.mid-stream`): when set, the pipeline passes the
   * first MiB of QEMU's stream, awaits this with the rest held back (QEMU
   * blocked on the pipe), then passes the rest. A throw ends the stream like
   * any other failure. See mid-stream-relay.ts.
   */
  midStream?(): Promise<void>;
}

export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

/** How often the abort flag is looked at: well under the second a cancel may take. */
const ABORT_POLL_MS = 50;
export const PROGRESS_INTERVAL_MS = 500;

export function abortedError(what: string): Error {
  return vmError(ErrorType.OperationAborted, `${what} aborted by the user`);
}

export type StreamEvent = { kind: 'status'; status: string } | { kind: 'helper'; helper: Helper } | { kind: 'gone' } | { kind: 'aborted' };

/**
 * Follows one pipeline: QEMU's MIGRATION events (subscribe before the migration
 * starts), QEMU going away, helpers exiting, and the abort flag. Events are
 * collected as they come and handed out by next(), so nothing is missed while
 * the caller is busy and no promise chains pile up during a long stream.
 */
export class StreamWatcher {
  status: string | undefined;
  gone = false;
  private readonly exited: Helper[] = [];
  private wake: () => void = () => undefined;
  private readonly unsubscribe: () => void;
  private nextProbe = 0;

  constructor(
    qmp: QmpClient,
    private readonly control: StreamControl,
  ) {
    this.unsubscribe = qmp.onEvent((ev) => {
      const status = String(ev.data?.status);
      if (ev.event === 'MIGRATION' && TERMINAL_STATUSES.has(status)) this.setStatus(status);
    });
    void qmp.closed.then(() => {
      this.gone = true;
      this.wake();
    });
  }

  setStatus(status: string): void {
    this.status ??= status;
    this.wake();
  }

  watch(helpers: Helper[]): void {
    for (const h of helpers) {
      void h.exited.then(() => {
        this.exited.push(h);
        this.wake();
      });
    }
  }

  dispose(): void {
    this.unsubscribe();
  }

  /**
   * The next thing that happened; `probe` runs every PROGRESS_INTERVAL_MS for
   * progress (and may report a terminal status QEMU sent no event for).
   */
  async next(probe: () => Promise<{ progress: JobProgress; status?: string }>): Promise<StreamEvent> {
    for (;;) {
      if (this.control.aborted()) return { kind: 'aborted' };
      const helper = this.exited.shift();
      if (helper) return { kind: 'helper', helper };
      if (this.status !== undefined) return { kind: 'status', status: this.status };
      if (this.gone) return { kind: 'gone' };
      if (Date.now() >= this.nextProbe) {
        this.nextProbe = Date.now() + PROGRESS_INTERVAL_MS;
        try {
          const p = await probe();
          this.control.onProgress(p.progress, p.status ?? 'active');
          if (p.status && TERMINAL_STATUSES.has(p.status)) this.setStatus(p.status);
          continue;
        } catch {
          // QEMU going away shows up as `gone`; a missed sample is not worth failing the job
        }
      }
      await this.sleep();
    }
  }

  /** After a cancel: waits (ignoring the abort flag) until QEMU's stream has stopped. */
  async settled(probe: () => Promise<{ status?: string }>, timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.status !== undefined || this.gone) return this.status;
      try {
        const p = await probe();
        if (p.status && TERMINAL_STATUSES.has(p.status)) this.setStatus(p.status);
        else if (p.status === 'none') return p.status;
      } catch {
        // QEMU going away shows up as `gone`
      }
      await this.sleep();
    }
    return undefined;
  }

  /** Waits for the given helpers to exit, watching the abort flag; false when aborted. */
  async helpersDone(helpers: Helper[], onTick: () => void): Promise<boolean> {
    for (;;) {
      if (this.control.aborted()) return false;
      if (helpers.every((h) => h.hasExited())) return true;
      await this.sleep();
      onTick();
    }
  }

  private sleep(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ABORT_POLL_MS);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
