// The source's undo and its end: a completed (or post-copy) source killed at
// Confirm, and the undo of a migration that failed: cancel a stream still running,
// resume the guest if it ran (never once post-copy started), end the job.
import { ErrorType, vmError } from '../../common/errors.js';
import type { ConfirmResult } from '../../common/migration-types.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';
import { abortMirrors } from './storage-source.js';
import { closeTunnelRelay } from './tunnel-nbd.js';
import { cancelMigration, queryMigration } from '../../qemu/migration-engine.js';
import { isMigrationActive } from '../../qemu/migration-info.js';
import { resetParallel } from './parallel.js';

/**
 * After a completed stream QEMU has flushed and released its disks and holds
 * nothing the guest needs: SIGKILL is safe, and it skips the SIGTERM grace poll.
 */
export async function killFinishedSource(rt: HostRuntime, dom: RunningDomain): Promise<void> {
  const status = await migrationStatus(dom);
  if (status !== 'completed') return await rt.kill(dom);
  try {
    process.kill(dom.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  await dom.gone;
}

export async function requireStreamComplete(dom: RunningDomain): Promise<void> {
  const status = await migrationStatus(dom);
  if (status !== 'completed') {
    throw vmError(ErrorType.OperationFailed, `the post-copy stream of '${dom.name}' has not completed (status ${status ?? 'unknown'}): the source stays`, {
      domain: dom.name,
      status,
    });
  }
}

async function migrationStatus(dom: RunningDomain): Promise<string | undefined> {
  const info = await queryMigration(dom.qmp).catch(() => undefined);
  return info?.status;
}

/**
 * Undoes the source's part: cancels a migration still streaming, resumes the
 * guest if it ran before (never after post-copy started, and after a completed
 * stream only when the caller knows the destination is dead), ends the job.
 */
export async function abortSource(rt: HostRuntime, name: string, jobId: string, opts: { resumeAfterCompletion: boolean }): Promise<ConfirmResult> {
  const rec = rt.jobs.find(name, jobId, 'migrate-out');
  const dom = rt.getRunning(name);
  let resumed = false;
  let leaseError: unknown;
  if (rec && dom && !rec.flags.includes('offline')) {
    let status = await migrationStatus(dom);
    const postcopy = rec.postcopyStarted === true || (status?.startsWith('postcopy') ?? false);
    // After the switch the destination may run the guest: cancelling would take its missing pages away.
    if (isMigrationActive(status) && !postcopy) {
      await cancelMigration(dom.qmp).catch(() => undefined);
      const deadline = Date.now() + 15_000;
      while (isMigrationActive(status) && Date.now() < deadline) {
        await dom.qmp.waitForEvent('MIGRATION', { timeoutMs: 250 }).catch(() => undefined);
        status = await migrationStatus(dom);
      }
    }
    // The mirrors go before the guest may run here again: a resumed source must own its disks alone.
    if (rec.mirrorsStarted && rec.storage) {
      await abortMirrors(dom.qmp, rec.storage.disks).catch((err: unknown) =>
        rt.log.warn({ domain: name, job: jobId, err: String(err) }, 'stopping the disk mirrors failed'),
      );
    }
    const streamDone = status === 'completed';
    // The guest may stay here: its next stream (a save, another migration) must not inherit multifd.
    if (!isMigrationActive(status)) await resetParallel(rt, dom, rec.flags);
    if (postcopy) {
      // The destination holds pages the source no longer has: resuming here would run a stale guest.
      dom.setState('paused', 'postcopy-failed');
    } else if (isMigrationActive(status)) {
      throw vmError(ErrorType.OperationFailed, `the migration of '${name}' did not stop after migrate_cancel (status ${status})`, { domain: name, status });
    } else if (rec.wasRunning && dom.state !== 'running' && (!streamDone || opts.resumeAfterCompletion)) {
      // Leases released at the switchover come back before the CPUs run; if another holder took one, the guest stays paused.
      leaseError = await rt.leases.ensureHeld(dom).catch((err: unknown) => err);
      if (leaseError === undefined) {
        await dom.qmp.execute('cont');
        dom.setState('running', 'migration-canceled');
        resumed = true;
      } else {
        dom.setState('paused', 'lease-lost');
      }
    } else if (dom.state === 'running') {
      dom.setState('running', 'migration-canceled');
    }
  }
  if (rec) await closeTunnelRelay(rt, rec);
  rt.jobs.remove(name, jobId);
  if (rt.locks.job(name)?.id === jobId) rt.locks.endJob(name, jobId);
  if (rec) rt.log.info({ domain: name, job: jobId, resumed }, 'migration undone on the source');
  if (leaseError !== undefined) {
    const why = leaseError instanceof Error ? leaseError.message : String(leaseError);
    throw vmError(ErrorType.DiskLeaseHeld, `'${name}' stays paused on ${rt.config.name}: it cannot take its disk leases back (${why})`, { domain: name });
  }
  return { sourceUndefined: false, resumed };
}
