// Save and restore jobs the way a client starts them (workflow ID derived from
// the domain UUID, a second job refused), and what the tests look at: the
// workflow's typed failure, the Perform step's heartbeat, the image header.
import { closeSync, openSync, readSync } from 'node:fs';
import { type Client, type WorkflowHandle } from '@temporalio/client';
import { jobInfoWithProgress } from '../../src/cli/job-lookup.js';
import { CONTROL_TASK_QUEUE } from '../../src/common/constants.js';
import { jobInfoQuery } from '../../src/common/job-messages.js';
import { jobWorkflowId, type JobInfo } from '../../src/common/job-types.js';
import { waitFor } from '../../src/support/wait.js';

export type JobHandle = WorkflowHandle;

export async function startJob(client: Client, workflow: string, uuid: string, input: unknown): Promise<JobHandle> {
  return await client.workflow.start(workflow, {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(uuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
    workflowExecutionTimeout: '3 minutes',
  });
}

export async function runJob<T>(client: Client, workflow: string, uuid: string, input: unknown): Promise<T> {
  return (await (await startJob(client, workflow, uuid, input)).result()) as T;
}

export { failureOf } from './workflow-failure.js';

/** Waits until jobInfo (query + Perform heartbeat) shows QEMU's stream moving. */
export async function waitForStream(client: Client, handle: JobHandle, timeoutMs = 30_000): Promise<JobInfo> {
  await waitFor('jobInfo phase perform', async () => (await handle.query(jobInfoQuery)).phase === 'perform', { timeoutMs, intervalMs: 50 });
  return await waitFor(
    'a Perform heartbeat with bytes processed',
    async () => {
      const info = await jobInfoWithProgress(client, handle);
      return (info.dataProcessedBytes ?? 0) > 0 ? info : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** The first 16 bytes of a file: LibvirtQemudSave or LibvirtQemudPart for an image. */
export function magicOf(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(16);
    readSync(fd, buf, 0, 16, 0);
    return buf.toString('latin1');
  } finally {
    closeSync(fd);
  }
}
