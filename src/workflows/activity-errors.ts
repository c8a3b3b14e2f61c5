// The user should see the host's typed error, not Temporal's ActivityFailure
// wrapper around it; a task no host ever picked up becomes a typed error too.
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import { ErrorType, vmError } from '../common/errors.js';

export function unwrapActivityError(err: unknown, where: { host: string; step: string }): unknown {
  if (!(err instanceof ActivityFailure)) return err;
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) return cause;
  if (cause instanceof TimeoutFailure && cause.timeoutType === TimeoutType.SCHEDULE_TO_START) {
    return vmError(ErrorType.OperationFailed, `host '${where.host}' did not take the ${where.step} step: no worker polls task queue host/${where.host}`, where);
  }
  return vmError(ErrorType.OperationFailed, `${where.step} on host '${where.host}' failed: ${cause?.message ?? err.message}`, where);
}
