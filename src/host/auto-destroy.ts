// The auto-destroy reaper: every host worker looks at the migrations it has a
// part in (its records) and asks Temporal whether the workflow that owns each
// one is still running. An incoming QEMU whose workflow closed without Finish
// (terminated, timed out, failed mid-way) is killed, never left paused forever;
// an outgoing job whose workflow closed without Confirm is undone on the source
// (a stream that completed is left paused: the destination may run the guest).
import { Client, WorkflowNotFoundError, type ConnectionLike } from '@temporalio/client';
import { listRecords, type MigrationRecord } from '../migration/job-record.js';
import { abortDestination } from './migration/destination-side.js';
import { abortSource } from './migration/source-side.js';
import type { HostRuntime } from './host-runtime.js';
import { portsFor } from './migration/ports.js';

export interface AutoDestroyReaper {
  /** One pass now (tests, shutdown); resolves when it is done. */
  sweep(): Promise<number>;
  stop(): void;
}

type Status = 'running' | 'closed' | 'unknown';

async function workflowStatus(client: Client, rec: MigrationRecord): Promise<Status> {
  try {
    const d = await client.workflow.getHandle(rec.workflowId, rec.runId).describe();
    return d.status.name === 'RUNNING' ? 'running' : 'closed';
  } catch (err) {
    // Gone from the server altogether (retention elapsed): closed long ago.
    if (err instanceof WorkflowNotFoundError) return 'closed';
    return 'unknown';
  }
}

export function startAutoDestroyReaper(rt: HostRuntime, connection: ConnectionLike | Client, opts: { intervalMs: number }): AutoDestroyReaper {
  const client = connection instanceof Client ? connection : new Client({ connection, namespace: rt.config.temporal.namespace });
  const { intervalMs } = opts;
  const deps = { rt, ports: portsFor(rt) };
  let running: Promise<number> | undefined;

  const pass = async (): Promise<number> => {
    let reaped = 0;
    for (const rec of listRecords(rt.config.runDir)) {
      // Unknown (server unreachable) is not closed: never kill a guest on a guess.
      if ((await workflowStatus(client, rec)) !== 'closed') continue;
      try {
        if (rec.role === 'in') {
          rt.log.warn(
            { domain: rec.name, job: rec.jobId, workflowId: rec.workflowId },
            'auto-destroy: the migration workflow closed without Finish; killing the incoming QEMU',
          );
          await abortDestination(deps, rec.name, rec.jobId);
        } else {
          rt.log.warn(
            { domain: rec.name, job: rec.jobId, workflowId: rec.workflowId },
            'auto-destroy: the migration workflow closed without Confirm; undoing the source side',
          );
          await abortSource(rt, rec.name, rec.jobId, { resumeAfterCompletion: false });
        }
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
