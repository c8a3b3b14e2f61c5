// The source's part of post-copy after Perform: the switch asked for from outside
// (the startPostcopy control), the wait for the stream's end once the guest runs on
// the destination (pausing a stream whose link went silent, so both sides reach
// postcopy-paused), and the resumed stream of a recovery (`migrate` with resume).
// Nothing here cancels a post-copy stream or resumes the source's CPUs: after the
// switch the destination holds the newest state.
import { Context } from '@temporalio/activity';
import { ErrorType, vmError } from '../../common/errors.js';
import type { PostcopyWaitResult } from '../../common/postcopy.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';
import { pausePostcopy, queryMigration, resumeMigration } from '../../qemu/migration-engine.js';
import { statsOf, progressOf, switchToPostcopy } from './monitor.js';

/**
 * A post-copy stream that moves no byte for this long has lost its link (a cut link drops
 * packets silently, and TCP would retransmit for many minutes); the guest, blocked on
 * the pages it lacks, waits meanwhile. The host's stall limit applies when it is set.
 */
const POSTCOPY_STALL_MS = 10_000;

/** The job's record and its hold on the domain, taken again after a worker restart (the record outlives the process). */
function jobOf(rt: HostRuntime, name: string, jobId: string) {
  const rec = rt.jobs.find(name, jobId, 'migrate-out');
  if (!rec) throw vmError(ErrorType.OperationInvalid, `domain '${name}' has no migration job ${jobId} on this host`, { domain: name });
  const held = rt.locks.job(name);
  const job = held?.id === jobId ? held : rt.locks.beginJob(name, jobId, 'migrateOut', 'postcopy');
  if (rec.postcopyStarted) job.postcopySent = true;
  return { job, rec };
}

/** The startPostcopy control: switches now when the stream is active, else the watch switches as soon as it is. */
export async function requestPostcopy(rt: HostRuntime, name: string, jobId: string): Promise<{ status: string }> {
  const { job, rec } = jobOf(rt, name, jobId);
  if (!rec.flags.includes('postcopy')) throw vmError(ErrorType.OperationInvalid, `the migration of '${name}' was not started with 'postcopy'`);
  job.postcopyRequested = true;
  const dom = rt.requireRunning(name);
  const status = (await queryMigration(dom.qmp)).status ?? 'none';
  if (status === 'active') {
    await switchToPostcopy(job, dom.qmp, () => rt.jobs.patch(name, jobId, 'migrate-out', { postcopyStarted: true }));
    rt.log.info({ domain: name, job: jobId }, 'switched to post-copy on request');
  }
  return { status };
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * Runs from Finish until the stream ends: `completed` (the source may go), `paused`
 * (both sides must be recovered; the workflow decides when), or an error when the
 * stream failed for good. A silent link is paused here, so it is reported as paused.
 */
export async function waitPostcopy(rt: HostRuntime, name: string, jobId: string): Promise<PostcopyWaitResult> {
  const { job } = jobOf(rt, name, jobId);
  const dom = rt.getRunning(name);
  if (!dom) throw vmError(ErrorType.OperationFailed, `the source QEMU of '${name}' exited during post-copy`, { domain: name });
  const ctx = activityContext();
  const stallMs = rt.config.migration.stallTimeoutMs ?? POSTCOPY_STALL_MS;
  let ranAgain = false;
  let moved = { bytes: -1, atMs: Date.now() };
  let pauseReason: string | undefined;
  for (;;) {
    if (ctx?.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
    if (dom.qmp.isClosed) throw vmError(ErrorType.OperationFailed, `the source QEMU of '${name}' exited during post-copy`, { domain: name });
    const info = await queryMigration(dom.qmp);
    const status = info.status ?? 'none';
    job.progress = progressOf(info);
    switch (status) {
      case 'completed':
        return { status: 'completed', stats: { ...statsOf(info), postcopy: true }, ranAgain };
      case 'postcopy-paused':
        return { status: 'paused', reason: pauseReason ?? info['error-desc'] ?? 'the post-copy stream broke', ranAgain };
      case 'postcopy-active': {
        ranAgain = true;
        const bytes = info.ram?.transferred ?? 0;
        if (bytes !== moved.bytes) moved = { bytes, atMs: Date.now() };
        else if (Date.now() - moved.atMs > stallMs) {
          pauseReason = `no data moved for ${stallMs} ms (the link to the destination is down)`;
          rt.log.warn({ domain: name, job: jobId, stallMs }, 'post-copy stream stalled; pausing it for recovery');
          await pausePostcopy(dom.qmp);
          moved = { bytes: -1, atMs: Date.now() };
        }
        break;
      }
      // QEMU 9.1 and later pass through postcopy-recover-setup while the resumed channels connect.
      case 'postcopy-recover-setup':
      case 'postcopy-recover':
        break;
      default:
        throw vmError(ErrorType.OperationFailed, `the post-copy stream of '${name}' ended as ${status}: ${info['error-desc'] ?? 'QEMU gave no reason'}`, {
          domain: name,
          status,
        });
    }
    ctx?.heartbeat({ phase: 'postcopy', status, progress: job.progress });
    await dom.qmp.waitForEvent('MIGRATION', { timeoutMs: 500 }).catch(() => undefined);
  }
}

/** Dials the destination's recovery listener; the outcome shows in the status (postcopy-recover, then active or paused again). */
export async function resumePostcopy(rt: HostRuntime, name: string, jobId: string, uri: string): Promise<{ status: string }> {
  jobOf(rt, name, jobId);
  const dom = rt.requireRunning(name);
  const status = (await queryMigration(dom.qmp)).status ?? 'none';
  if (status !== 'postcopy-paused') return { status };
  await resumeMigration(dom.qmp, uri);
  rt.log.info({ domain: name, job: jobId, uri }, 'post-copy stream resumed towards the destination');
  return { status: 'postcopy-recover' };
}
