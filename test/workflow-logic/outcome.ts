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

export async function failed(h: WorkflowHandle): Promise<Failed> {
  const f = await failureOf(h.result());
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
