// Starting migrations the way a client must (one workflow ID per domain, a
// second job refused by the ID conflict policy) and reading a running
// migration's progress from its Perform step's heartbeats.
import { type Client, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { CONTROL_TASK_QUEUE } from '../../src/common/constants.js';
import type { DomainInfo, DomainOperationResult } from '../../src/common/domain-types.js';
import { jobInfoQuery } from '../../src/common/job-messages.js';
import { jobWorkflowId, type JobInfo } from '../../src/common/job-types.js';
import type { MigrateInput, MigrateResult, MigrationHeartbeat } from '../../src/common/migration-types.js';
import { startPostcopyUpdate, type StartPostcopyResult } from '../../src/common/postcopy.js';
import { waitFor } from '../../src/support/wait.js';

export type MigrateHandle = WorkflowHandle<(input: MigrateInput) => Promise<MigrateResult>>;

export async function startMigration(client: Client, input: MigrateInput & { domainUuid: string }): Promise<MigrateHandle> {
  return await client.workflow.start<(input: MigrateInput) => Promise<MigrateResult>>('migrate', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(input.domainUuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
    workflowExecutionTimeout: '5 minutes',
  });
}

export { failureOf } from './workflow-failure.js';

/** The latest heartbeat of the pending Perform step, if any. */
export async function performHeartbeat(handle: MigrateHandle): Promise<MigrationHeartbeat | undefined> {
  const d = await handle.describe();
  for (const a of d.raw.pendingActivities ?? []) {
    if (!String(a.activityType?.name).startsWith('migratePerform')) continue;
    const payload = a.heartbeatDetails?.payloads?.[0];
    if (payload) return defaultPayloadConverter.fromPayload<MigrationHeartbeat>(payload);
  }
  return undefined;
}

/** The latest heartbeat of the source's post-copy wait (QEMU's own status and progress), if that step is pending. */
export async function postcopyHeartbeat(handle: MigrateHandle): Promise<MigrationHeartbeat | undefined> {
  const d = await handle.describe();
  const a = (d.raw.pendingActivities ?? []).find((x) => x.activityType?.name === 'migratePostcopyWait');
  const payload = a?.heartbeatDetails?.payloads?.[0];
  return payload ? defaultPayloadConverter.fromPayload<MigrationHeartbeat>(payload) : undefined;
}

/** Waits until the migration streams (jobInfo says perform and the heartbeat shows bytes moved). */
export async function waitForPerform(handle: MigrateHandle, timeoutMs = 30_000): Promise<MigrationHeartbeat> {
  await waitFor('jobInfo phase perform', async () => (await handle.query(jobInfoQuery)).phase === 'perform', { timeoutMs, intervalMs: 50 });
  return await waitFor(
    'a Perform heartbeat with progress',
    async () => {
      const hb = await performHeartbeat(handle);
      return hb && (hb.progress.dataProcessedBytes ?? 0) > 0 ? hb : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/**
 * Asks for post-copy (Update startPostcopy, virsh's migrate-postcopy) once the stream runs. An idle
 * guest's pre-copy converges at the end of its first pass, so waiting for that pass
 * (postcopy-after-precopy) races with the stream's own completion; a bandwidth-limited first pass does not.
 */
export async function switchToPostcopy(handle: MigrateHandle): Promise<StartPostcopyResult> {
  await waitForPerform(handle);
  return await handle.executeUpdate(startPostcopyUpdate);
}

export async function jobInfo(handle: MigrateHandle): Promise<JobInfo> {
  return await handle.query(jobInfoQuery);
}

export function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

export function namesOf(r: DomainOperationResult): string[] {
  if (!('domains' in r)) throw new Error(`no domain list in ${JSON.stringify(r)}`);
  return r.domains.map((d) => d.name);
}
