// An id for "this request" that a retried activity sees again: lets a step such
// as start recognise its own earlier attempt.
import { Context } from '@temporalio/activity';

/** Stable across retries of one activity, distinct between activities; undefined outside an activity. */
export function activityRequestId(): string | undefined {
  try {
    const { workflowExecution: wf, activityId } = Context.current().info;
    return wf ? `${wf.workflowId}/${wf.runId}/${activityId}` : undefined;
  } catch {
    return undefined;
  }
}
