// Job control messages, shared by workflows (handlers) and clients (senders).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { JobInfo } from './job-types.js';

/** Abort the job: QEMU stops as soon as it allows, compensation runs, the job fails OperationAborted. */
export const cancelSignal = defineSignal('cancel');
/** New migration speed limit in MiB/s (0 = unlimited). */
export const setSpeedSignal = defineSignal<[number]>('setSpeed');
/** New max downtime in milliseconds. */
export const setMaxDowntimeSignal = defineSignal<[number]>('setMaxDowntime');
export const jobInfoQuery = defineQuery<JobInfo>('jobInfo');

/** What a speed or downtime update reports back once the job accepted the value. */
export interface JobControlChange {
  speedLimitMiBps?: number;
  maxDowntimeMs?: number;
}
// The same changes as Workflow Updates under the same names: a validator refuses bad
// values synchronously (the sender gets OperationInvalid and nothing enters history),
// where a signal can only be logged and ignored.
export const setSpeedUpdate = defineUpdate<JobControlChange, [number]>('setSpeed');
export const setMaxDowntimeUpdate = defineUpdate<JobControlChange, [number]>('setMaxDowntime');

export const MAX_SPEED_MIBPS = 8 * 1024 * 1024; // 8 TiB/s: beyond any link, and QEMU's int64 bytes/s
export const MAX_DOWNTIME_MS = 24 * 3600 * 1000;

/** Reason a speed is invalid, or undefined when it is fine. */
export function invalidSpeed(v: unknown): string | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v)) return `speed must be a finite number of MiB/s, got ${String(v)}`;
  if (v < 0) return `speed must not be negative, got ${v}`;
  if (!Number.isInteger(v)) return `speed must be a whole number of MiB/s, got ${v}`;
  if (v > MAX_SPEED_MIBPS) return `speed ${v} MiB/s is above the maximum ${MAX_SPEED_MIBPS}`;
  return undefined;
}

export function invalidDowntime(v: unknown): string | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v)) return `max downtime must be a finite number of ms, got ${String(v)}`;
  if (v <= 0 || !Number.isInteger(v)) return `max downtime must be a positive whole number of ms, got ${v}`;
  if (v > MAX_DOWNTIME_MS) return `max downtime ${v} ms is above the maximum ${MAX_DOWNTIME_MS}`;
  return undefined;
}
