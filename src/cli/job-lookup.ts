// Finding a domain's job from the command line: by search attribute (the CLI may not
// know the domain's UUID), then the job's own jobInfo query merged with the progress
// its long activity last heartbeated (progress stays out of workflow history).
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { jobInfoQuery } from '../common/job-messages.js';
import { jobWorkflowId, STORAGE_COPY_PHASE, type JobHeartbeat, type JobInfo } from '../common/job-types.js';
import { ErrorType, vmError } from '../common/errors.js';
import type { PostcopyState } from '../common/postcopy.js';

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

/** Where a job verb looks: the domain's name, narrowed to one UUID or one host when the caller knows them. */
export interface JobScope {
  domain: string;
  /** The domain's UUID on the named host: only that UUID's jobs. */
  uuid?: string;
  /** The named host; without a UUID (the domain is not defined there: an incoming migration), only jobs touching it. */
  host?: string;
}

function scopeClause(scope: JobScope): string {
  if (scope.uuid) return `DomainUuid=${quote(scope.uuid)}`;
  const clause = `DomainName=${quote(scope.domain)}`;
  return scope.host ? `${clause} AND (SourceHost=${quote(scope.host)} OR DestinationHost=${quote(scope.host)})` : clause;
}

/** Jobs in `scope`, latest first: running ones, or (completed) those that have ended. */
async function findJobs(client: Client, scope: JobScope, running: boolean, limit: number): Promise<FoundJob[]> {
  const status = running ? 'ExecutionStatus="Running"' : 'ExecutionStatus!="Running"';
  const query = `${scopeClause(scope)} AND ${status} AND WorkflowId STARTS_WITH ${quote(JOB_ID_PREFIX)}`;
  const found: FoundJob[] = [];
  for await (const wf of client.workflow.list({ query, pageSize: limit })) {
    found.push({ handle: client.workflow.getHandle(wf.workflowId, wf.runId), jobType: jobTypeOf(wf.searchAttributes) });
    if (found.length >= limit) break;
  }
  return found;
}

function where(scope: JobScope): string {
  return scope.host ? ` on host '${scope.host}'` : '';
}

/**
 * The domain's running job. A domain name is unique on a host, not in the cluster:
 * with a UUID (resolved on the named host) the job's own workflow ID is asked
 * directly, so a same-named domain's job on another host is never touched; by name
 * alone, two running jobs are an ambiguity the operator resolves with --host.
 */
export async function runningJob(client: Client, scope: JobScope): Promise<FoundJob> {
  if (scope.uuid) {
    const d = await client.workflow
      .getHandle(jobWorkflowId(scope.uuid))
      .describe()
      .catch(() => undefined);
    if (d?.status.name === 'RUNNING') return { handle: client.workflow.getHandle(d.workflowId, d.runId), jobType: jobTypeOf(d.searchAttributes) };
    throw vmError(ErrorType.OperationInvalid, `no job is active on domain '${scope.domain}'${where(scope)}`);
  }
  // Visibility trails an end by up to a second: the execution itself says whether it still runs.
  const found = [];
  for (const job of await findJobs(client, scope, true, 2)) {
    if ((await job.handle.describe().catch(() => undefined))?.status.name === 'RUNNING') found.push(job);
  }
  if (found.length > 1) {
    throw vmError(
      ErrorType.OperationInvalid,
      `domain name '${scope.domain}' is ambiguous: jobs ${found.map((j) => j.handle.workflowId).join(' and ')} run on domains of that name; name the host with --host`,
    );
  }
  if (found[0]) return found[0];
  throw vmError(ErrorType.OperationInvalid, `no job is active on domain '${scope.domain}'${where(scope)}`);
}

/** The latest ended job in `scope`. */
export async function lastCompletedJob(client: Client, scope: JobScope): Promise<FoundJob | undefined> {
  return (await findJobs(client, scope, false, 1))[0];
}

const POSTCOPY_STATES: Record<string, PostcopyState> = {
  'postcopy-active': 'active',
  'postcopy-paused': 'paused',
  'postcopy-recover-setup': 'recovering',
  'postcopy-recover': 'recovering',
};

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
    // The disk copy runs inside Perform but is its own phase to the reader.
    if (beat?.phase === STORAGE_COPY_PHASE && info.status === 'running') info.phase = STORAGE_COPY_PHASE;
    // The post-copy wait heartbeats QEMU's own status: fresher than the workflow's view between its steps.
    const qemu = (beat as { status?: unknown } | undefined)?.status;
    if (beat?.phase === 'postcopy' && info.status === 'running' && typeof qemu === 'string' && POSTCOPY_STATES[qemu])
      info.postcopyState = POSTCOPY_STATES[qemu];
  }
  return info;
}
