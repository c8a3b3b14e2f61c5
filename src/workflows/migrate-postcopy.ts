// Post-copy in the migrate workflow (v3 only), as libvirt runs it. The switch
// happens on request: the `startPostcopy` Update (virsh migrate-postcopy), or
// request() from workflow code (a convergence policy), or on the source by itself
// after the first pre-copy pass (postcopy-after-precopy). At the switch Perform
// returns; Finish starts the guest on the destination while its pages still
// arrive; then this module waits for the stream's end, recovering it when its link
// breaks (both QEMUs in postcopy-paused): by itself, with backoff, and at once on
// the `recoverPostcopy` Update (virsh migrate-recover), optionally through a new
// destination address. After the switch nothing resumes the source: a failure
// leaves the guest paused on the destination, which holds the newest state.
import { ApplicationFailure, condition, log, setHandler } from '@temporalio/workflow';
import { ErrorType, vmError } from '../common/errors.js';
import type { MigrationStats } from '../common/migration-types.js';
import {
  invalidRecoverRequest,
  recoverPostcopyUpdate,
  startPostcopyUpdate,
  type PostcopyState,
  type RecoverPostcopyRequest,
  type RecoverPostcopyResult,
  type StartPostcopyResult,
} from '../common/postcopy.js';
import type { Compensation } from './compensation.js';
import { message, on } from './migration-steps.js';
import type { MigrationJob } from './migration-job.js';

/** Automatic recovery attempts while paused: the first after this, doubling up to the cap. */
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;

function refusal(why: string | undefined): void {
  if (why) throw ApplicationFailure.create({ type: ErrorType.OperationInvalid, message: why, nonRetryable: true });
}

export class PostcopyControl {
  state: PostcopyState | undefined;
  attempts = 0;
  private wanted: RecoverPostcopyRequest | undefined;

  constructor(private readonly m: MigrationJob) {
    setHandler(startPostcopyUpdate, () => this.request(), { validator: () => refusal(this.switchRefusal()) });
    setHandler(recoverPostcopyUpdate, (req) => this.recoverNow(req ?? {}), {
      validator: (req) => refusal(invalidRecoverRequest(req) ?? this.recoverRefusal()),
    });
    // After the switch the destination may run the guest: an abort could only lose it (libvirt refuses it too).
    m.tracker.setHooks({ cancelRefusal: () => (this.state === undefined ? undefined : `the migration is in post-copy (${this.state}); it cannot be aborted`) });
  }

  /** Why the switch cannot be asked for now, or undefined. */
  switchRefusal(): string | undefined {
    const { m } = this;
    if (!m.has('postcopy')) return "the migration was not started with 'postcopy' (virsh migrate --postcopy)";
    if (m.tracker.info.status !== 'running' || m.tracker.cancelRequested)
      return `the job is ${m.tracker.cancelRequested ? 'being cancelled' : m.tracker.info.status}`;
    if (this.state !== undefined) return `post-copy is already ${this.state}`;
    if (m.tracker.info.phase !== 'perform') return `post-copy starts only during the pre-copy phase of Perform; the job is in ${m.tracker.info.phase}`;
    return undefined;
  }

  /** Switch to post-copy now: the Update's handler, and the entry point for workflow code (a convergence policy). */
  async request(): Promise<StartPostcopyResult> {
    const { m } = this;
    this.enter('requested');
    try {
      await on(m.src, 'control', 'migrateStartPostcopy', [m.domain, m.job.jobId], `switch '${m.domain}' to post-copy on ${m.src}`);
    } catch (err) {
      // The stream ended meanwhile (or the source refused): still a pre-copy migration.
      if (this.state === 'requested') this.enter(undefined);
      throw err;
    }
    return { postcopy: this.state ?? 'requested' };
  }

  private recoverRefusal(): string | undefined {
    if (!this.m.has('postcopy')) return "the migration was not started with 'postcopy'";
    if (this.state !== 'paused' && this.state !== 'recovering') return `the post-copy stream is not paused (post-copy: ${this.state ?? 'not started'})`;
    return undefined;
  }

  /** The Update: an attempt now (through `uri` if given), answered once it has started. */
  private async recoverNow(req: RecoverPostcopyRequest): Promise<RecoverPostcopyResult> {
    const before = this.attempts;
    this.wanted = req;
    await condition(() => this.attempts > before || this.state === 'completed' || this.state === 'failed');
    return { postcopy: this.state ?? 'paused', attempt: this.attempts };
  }

  enter(state: PostcopyState | undefined): void {
    this.state = state;
    if (state === undefined) delete this.m.tracker.info.postcopyState;
    else this.m.tracker.info.postcopyState = state;
  }

  /** Until the next attempt is due: the backoff elapsed, or someone asked for one. */
  async nextAttempt(backoffMs: number): Promise<RecoverPostcopyRequest> {
    await condition(() => this.wanted !== undefined, backoffMs);
    const req = this.wanted ?? {};
    this.wanted = undefined;
    this.attempts++;
    this.m.tracker.info.postcopyRecoveries = this.attempts;
    return req;
  }
}

/** What a failure after the switch says: the guest is not lost, but it is paused on the destination. */
export function postcopyFailure(m: MigrationJob, err: unknown): ApplicationFailure {
  return vmError(
    ErrorType.OperationFailed,
    `${message(err)}; post-copy had started: '${m.destName}' is left paused on ${m.dst}, which holds its newest state, and the source on ${m.src} must not resume it`,
    { domain: m.destName, host: m.dst },
  );
}

/** The undo after the switch: the destination keeps the guest, paused; the source ends its job and stays paused (abortSource never resumes after post-copy). */
export function keepPausedOnDestination(m: MigrationJob, uuid: string): Compensation {
  return {
    run: async () => {
      let ok = true;
      m.postcopy.enter('failed');
      for (const step of [
        () => on(m.dst, 'cleanup', 'migratePostcopyKeepPaused', [m.destName, m.job.jobId], `keep '${m.destName}' paused on ${m.dst}`),
        () =>
          on(
            m.src,
            'cleanup',
            'migrateConfirm',
            [{ ...m.job, domain: m.domain, uuid, success: false, flags: m.flags }],
            `end the job of '${m.domain}' on ${m.src}; it stays paused`,
          ),
      ]) {
        try {
          await step();
        } catch (err) {
          m.tracker.cleanupError(err, 'postcopy');
          ok = false;
        }
      }
      return ok;
    },
  };
}

/**
 * From Finish to the stream's end: waits on the source, and while the stream is
 * paused recovers it (destination listens, source resumes). Returns QEMU's final figures.
 */
export async function awaitPostcopyStream(m: MigrationJob): Promise<MigrationStats> {
  const pc = m.postcopy;
  let backoffMs = FIRST_BACKOFF_MS;
  for (;;) {
    m.tracker.phase('postcopy');
    const r = await on(m.src, 'long', 'migratePostcopyWait', [m.domain, m.job.jobId], `wait for the post-copy stream of '${m.domain}' on ${m.src}`);
    if (r.status === 'completed') {
      pc.enter('completed');
      return r.stats ?? {};
    }
    if (r.ranAgain) backoffMs = FIRST_BACKOFF_MS;
    pc.enter('paused');
    m.tracker.phase('postcopy-paused');
    log.warn('post-copy stream paused', { domain: m.domain, reason: r.reason });
    if (m.has('tunnelled') || m.has('tls')) {
      throw vmError(
        ErrorType.OperationFailed,
        `the post-copy stream broke (${r.reason ?? 'paused'}); recovering an encrypted (tls or tunnelled) stream is not built`,
      );
    }
    // A silent link leaves the destination active until told; a dead destination QEMU fails here (the guest is lost).
    await on(m.dst, 'control', 'migratePostcopyPauseIncoming', [m.destName], `pause the incoming post-copy stream of '${m.destName}' on ${m.dst}`);
    const req = await pc.nextAttempt(backoffMs);
    backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    pc.enter('recovering');
    try {
      const { uri } = await on(
        m.dst,
        'control',
        'migratePostcopyListen',
        [m.destName, m.job.jobId, ...(req.uri !== undefined ? [req.uri] : [])] as [string, string, string?],
        `listen for the resumed post-copy stream of '${m.destName}' on ${m.dst}`,
      );
      if (uri !== '')
        await on(m.src, 'control', 'migratePostcopyResume', [m.domain, m.job.jobId, uri], `resume the post-copy stream of '${m.domain}' to ${uri}`);
    } catch (err) {
      // The link may still be down, or the address asked for is wrong: the next attempt (or request) tries again.
      log.warn('post-copy recovery attempt failed', { attempt: pc.attempts, err: message(err) });
    }
  }
}
