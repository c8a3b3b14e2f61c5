// The demo's save step: the running guest goes to a zstd save image and comes
// back from it, each as one job workflow (vmferry-job-<uuid>), as `vmferry save`
// and `vmferry restore` would run them. The image is removed afterwards.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import type { RestoreInput, RestoreResult, SaveInput, SaveResult } from '../src/common/save-types.js';

async function runJob<I, R>(client: Client, type: string, uuid: string, input: I): Promise<R> {
  return await client.workflow.execute<(i: I) => Promise<R>>(type, {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(uuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
  });
}

export async function runDemoSaveRestore(
  client: Client,
  opts: { host: string; name: string; uuid: string; dir: string; log: (line: string) => void },
): Promise<void> {
  const { host, name, uuid, log } = opts;
  mkdirSync(opts.dir, { recursive: true });
  const path = join(opts.dir, `${name}.img`);
  rmSync(path, { force: true });
  log(`saving ${name} on ${host} to ${path} (zstd; workflow ${jobWorkflowId(uuid)})`);
  const saved = await runJob<SaveInput, SaveResult>(client, 'save', uuid, { host, name, domainUuid: uuid, path, format: 'zstd' });
  log(
    `saved: ${(saved.streamBytes / 1048576).toFixed(1)} MiB of QEMU stream in ${(saved.sizeBytes / 1048576).toFixed(1)} MiB of image, ${saved.durationMs} ms; ${name} is shut off`,
  );
  const restored = await runJob<RestoreInput, RestoreResult>(client, 'restore', uuid, { host, path });
  log(`restored ${name} from the image in ${restored.durationMs} ms: ${restored.domain.state} again, QEMU pid ${restored.domain.pid}`);
  rmSync(path, { force: true });
}
