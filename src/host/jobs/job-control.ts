// Job control that must reach a running QEMU within a second: abort, speed and
// max downtime. Each is its own short activity on the domain's host, so a
// signal to the workflow turns into a QMP command without waiting for the long
// activity's next heartbeat.
import { ErrorType, vmError } from '../../common/errors.js';
import { invalidDowntime, invalidSpeed } from '../../common/job-messages.js';
import type { HostRuntime } from '../host-runtime.js';
import { cancelMigration } from '../../qemu/migration-engine.js';
import { setDowntimeLimit, setSpeedLimit, setTuning } from '../../qemu/migration-params.js';
import type { MigrationTuning } from '../../common/migration-types.js';
import { setMirrorsSpeed } from '../migration/storage-source.js';

function jobOf(rt: HostRuntime, name: string, jobId: string) {
  const job = rt.locks.job(name);
  if (!job || job.id !== jobId) return undefined;
  return job;
}

export function jobControl(rt: HostRuntime) {
  return {
    /** Idempotent: aborting a job that already ended, or twice, is fine. */
    async abortJob(name: string, jobId: string): Promise<{ aborted: boolean }> {
      const job = jobOf(rt, name, jobId);
      if (!job) return { aborted: false };
      // After the switch to post-copy the destination may run the guest: cancelling would lose it (libvirt refuses too).
      if (job.postcopySent) return { aborted: false };
      job.abortRequested = true;
      const dom = rt.getRunning(name);
      if (dom && !dom.qmp.isClosed) {
        const acked = await cancelMigration(dom.qmp).then(
          () => true,
          () => false,
        );
        // The moment QEMU took the cancel: what a cancel's latency is measured to (bench/save-restore.ts).
        if (acked) rt.log.info({ domain: name, job: jobId }, 'QEMU acknowledged the abort');
      }
      return { aborted: true };
    },

    async setJobSpeed(name: string, jobId: string, mibps: number): Promise<void> {
      const why = invalidSpeed(mibps);
      if (why) throw vmError(ErrorType.OperationInvalid, why);
      if (!jobOf(rt, name, jobId)) throw vmError(ErrorType.OperationInvalid, `domain '${name}' has no job ${jobId} on this host`);
      const qmp = rt.requireRunning(name).qmp;
      await setSpeedLimit(qmp, mibps);
      // A storage migration's disk mirrors take the same limit while they run (libvirt cannot change theirs).
      const storage = rt.jobs.find(name, jobId, 'migrate-out')?.storage;
      if (storage) await setMirrorsSpeed(qmp, storage.disks, mibps);
    },

    async setJobMaxDowntime(name: string, jobId: string, ms: number): Promise<void> {
      const why = invalidDowntime(ms);
      if (why) throw vmError(ErrorType.OperationInvalid, why);
      if (!jobOf(rt, name, jobId)) throw vmError(ErrorType.OperationInvalid, `domain '${name}' has no job ${jobId} on this host`);
      await setDowntimeLimit(rt.requireRunning(name).qmp, ms);
    },

    /** A convergence policy changed mid-run: auto-converge's throttle settings (the capability itself was set at the start). */
    async setJobTuning(name: string, jobId: string, t: MigrationTuning): Promise<void> {
      if (!jobOf(rt, name, jobId)) throw vmError(ErrorType.OperationInvalid, `domain '${name}' has no job ${jobId} on this host`);
      await setTuning(rt.requireRunning(name).qmp, t);
    },

    /**
     * The policy's timeout action suspend: the guest stops dirtying memory on the source so
     * the stream converges, as `migrate --timeout` does; Finish then starts it on the
     * destination as it ran at Begin. Idempotent: a guest already paused stays so.
     */
    async suspendJobGuest(name: string, jobId: string): Promise<{ suspended: boolean }> {
      if (!jobOf(rt, name, jobId)) throw vmError(ErrorType.OperationInvalid, `domain '${name}' has no job ${jobId} on this host`);
      const dom = rt.requireRunning(name);
      if (dom.state !== 'running') return { suspended: false };
      await dom.qmp.execute('stop');
      dom.setState('paused', 'migration');
      rt.log.info({ domain: name, job: jobId }, 'convergence timeout: guest suspended on the source so the migration can complete');
      return { suspended: true };
    },
  };
}
