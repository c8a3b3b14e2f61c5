// Watches one outgoing migration on the source QEMU until it ends: polls
// query-migrate every ~500 ms (sooner when a MIGRATION event arrives), reports
// progress through a heartbeat callback and the host's job entry, and turns
// QEMU's end state into a result or a typed error. At completion the source is
// marked paused from QEMU's own run state, so a lost STOP event changes nothing.
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType, vmError } from '../../common/errors.js';
import type { JobProgress } from '../../common/job-types.js';
import type { MigrationHeartbeat, MigrationStats } from '../../common/migration-types.js';
import type { HostJob } from '../domain-lock.js';
import { faultPoint } from '../../support/fault-points.js';
import type { RunningDomain } from '../running-domain.js';
import type { QmpEvent } from '../../qemu/qmp-client.js';
import { cancelMigration, queryMigration, startPostcopy } from '../../qemu/migration-engine.js';
import { isMigrationActive, type MigrationInfo } from '../../qemu/migration-info.js';
import { readLimits } from '../../qemu/migration-params.js';
import { TimeoutSuspend } from './timeout-action.js';

/** libvirt's domjobinfo fields from query-migrate. */
export function progressOf(info: MigrationInfo): JobProgress {
  const ram = info.ram ?? {};
  const p: JobProgress = {};
  if (ram.total !== undefined) p.dataTotalBytes = p.memTotalBytes = ram.total;
  if (ram.transferred !== undefined) p.dataProcessedBytes = p.memProcessedBytes = ram.transferred;
  if (ram.remaining !== undefined) p.dataRemainingBytes = p.memRemainingBytes = ram.remaining;
  if (ram['dirty-pages-rate'] !== undefined) p.dirtyRatePagesPerSec = ram['dirty-pages-rate'];
  if (ram['dirty-sync-count'] !== undefined) p.iterations = ram['dirty-sync-count'];
  if (info['cpu-throttle-percentage'] !== undefined) p.throttlePercent = info['cpu-throttle-percentage'];
  // QEMU reports megabits per second.
  if (ram.mbps !== undefined) p.bandwidthMiBps = Math.round(((ram.mbps * 1e6) / 8 / (1024 * 1024)) * 10) / 10;
  if (info['expected-downtime'] !== undefined) p.expectedDowntimeMs = info['expected-downtime'];
  if (info.downtime !== undefined) p.downtimeMs = info.downtime;
  if (info['setup-time'] !== undefined) p.setupTimeMs = info['setup-time'];
  if (ram.total !== undefined && ram.total > 0 && ram.remaining !== undefined) {
    p.percent = Math.max(0, Math.min(100, Math.floor(((ram.total - ram.remaining) / ram.total) * 100)));
  }
  return p;
}

export function statsOf(info: MigrationInfo): MigrationStats {
  return {
    ...progressOf(info),
    ...(info['total-time'] !== undefined ? { totalTimeMs: info['total-time'] } : {}),
    ...(info.ram?.transferred !== undefined ? { transferredBytes: info.ram.transferred } : {}),
  };
}

export function eventTimeMs(ev: QmpEvent): number {
  return ev.timestamp.seconds * 1000 + Math.floor(ev.timestamp.microseconds / 1000);
}

export interface MonitorOptions {
  dom: RunningDomain;
  job: HostJob;
  /** Aborts the watch; `onAbort` says whether the migration is cancelled or merely left running. */
  signal: AbortSignal;
  onAbort: () => 'cancel' | 'detach';
  heartbeat: (hb: MigrationHeartbeat) => void;
  intervalMs?: number;
  /** No byte moved for this long while active: the destination stopped reading. */
  stallTimeoutMs?: number;
  /** How long a cancelled migration may take to reach a final state. */
  cancelDeadlineMs?: number;
  abortOnIoError?: boolean;
  /**
   * The stream runs with the postcopy-ram capability: it switches to post-copy when
   * the job asks (HostJob.postcopyRequested, the startPostcopy control) or, with
   * `afterPrecopy`, once the first pre-copy pass is through (virsh's
   * --postcopy-after-precopy). At the switch the watch returns (`postcopyRunning`):
   * the destination runs the guest from then on, and the stream's end is awaited
   * by postcopy-source.ts. Nothing cancels the stream after the switch.
   */
  postcopy?: { afterPrecopy: boolean };
  /** Called once post-copy has started (from then on the source cannot resume). */
  onPostcopy?: () => void;
  /**
   * Aborted (reason: the error to report) when what carries the stream is gone,
   * e.g. a tunnel whose peer stopped answering: the migration is cancelled at
   * once and fails with that reason rather than QEMU's broken pipe.
   */
  lost?: AbortSignal;
  /** Right after migrate_cancel: tear down what carries the stream, so a stalled peer cannot hold QEMU. */
  afterCancel?: () => void;
  /** libvirt's migrate --timeout (action suspend): pause the guest this long after the migration started. */
  timeoutSuspendMs?: number;
  /** Called when that timer paused the guest. */
  onTimeoutSuspend?: () => void;
  /** Storage copy: the disk mirrors' state each round; a failed mirror cancels the migration. */
  checkStorage?: () => Promise<{ failed?: Error; progress: JobProgress }>;
  /** Storage copy: QEMU paused at pre-switchover; complete the disks and let it continue. */
  onPreSwitchover?: () => Promise<void>;
  /** Each poll's figures, for the convergence policy (progress-signal.ts decides what is sent). */
  onSample?: (info: MigrationInfo, progress: JobProgress) => void;
}

/** A timer that an event can cut short; a kick while nobody waits makes the next wait return at once. */
class Wakeup {
  private resolve?: () => void;
  private pending = false;
  kick(): void {
    const r = this.resolve;
    this.resolve = undefined;
    if (r) r();
    else this.pending = true;
  }
  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.kick(), ms);
      this.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/** Thrown when the watch stops without cancelling (worker shutdown, timed-out attempt): a retry resumes it. */
export function detachedError(why: string): Error {
  return ApplicationFailure.retryable(`stopped watching the migration (${why}); QEMU keeps migrating and a retry resumes the watch`, DETACHED);
}

/** Not one of the stable error types: the workflow's retry policy retries it. */
export const DETACHED = 'MigrationWatchDetached';

/** Where the test-only fault point migrate.perform-late fires: this share of RAM has been sent. */
const LATE_PERCENT = 60;

/** What the watch ends with: the stream completed, or (post-copy) it switched and goes on. */
export type MonitorResult = MigrationStats & { postcopyRunning?: boolean };

export async function monitorMigration(opts: MonitorOptions): Promise<MonitorResult> {
  const { dom, job, signal } = opts;
  const qmp = dom.qmp;
  const interval = opts.intervalMs ?? 500;
  const wake = new Wakeup();
  let stoppedAtMs: number | undefined;
  let ioError: string | undefined;
  const unsubscribe = qmp.onEvent((ev) => {
    if (ev.event === 'STOP') stoppedAtMs = eventTimeMs(ev);
    if (ev.event === 'BLOCK_IO_ERROR' && opts.abortOnIoError) ioError = String(ev.data?.device ?? ev.data?.['node-name'] ?? 'a disk');
    if (ev.event === 'MIGRATION' || ev.event === 'MIGRATION_PASS' || ev.event === 'BLOCK_IO_ERROR') wake.kick();
  });
  const onAbort = (): void => wake.kick();
  signal.addEventListener('abort', onAbort);
  opts.lost?.addEventListener('abort', onAbort);
  const lostReason = (): Error | undefined => (opts.lost?.aborted ? (opts.lost.reason as Error) : undefined);
  let lastMoved = { bytes: -1, atMs: Date.now() };
  let lateReached = false;
  let cancelSent = false;
  let switchedOver = false;
  let lastDisk: JobProgress | undefined;
  const timeout = new TimeoutSuspend(opts.timeoutSuspendMs, () => wake.kick());
  const cancel = async (): Promise<void> => {
    if (cancelSent) return;
    cancelSent = true;
    await cancelMigration(qmp).catch(() => undefined);
    opts.afterCancel?.();
  };
  try {
    for (;;) {
      // After the switch the destination may run the guest: a cancel would lose it, so none is sent.
      if (signal.aborted && !cancelSent && !job.postcopySent) {
        if (opts.onAbort() === 'detach') throw detachedError(String(signal.reason ?? 'activity stopped'));
        await cancel();
        return await finishCancel(opts, 'the job was cancelled');
      }
      if (job.abortRequested && !cancelSent && !job.postcopySent) {
        await cancel();
        return await finishCancel(opts, 'the job was aborted');
      }
      const lost = lostReason();
      if (lost && !cancelSent) {
        await cancel();
        await settle(opts);
        throw lost;
      }
      if (ioError !== undefined && !cancelSent) {
        await cancel();
        throw vmError(ErrorType.OperationFailed, `migration aborted: I/O error on ${ioError} (abort-on-error)`, { device: ioError });
      }
      const info = await queryMigration(qmp);
      const status = info.status ?? 'none';
      timeout.arm(info['total-time']);
      const storage = opts.checkStorage && isMigrationActive(status) && !switchedOver ? await opts.checkStorage() : undefined;
      if (storage?.failed && !cancelSent) {
        await cancel();
        await settle(opts);
        throw storage.failed;
      }
      if (storage) lastDisk = storage.progress;
      const progress = { ...progressOf(info), ...(lastDisk ?? {}) };
      job.progress = progress;
      if (status.startsWith('postcopy-')) return await switched(opts, stoppedAtMs, status);
      switch (status) {
        case 'completed': {
          // The mirrors were completed at the switchover: every disk byte is on the destination.
          const disk =
            lastDisk?.diskTotalBytes !== undefined
              ? { diskTotalBytes: lastDisk.diskTotalBytes, diskProcessedBytes: lastDisk.diskTotalBytes, diskRemainingBytes: 0 }
              : {};
          const stats = { ...(await completed(opts, stoppedAtMs, job.postcopySent === true)), ...disk };
          return timeout.suspendedAtMs !== undefined ? { ...stats, timeoutSuspendedAtMs: timeout.suspendedAtMs } : stats;
        }
        case 'failed':
          // A tunnel torn down under QEMU shows as a broken pipe; the tunnel's reason is the real one.
          if (lostReason()) throw lostReason()!;
          throw vmError(ErrorType.OperationFailed, `migration failed: ${info['error-desc'] ?? 'QEMU gave no reason'}`, { status });
        case 'cancelled':
          if (job.abortRequested) throw vmError(ErrorType.OperationAborted, 'migration cancelled: the job was aborted');
          throw vmError(ErrorType.OperationFailed, 'migration was cancelled in QEMU outside this job');
        case 'none':
          throw vmError(ErrorType.OperationFailed, 'no migration is running in the source QEMU');
        case 'pre-switchover':
          if (!switchedOver && !cancelSent) {
            switchedOver = true;
            if (!opts.onPreSwitchover) throw vmError(ErrorType.InternalError, 'QEMU paused before the switchover, and nothing here completes it');
            try {
              await opts.onPreSwitchover();
            } catch (err) {
              await cancel();
              await settle(opts);
              throw err;
            }
            wake.kick();
          }
          break;
        default:
          break;
      }
      if (!lateReached && status === 'active' && (progress.percent ?? 0) >= LATE_PERCENT) {
        lateReached = true;
        // Test-only: a fault lands once most of RAM has gone, while the stream still flows.
        await faultPoint('migrate.perform-late');
      }
      const moved = info.ram?.transferred ?? 0;
      if (moved !== lastMoved.bytes) lastMoved = { bytes: moved, atMs: Date.now() };
      else if (status === 'active' && Date.now() - lastMoved.atMs > (opts.stallTimeoutMs ?? 60_000)) {
        await cancel();
        throw vmError(
          ErrorType.OperationFailed,
          `migration stalled: no data moved for ${opts.stallTimeoutMs ?? 60_000} ms (the destination stopped receiving)`,
        );
      }
      if (await timeout.check(dom, status)) opts.onTimeoutSuspend?.();
      if (opts.postcopy && !job.postcopySent && status === 'active' && (job.postcopyRequested || (opts.postcopy.afterPrecopy && firstPassDone(info)))) {
        await switchToPostcopy(job, qmp, opts.onPostcopy);
        wake.kick();
      }
      opts.onSample?.(info, progress);
      const limits = await readLimits(qmp).catch(() => undefined);
      opts.heartbeat({
        phase: 'perform',
        status,
        progress,
        ...(limits ?? {}),
        ...(timeout.suspendedAtMs !== undefined ? { timeoutSuspendedAtMs: timeout.suspendedAtMs } : {}),
      });
      await wake.wait(interval);
    }
  } finally {
    timeout.dispose();
    unsubscribe();
    signal.removeEventListener('abort', onAbort);
    opts.lost?.removeEventListener('abort', onAbort);
  }
}

/** QEMU syncs the dirty bitmap once as the stream starts and again at the end of each pass. */
function firstPassDone(info: MigrationInfo): boolean {
  return (info.ram?.['dirty-sync-count'] ?? 0) >= 2;
}

/**
 * Sends migrate-start-postcopy once per job, whoever asks first (the watch or the
 * startPostcopy control); `onPostcopy` records it before QEMU hears of it, so an undo
 * after a crash never resumes a source whose guest may run elsewhere.
 */
export async function switchToPostcopy(job: HostJob, qmp: RunningDomain['qmp'], onPostcopy?: () => void): Promise<void> {
  if (job.postcopySent) return;
  job.postcopySent = true;
  onPostcopy?.();
  await startPostcopy(qmp);
}

/** The source switched: its CPUs are stopped and the guest is the destination's to run; the stream goes on. */
async function switched(opts: MonitorOptions, stoppedAtMs: number | undefined, status: string): Promise<MonitorResult> {
  const { dom, job } = opts;
  job.postcopySent = true;
  dom.setState('paused', 'postcopy');
  const stats = statsOf(await queryMigration(dom.qmp));
  job.progress = stats;
  opts.heartbeat({ phase: 'perform', status, progress: stats });
  return { ...stats, postcopy: true, postcopyRunning: true, ...(stoppedAtMs !== undefined ? { sourceStoppedAtMs: stoppedAtMs } : {}) };
}

async function finishCancel(opts: MonitorOptions, why: string): Promise<never> {
  await settle(opts);
  throw vmError(ErrorType.OperationAborted, `migration cancelled: ${why}`);
}

async function settle(opts: MonitorOptions): Promise<void> {
  const deadline = Date.now() + (opts.cancelDeadlineMs ?? 5_000);
  // Wait for QEMU's final word, but never past the deadline: a stalled destination may hold it for long.
  while (Date.now() < deadline) {
    const info = await queryMigration(opts.dom.qmp).catch(() => undefined);
    if (!info || !isMigrationActive(info.status)) break;
    await opts.dom.qmp.waitForEvent('MIGRATION', { timeoutMs: Math.min(200, Math.max(1, deadline - Date.now())) }).catch(() => undefined);
  }
}

async function completed(opts: MonitorOptions, stoppedAtMs: number | undefined, postcopy: boolean): Promise<MigrationStats> {
  const { dom } = opts;
  // QEMU says completed a moment before its run state and final figures settle (postmigrate).
  const deadline = Date.now() + 5_000;
  for (;;) {
    const st = await dom.qmp.execute<{ status: string }>('query-status');
    if (st.status === 'postmigrate' || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 10)); // no event marks the settling
  }
  const info = await queryMigration(dom.qmp);
  dom.setState('paused', 'migration');
  const stats = statsOf(info);
  opts.job.progress = stats;
  opts.heartbeat({ phase: 'perform', status: 'completed', progress: stats });
  return { ...stats, ...(stoppedAtMs !== undefined ? { sourceStoppedAtMs: stoppedAtMs } : {}), ...(postcopy ? { postcopy } : {}) };
}
