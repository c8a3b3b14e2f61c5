// restore: a domain from a save image, running or paused as the image (or the
// caller) says. Run as jobWorkflowId(uuid of the domain in the image).
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import {
  checkHost,
  checkParallelChannels,
  checkPath,
  checkRunState,
  uuidOfJobWorkflowId,
  type RestoreInput,
  type RestoreResult,
} from '../common/save-types.js';
import { SourceHost } from '../common/search-attributes.js';
import { JobTracker } from './job-tracker.js';
import { runSaveJob, saveJobHost } from './save-job.js';

export async function restore(input: RestoreInput): Promise<RestoreResult> {
  const host = checkHost(input?.host);
  const path = checkPath(input.path);
  checkRunState(input);
  const parallelChannels = checkParallelChannels(input.parallelChannels);
  const wf = workflowInfo();
  const jobId = `${wf.workflowId}/${wf.runId}`;
  const tracker = new JobTracker({ jobType: 'restore', domain: '', domainUuid: uuidOfJobWorkflowId(wf.workflowId) ?? '', phase: 'begin' });
  upsertSearchAttributes([{ key: SourceHost, value: host }]);
  const hostJob = saveJobHost(host);
  const { acts } = hostJob;
  return await runSaveJob({
    tracker,
    hostJob,
    begin: () =>
      acts.restoreBegin.executeWithOptions({ ...hostJob.begin, summary: `check image ${path} for restore on ${host}` }, [
        { jobId, path, xml: input.xml, bypassCache: input.bypassCache === true, parallelChannels, running: input.running, paused: input.paused },
      ]),
    perform: (plan) => acts.restorePerform.executeWithOptions({ ...hostJob.long, summary: `restore '${plan.name}' from ${path} on ${host}` }, [plan]),
  });
}
