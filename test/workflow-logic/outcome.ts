// Reading a migrate workflow's outcome in the workflow-logic tests: the typed
// error it failed with (phase, cleanup errors) and which undo steps the stub
// hosts saw.
import type { WorkflowHandle } from '@temporalio/client';
import type { JobError } from '../../src/common/job-types.js';
import { failureOf } from '../helpers/workflow-failure.js';
import type { Call, StubHosts } from './stub-hosts.js';

export interface Failed {
  type: string | undefined | null;
  message: string;
  phase: string;
  cleanupErrors: JobError[];
}

/** Longer than any workflow here needs in skipped time; a run past it explains itself instead of hitting the test's timeout. */
const CLOSE_DEADLINE_MS = 60_000;

export async function failed(h: WorkflowHandle): Promise<Failed> {
  const outcome = await closed(h).then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if ('error' in outcome && outcome.error instanceof NotClosedError) throw outcome.error;
  const f = await failureOf('error' in outcome ? Promise.reject(outcome.error) : Promise.resolve(outcome.value));
  const d = (f.details?.[0] ?? {}) as { phase?: string; cleanupErrors?: JobError[] };
  return { type: f.type, message: f.message, phase: d.phase ?? '', cleanupErrors: d.cleanupErrors ?? [] };
}

/** The calls that undo a step: a failed Confirm or Finish, or v2's source abort. */
export function isUndo(c: Call): boolean {
  if (c.act === 'migrateAbortSource') return true;
  const a = c.args[0] as { success?: boolean } | undefined;
  return ['migrateConfirm', 'migrateFinish', 'migrateFinish2'].includes(c.act) && a?.success === false;
}

/** The undo calls as `host:activity`, sorted (for undos that run together, in no set order). */
export function undos(stubs: StubHosts): string[] {
  return stubs.sequence(isUndo).sort();
}

/** The workflow's result, or after CLOSE_DEADLINE_MS an error naming its pending activities and last events. */
export async function closed(h: WorkflowHandle): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => void notClosed(h).then(reject, reject), CLOSE_DEADLINE_MS);
  });
  try {
    return await Promise.race([h.result(), late]);
  } finally {
    clearTimeout(timer);
  }
}

class NotClosedError extends Error {}

async function notClosed(h: WorkflowHandle): Promise<Error> {
  const d = await h.describe();
  const pending = (d.raw.pendingActivities ?? []).map((a) => `${a.activityType?.name} (state ${a.state}, attempt ${a.attempt})`);
  const { events } = await h.fetchHistory();
  const last = (events ?? []).slice(-10).map((e) => Object.keys(e).find((k) => k.endsWith('EventAttributes')) ?? `event ${e.eventType}`);
  return new NotClosedError(
    `${h.workflowId} still ${d.status.name} after ${CLOSE_DEADLINE_MS / 1000} s; pending: ${pending.join(', ') || 'none'}; last events: ${last.join(', ')}`,
  );
}
