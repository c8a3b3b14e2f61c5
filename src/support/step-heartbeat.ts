// Heartbeats for the short steps of a job (a migration's Begin, Prepare, Finish,
// Confirm, its undo steps): a worker killed in the middle of one is noticed by
// Temporal within the step's heartbeat timeout and the step is retried on the
// restarted worker, instead of waiting out a start-to-close timeout of minutes.
import { Context } from '@temporalio/activity';

const INTERVAL_MS = 1000;

/** Runs `fn`, heartbeating every second while it runs (no details: the long steps send their own). */
export async function whileHeartbeating<T>(fn: () => Promise<T>): Promise<T> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    return await fn(); // called outside an activity (unit tests)
  }
  const beat = ctx;
  beat.heartbeat();
  const timer = setInterval(() => beat.heartbeat(), INTERVAL_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}
