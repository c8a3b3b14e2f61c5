// Labelling errors leave as the project's typed failures, so an activity can let
// them through unchanged. A restore tries everything before it reports, and the
// report lists each target that kept a label it should have lost.
import type { ApplicationFailure } from '@temporalio/common';
import { ErrorType, vmError } from '../common/errors.js';

export interface RestoreFailure {
  driver: string;
  target: string;
  message: string;
}

export function errnoMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function labelFailed(driver: string, target: string, err: unknown, restoreFailures: RestoreFailure[] = []): ApplicationFailure {
  return vmError(ErrorType.OperationFailed, `security driver '${driver}' could not label ${target}: ${errnoMessage(err)}`, {
    driver,
    target,
    step: 'label',
    ...(restoreFailures.length ? { restoreFailures } : {}),
  });
}

export function restoreFailed(failures: RestoreFailure[]): ApplicationFailure {
  const what = failures.map((f) => `${f.driver} ${f.target}: ${f.message}`).join('; ');
  return vmError(ErrorType.OperationFailed, `restoring security labels failed for ${failures.length} target(s): ${what}`, { step: 'restore', failures });
}

/** The per-target failures a restore reported, or [] for any other error. */
export function restoreFailuresOf(err: unknown): RestoreFailure[] {
  const details = (err as { details?: unknown[] } | undefined)?.details;
  const first = Array.isArray(details) ? (details[0] as { step?: unknown; failures?: unknown } | undefined) : undefined;
  return first?.step === 'restore' && Array.isArray(first.failures) ? (first.failures as RestoreFailure[]) : [];
}
