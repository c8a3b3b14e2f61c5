// Job control activities (abort, speed, max downtime): registration only; the
// commands are src/host/jobs/job-control.ts.
import type { HostRuntime } from '../host/host-runtime.js';
import { jobControl } from '../host/jobs/job-control.js';
import type { MigrationTuning } from '../common/migration-types.js';

export function createJobControlActivities(rt: HostRuntime) {
  const control = jobControl(rt);
  return {
    /** Idempotent: aborting a job that already ended, or twice, is fine. */
    async abortJob(name: string, jobId: string): Promise<{ aborted: boolean }> {
      return await control.abortJob(name, jobId);
    },
    async setJobSpeed(name: string, jobId: string, mibps: number): Promise<void> {
      await control.setJobSpeed(name, jobId, mibps);
    },
    async setJobMaxDowntime(name: string, jobId: string, ms: number): Promise<void> {
      await control.setJobMaxDowntime(name, jobId, ms);
    },
    async setJobTuning(name: string, jobId: string, t: MigrationTuning): Promise<void> {
      await control.setJobTuning(name, jobId, t);
    },
    async suspendJobGuest(name: string, jobId: string): Promise<{ suspended: boolean }> {
      return await control.suspendJobGuest(name, jobId);
    },
  };
}

export type JobControlActivities = ReturnType<typeof createJobControlActivities>;
