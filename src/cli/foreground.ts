// A job run in the foreground, as virsh runs one: the workflow is followed to its
// end with a progress line redrawn in place on a terminal, or plain log lines
// when stdout is a pipe or file; Ctrl-C sends the job its cancel signal and the
// command waits for the compensation, so it returns only once the domain is
// settled (exit 3, OperationAborted). A second Ctrl-C leaves without waiting.
import { setTimeout as delay } from 'node:timers/promises';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType, vmError } from '../common/errors.js';
import { cancelSignal } from '../common/job-messages.js';
import type { JobInfo } from '../common/job-types.js';
import { EXIT_ABORTED } from './exit-codes.js';
import { jobInfoWithProgress } from './job-lookup.js';
import { formatProgress, RateMeter, rateOf } from './progress.js';
import type { VerbContext } from './verb.js';

const REDRAW_MS = 500;
/** Without a terminal, a progress line this often (and one at every phase change). */
const PLAIN_EVERY_MS = 2000;

export class ForegroundJob {
  private handle?: WorkflowHandle;
  private interrupted = false;
  /** A progress line is on the terminal without its newline. */
  private lineOpen = false;
  private readonly onSigint = (): void => this.interrupt();
  private readonly tty: boolean;

  constructor(private readonly ctx: VerbContext) {
    process.on('SIGINT', this.onSigint);
    this.tty = !ctx.json && process.stdout.isTTY === true;
  }

  dispose(): void {
    process.off('SIGINT', this.onSigint);
  }

  /** Call right before starting the workflow: a Ctrl-C that came earlier means do not start it. */
  notInterrupted(): void {
    if (this.interrupted) throw vmError(ErrorType.OperationAborted, 'interrupted before the job started');
  }

  private interrupt(): void {
    this.closeLine();
    if (this.interrupted) {
      this.ctx.err('interrupted again: leaving now; the job goes on aborting (see vmferry domjobinfo)');
      process.exit(EXIT_ABORTED);
    }
    this.interrupted = true;
    if (this.handle) this.cancel(this.handle);
    else this.ctx.err('interrupted: not starting the job');
  }

  private cancel(handle: WorkflowHandle): void {
    this.ctx.err(`aborting job ${handle.workflowId}; waiting for it to clean up (Ctrl-C again to leave without waiting)`);
    handle.signal(cancelSignal).catch((err: unknown) => this.ctx.err(`could not signal the job: ${err instanceof Error ? err.message : String(err)}`));
  }

  private closeLine(): void {
    if (this.lineOpen) process.stdout.write('\n');
    this.lineOpen = false;
  }

  private draw(line: string): void {
    const width = process.stdout.columns;
    const fitted = width && line.length >= width ? line.slice(0, width - 1) : line;
    process.stdout.write(`\r${fitted}\x1b[K`);
    this.lineOpen = true;
  }

  /** Follows the started job to its end and returns its result (or throws its typed failure). */
  async follow<T>(handle: WorkflowHandle, label: string): Promise<T> {
    this.handle = handle;
    if (this.interrupted) this.cancel(handle);
    const result = handle.result() as Promise<T>;
    let settled = false;
    const done = result.then(
      () => void (settled = true),
      () => void (settled = true),
    );
    const meter = new RateMeter();
    let lastPhase: string | undefined;
    let lastPlainAt = 0;
    while (!settled && !this.ctx.json) {
      const info: JobInfo | undefined = await Promise.race([jobInfoWithProgress(this.ctx.client, handle).catch(() => undefined), done.then(() => undefined)]);
      if (info && !settled) {
        const now = Date.now();
        meter.add(info.dataProcessedBytes, now);
        const line = formatProgress(label, info, rateOf(info, meter));
        if (this.tty) {
          this.draw(line);
        } else if (info.phase !== lastPhase || (now - lastPlainAt >= PLAIN_EVERY_MS && info.dataProcessedBytes !== undefined)) {
          this.ctx.out(line);
          lastPlainAt = now;
        }
        lastPhase = info.phase;
      }
      await Promise.race([done, delay(REDRAW_MS, undefined, { ref: false })]);
    }
    await done;
    const outcome = await result.then(
      () => 'completed',
      (err: unknown) => (failureType(err) === ErrorType.OperationAborted ? 'aborted' : 'failed'),
    );
    if (this.tty) {
      this.draw(`${label}: ${outcome}`);
      this.closeLine();
    } else {
      this.ctx.out(`${label}: ${outcome}`);
    }
    return await result;
  }
}

function failureType(err: unknown): string | undefined {
  const cause = err instanceof WorkflowFailedError ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/** Runs a job verb with Ctrl-C owned by the job for the whole verb (the lookups before the start included). */
export async function inForeground<T>(ctx: VerbContext, fn: (job: ForegroundJob) => Promise<T>): Promise<T> {
  const job = new ForegroundJob(ctx);
  try {
    return await fn(job);
  } finally {
    job.dispose();
  }
}
