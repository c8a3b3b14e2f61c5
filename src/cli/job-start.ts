// Starting a job the way every client must (design §3): the domain's UUID names
// the workflow, and Temporal's ID conflict policy refuses a second job on the
// same domain. The command line knows names, so the UUID is read from the host's
// inventory first (or from a save image's XML for a restore).
import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { parseDomainXml } from '../domain/index.js';
import { CONTROL_TASK_QUEUE } from '../common/constants.js';
import type { DomainInfo } from '../common/domain-types.js';
import { ErrorType, vmError } from '../common/errors.js';
import { jobWorkflowId } from '../common/job-types.js';
import type { SaveImageXmlInput, SaveImageXmlResult } from '../common/save-types.js';
import { UsageError } from './exit-codes.js';
import { runOperation } from './run-operation.js';
import { inventoryDomain } from './inventory.js';

export function requireHost(host: string | undefined): string {
  if (!host) throw new UsageError('which host? give --host NAME or set VMFERRY_HOST');
  return host;
}

/** The domain as its host last reported it (a query of the host's inventory, no workflow). */
export async function domainInfo(client: Client, host: string | undefined, name: string): Promise<DomainInfo> {
  return await inventoryDomain(client, host, name);
}

/** A short, non-job workflow (save-image XML, managed-save removal): its ID only has to be unique. */
export async function runShort<T>(client: Client, type: string, host: string, what: string, input: unknown): Promise<T> {
  return (await client.workflow.execute(type, {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: `vmferry-op-${host}-${what}-${randomUUID().slice(0, 8)}`,
    args: [input],
    workflowExecutionTimeout: '5 minutes',
  })) as T;
}

export async function saveImageXml(client: Client, input: SaveImageXmlInput): Promise<SaveImageXmlResult> {
  return await runShort<SaveImageXmlResult>(client, 'saveImageXml', input.host, `save-image-${input.op}`, input);
}

/** The domain a save image holds, from the XML in its header (read on the host). */
export async function imageDomain(client: Client, host: string, path: string): Promise<{ name: string; uuid: string }> {
  const { xml } = await saveImageXml(client, { host, op: 'dumpxml', path });
  const def = parseDomainXml(xml);
  return { name: def.name, uuid: def.uuid };
}

/**
 * Starts `type` as the domain's job. A job already running on the domain is
 * reported as DomainBusy, naming it, so the user can inspect or abort it.
 */
export async function startJob(client: Client, type: string, uuid: string, domain: string, input: unknown): Promise<WorkflowHandle> {
  const workflowId = jobWorkflowId(uuid);
  try {
    return await client.workflow.start(type, {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId,
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      args: [input],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const running = await client.workflow
      .getHandle(workflowId)
      .describe()
      .then(
        (d) => (d.searchAttributes as Record<string, unknown[] | undefined>).JobType?.[0],
        () => undefined,
      );
    throw vmError(
      ErrorType.DomainBusy,
      `domain '${domain}' is busy with ${running ? `a ${String(running)} job` : 'another job'} (${workflowId}); see vmferry domjobinfo ${domain}`,
      {
        domain,
        job: workflowId,
      },
    );
  }
}
