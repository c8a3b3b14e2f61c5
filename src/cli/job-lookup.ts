// Finding a domain's job from the command line: by search attribute (the CLI may not
// know the domain's UUID), then the job's own jobInfo query merged with the progress
// its long activity last heartbeated (progress stays out of workflow history).
import type { Client, WorkflowHandle } from '@temporalio/client';
import { jobInfoQuery } from '../common/job-messages.js';
import type { JobHeartbeat, JobInfo } from '../common/job-types.js';
import { ErrorType, vmError } from '../common/errors.js';

export const JOB_ID_PREFIX = 'vmferry-job-';

function quote(v: string): string {
  return `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

export async function runningJob(client: Client, domain: string): Promise<WorkflowHandle> {
  const query = `DomainName=${quote(domain)} AND ExecutionStatus="Running" AND WorkflowId STARTS_WITH ${quote(JOB_ID_PREFIX)}`;
  for await (const wf of client.workflow.list({ query, pageSize: 1 })) {
    return client.workflow.getHandle(wf.workflowId, wf.runId);
  }
  throw vmError(ErrorType.OperationInvalid, `domain '${domain}' has no running job`);
}

export async function jobInfoWithProgress(client: Client, handle: WorkflowHandle): Promise<JobInfo> {
  const [info, description] = await Promise.all([handle.query(jobInfoQuery), handle.describe()]);
  const converter = client.options.loadedDataConverter.payloadConverter;
  for (const act of description.raw.pendingActivities ?? []) {
    const payload = act.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const beat = converter.fromPayload<JobHeartbeat | undefined>(payload);
    if (beat?.progress) Object.assign(info, beat.progress);
  }
  return info;
}
