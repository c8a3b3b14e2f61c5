// libvirt's `migrate --timeout` with its default action, suspend: a live
// migration still running after the timeout has its guest paused on the source,
// so nothing dirties memory any more and the stream converges. The destination
// then starts as after any live migration (Finish resumes a guest that ran at
// Begin), and a failure afterwards resumes the source as Confirm always does.
import { ErrorType, vmError } from '../../common/errors.js';
import { invalidTimeout, type PerformArgs } from '../../common/migration-types.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';

/** The monitor's statuses in which pausing the guest still helps the stream converge. */
const PRECOPY = new Set(['setup', 'active']);

export class TimeoutSuspend {
  private timer?: NodeJS.Timeout;
  private armed = false;
  private due = false;
  private handled = false;
  /** Wall-clock ms at which the guest was paused by this timer. */
  suspendedAtMs?: number;

  /** `timeoutMs` after the migration started (undefined: no timeout); `kick` wakes the monitor, which then calls `check`. */
  constructor(
    private readonly timeoutMs: number | undefined,
    private readonly kick: () => void,
  ) {}

  /**
   * Starts the timer from QEMU's own count of the migration's age (query-migrate
   * total-time), so a watch resumed by a retried step keeps the first deadline.
   * Only the first call counts.
   */
  arm(elapsedMs: number | undefined): void {
    if (this.timeoutMs === undefined || this.armed) return;
    this.armed = true;
    this.timer = setTimeout(
      () => {
        this.due = true;
        this.kick();
      },
      Math.max(0, this.timeoutMs - (elapsedMs ?? 0)),
    );
  }

  /** Pauses the guest once, when the deadline has passed and it still runs a pre-copy stream; returns true if it did. */
  async check(dom: RunningDomain, status: string): Promise<boolean> {
    if (!this.due || this.handled) return false;
    this.handled = true;
    // Post-copy already moved the guest; a guest paused before (or a non-live migration) has nothing left to stop.
    if (!PRECOPY.has(status) || dom.state !== 'running') return false;
    await dom.qmp.execute('stop');
    dom.setState('paused', 'migration');
    this.suspendedAtMs = Date.now();
    return true;
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

/**
 * Perform's monitor options for --timeout. The value is checked again here, before
 * the stream starts, since any workflow can call the step.
 */
export function timeoutOptions(rt: HostRuntime, name: string, a: PerformArgs): { timeoutSuspendMs?: number; onTimeoutSuspend?: () => void } {
  if (a.timeoutSuspendSeconds === undefined) return {};
  const why = invalidTimeout(a.timeoutSuspendSeconds);
  if (why) throw vmError(ErrorType.OperationInvalid, why);
  const seconds = a.timeoutSuspendSeconds;
  return {
    timeoutSuspendMs: seconds * 1000,
    onTimeoutSuspend: () =>
      rt.log.info(
        { domain: name, job: a.jobId, phase: 'perform', timeoutS: seconds },
        'migration timeout: guest suspended on the source so the migration can converge',
      ),
  };
}
