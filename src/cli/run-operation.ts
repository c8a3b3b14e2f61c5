// Every host-side verb goes through the domainOperation workflow: the change is in
// Temporal's history, visible in the Web UI, and typed errors come back intact.
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { CONTROL_TASK_QUEUE } from '../common/constants.js';
import type { DomainOperation, DomainOperationResult } from '../common/domain-types.js';
import { UsageError } from './exit-codes.js';

/** `extraSeconds`: how much longer than the usual 5 minutes the operation may take (a shutdown's wait). */
export async function runOperation(client: Client, host: string | undefined, operation: DomainOperation, extraSeconds = 0): Promise<DomainOperationResult> {
  if (!host) throw new UsageError('which host? give --host NAME or set VMFERRY_HOST');
  const name = 'name' in operation ? `-${operation.name}` : '';
  return await client.workflow.execute('domainOperation', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: `vmferry-op-${host}-${operation.op}${name}-${randomUUID().slice(0, 8)}`,
    args: [{ host, operation }],
    workflowExecutionTimeout: `${300 + extraSeconds} seconds`,
  });
}
