// Core dump activities of one host worker: registration only; the job is
// src/host/jobs/dump.ts.
import { Context } from '@temporalio/activity';
import type { CoreDumpFormat, DumpBeginResult, DumpPerformResult } from '../common/dump-types.js';
import type { JobDeps } from '../host/jobs/deps.js';
import { dumpJobs, type DumpEndOptions, type DumpPerformOptions } from '../host/jobs/dump.js';

export type { DumpEndOptions, DumpPerformOptions };

export function createDumpActivities(jobs: JobDeps) {
  const dump = dumpJobs(jobs.rt, jobs.security);
  return {
    /** Checks everything, changes nothing but taking the job. */
    async dumpBegin(name: string, jobId: string, opts: { uuid: string; path: string; format?: CoreDumpFormat }): Promise<DumpBeginResult> {
      return await dump.dumpBegin(name, jobId, opts);
    },
    async dumpPerform(name: string, jobId: string, opts: DumpPerformOptions): Promise<DumpPerformResult> {
      return await dump.dumpPerform(name, jobId, opts, Context.current());
    },
    async dumpSetSpeed(name: string, jobId: string, mibps: number): Promise<{ applied: boolean }> {
      return await dump.dumpSetSpeed(name, jobId, mibps);
    },
    async dumpFinish(name: string, jobId: string, opts: DumpEndOptions): Promise<{ sizeBytes: number; domainState: string }> {
      return await dump.dumpFinish(name, jobId, opts);
    },
    async dumpCleanup(name: string, jobId: string, opts: DumpEndOptions): Promise<{ resumed: boolean }> {
      return await dump.dumpCleanup(name, jobId, opts);
    },
  };
}

export type DumpActivities = ReturnType<typeof createDumpActivities>;
