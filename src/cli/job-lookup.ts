// Finding a domain's job from the command line: by search attribute (the CLI may not
// know the domain's UUID), then the job's own jobInfo query merged with the progress
// its long activity last heartbeated (progress stays out of workflow history).
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { jobInfoQuery } from '../common/job-messages.js';
import { jobWorkflowId, type JobHeartbeat, type JobInfo } from '../common/job-types.js';
import { ErrorType, vmError } from '../common/errors.js';

export const JOB_ID_PREFIX = 'vmferry-job-';

export function quote(v: string): string {
  return `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

export interface FoundJob {
  handle: WorkflowHandle;
  /** The JobType search attribute (save, migrateOut, ...), when visible. */
  jobType?: string;
}

function jobTypeOf(searchAttributes: unknown): string | undefined {
  const v = (searchAttributes as Record<string, unknown[] | undefined>).JobType?.[0];
  return typeof v === 'string' ? v : undefined;
}

/** The latest job on `domain`: running, or (completed) the latest that has ended. */
async function findJob(client: Client, domain: string, running: boolean): Promise<FoundJob | undefined> {
  const status = running ? 'ExecutionStatus="Running"' : 'ExecutionStatus!="Running"';
  const query = `DomainName=${quote(domain)} AND ${status} AND WorkflowId STARTS_WITH ${quote(JOB_ID_PREFIX)}`;
  for await (const wf of client.workflow.list({ query, pageSize: 1 })) {
    return { handle: client.workflow.getHandle(wf.workflowId, wf.runId), jobType: jobTypeOf(wf.searchAttributes) };
  }
  return undefined;
}

/**
 * The domain's running job. Visibility (what the search reads) trails a start by
 * up to a second, so when it finds nothing and the caller knows the domain's
 * UUID (from its host), the job's own workflow ID is asked directly.
 */
export async function runningJob(client: Client, domain: string, uuid?: () => Promise<string | undefined>): Promise<FoundJob> {
  const found = await findJob(client, domain, true);
  // ...and trails an end the same way: the execution itself says whether it still runs.
  if (found && (await found.handle.describe().catch(() => undefined))?.status.name === 'RUNNING') return found;
  const id = await uuid?.().catch(() => undefined);
  if (id) {
    const handle = client.workflow.getHandle(jobWorkflowId(id));
    const d = await handle.describe().catch(() => undefined);
    if (d?.status.name === 'RUNNING') return { handle: client.workflow.getHandle(d.workflowId, d.runId), jobType: jobTypeOf(d.searchAttributes) };
  }
  throw vmError(ErrorType.OperationInvalid, `no job is active on domain '${domain}'`);
}

export async function lastCompletedJob(client: Client, domain: string): Promise<FoundJob | undefined> {
  return await findJob(client, domain, false);
}

export async function jobInfoWithProgress(client: Client, handle: WorkflowHandle): Promise<JobInfo> {
  const [info, description] = await Promise.all([handle.query(jobInfoQuery), handle.describe()]);
  const { payloadConverter, payloadCodecs } = client.options.loadedDataConverter;
  for (const act of description.raw.pendingActivities ?? []) {
    const raw = act.heartbeatDetails?.payloads?.[0];
    if (!raw) continue;
    // describe() hands pending activities over raw: undo the codecs (payload encryption) first, last one first.
    let payload: Payload | undefined = raw;
    for (const codec of [...payloadCodecs].reverse()) [payload] = payload ? await codec.decode([payload]) : [];
    if (!payload) continue;
    const beat = payloadConverter.fromPayload<JobHeartbeat | undefined>(payload);
    if (beat?.progress) Object.assign(info, beat.progress);
  }
  return info;
}
