// Save, restore, managed-save and save-image activities of one host worker:
// registration only. The jobs themselves live in src/host/jobs (save.ts,
// restore.ts, save-image.ts); each activity hands them its Temporal context.
import { Context } from '@temporalio/activity';
import type {
  ManagedSaveState,
  ManagedStartBeginArgs,
  ManagedStartBeginResult,
  RestoreBeginArgs,
  RestorePlan,
  RestoreResult,
  SaveBeginArgs,
  SaveImageXmlResult,
  SavePlan,
  SaveResult,
} from '../common/save-types.js';
import type { JobDeps } from '../host/jobs/deps.js';
import { restoreJobs } from '../host/jobs/restore.js';
import { saveImageJobs } from '../host/jobs/save-image.js';
import { saveJobs } from '../host/jobs/save.js';

/** `recovered` settles once start-up recovery is done: no save-family activity starts work before it. */
export function createSaveActivities(jobs: JobDeps, recovered: Promise<void>) {
  const save = saveJobs(jobs, recovered);
  const restore = restoreJobs(jobs, recovered);
  const image = saveImageJobs(jobs, recovered);
  return {
    async saveBegin(args: SaveBeginArgs): Promise<SavePlan> {
      return await save.saveBegin(args);
    },
    async savePerform(plan: SavePlan): Promise<SaveResult> {
      return await save.savePerform(plan, Context.current());
    },
    /** The workflow's compensation for any save or restore job whose Begin succeeded. Repeatable. */
    async cleanupSaveJob(name: string, jobId: string): Promise<{ state: string }> {
      return await save.cleanupSaveJob(name, jobId);
    },
    async restoreBegin(args: RestoreBeginArgs): Promise<RestorePlan> {
      return await restore.restoreBegin(args);
    },
    async restorePerform(plan: RestorePlan): Promise<RestoreResult> {
      return await restore.restorePerform(plan, Context.current());
    },
    async managedStartBegin(args: ManagedStartBeginArgs): Promise<ManagedStartBeginResult> {
      return await restore.managedStartBegin(args);
    },
    async saveImageDumpXml(path: string, opts: { securityInfo?: boolean } = {}): Promise<SaveImageXmlResult> {
      return await image.saveImageDumpXml(path, opts);
    },
    async saveImageDefineXml(path: string, xml: string): Promise<SaveImageXmlResult> {
      return await image.saveImageDefineXml(path, xml);
    },
    async managedSaveInfo(name: string): Promise<ManagedSaveState> {
      return await image.managedSaveInfo(name);
    },
    async managedSaveRemove(name: string): Promise<ManagedSaveState> {
      return await image.managedSaveRemove(name);
    },
  };
}

export type SaveActivities = ReturnType<typeof createSaveActivities>;
