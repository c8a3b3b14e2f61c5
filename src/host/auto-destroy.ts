// The auto-destroy reaper: every host worker looks at the jobs it has a part in
// (its job records) that a workflow owns, and asks Temporal whether that
// workflow is still running. A job whose workflow closed without ending it is
// handed to recovery (jobs/recovery.ts): an incoming QEMU is killed, never left
// paused forever; an outgoing migration is undone on the source (a stream that
// completed is left paused: the destination may run the guest).
import { Client, WorkflowNotFoundError, type ConnectionLike } from '@temporalio/client';
import type { JobDeps } from './jobs/deps.js';
import { recoveryStep } from './jobs/recovery.js';

export interface AutoDestroyReaper {
  /** One pass now (tests, shutdown); resolves when it is done. */
  sweep(): Promise<number>;
  stop(): void;
}

type Status = 'running' | 'closed' | 'unknown';

async function workflowStatus(client: Client, owner: { workflowId: string; runId: string }): Promise<Status> {
  try {
    const d = await client.workflow.getHandle(owner.workflowId, owner.runId).describe();
    return d.status.name === 'RUNNING' ? 'running' : 'closed';
  } catch (err) {
    // Gone from the server altogether (retention elapsed): closed long ago.
    if (err instanceof WorkflowNotFoundError) return 'closed';
    return 'unknown';
  }
}

export function startAutoDestroyReaper(deps: JobDeps, connection: ConnectionLike | Client, opts: { intervalMs: number }): AutoDestroyReaper {
  const { rt } = deps;
  const client = connection instanceof Client ? connection : new Client({ connection, namespace: rt.config.temporal.namespace });
  const { intervalMs } = opts;
  let running: Promise<number> | undefined;

  const pass = async (): Promise<number> => {
    let reaped = 0;
    for (const rec of deps.records.list()) {
      const step = recoveryStep(deps, rec, 'workflow-closed');
      // Unknown (server unreachable) is not closed: never kill a guest on a guess.
      if (!step?.owner || (await workflowStatus(client, step.owner)) !== 'closed') continue;
      try {
        await step.run();
        reaped++;
      } catch (err) {
        rt.log.error({ domain: rec.name, job: rec.jobId, err: String(err) }, 'auto-destroy: cleanup failed; will try again');
      }
    }
    return reaped;
  };
  const sweep = (): Promise<number> => {
    running ??= pass().finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => {
    sweep().catch((err: unknown) => rt.log.error({ err: String(err) }, 'auto-destroy sweep failed'));
  }, intervalMs);
  // The worker's life is decided by its Temporal worker, not by this timer.
  timer.unref();
  rt.log.info({ intervalMs }, 'auto-destroy reaper started');
  return { sweep, stop: () => clearInterval(timer) };
}
