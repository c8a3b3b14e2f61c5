// The messages of a migration's convergence policy: the progress samples the
// source's Perform sends its workflow (signals, so the policy is evaluated in
// workflow code and replays the same), and the Update that changes the policy
// while the migration runs (its validator refuses a bad one before anything
// enters history).
import { defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ConvergencePolicy } from './convergence-policy.js';

/** What Perform reports of the source's stream; times from QEMU's own count of the stream's age. */
export interface ConvergenceSample {
  elapsedMs: number;
  /** QEMU's dirty-sync-count: passes over memory so far. */
  iteration: number;
  remainingBytes: number;
  /** RAM plus the copied disks (the completion timeout's size). */
  totalBytes: number;
  processedBytes?: number;
  dirtyRatePagesPerSec?: number;
  throttlePercent?: number;
  /** QEMU's migration status when sampled (active, postcopy-active, ...). */
  status?: string;
}

/** The policy in force after a change, and the step it reached. */
export interface PolicyChange {
  policy: string;
  step: string;
  maxDowntimeMs: number;
  bandwidthMiBps: number;
}

export const migrationProgressSignal = defineSignal<[ConvergenceSample]>('migrationProgress');
/** A built-in policy's name, or a whole policy. */
export const setPolicyUpdate = defineUpdate<PolicyChange, [string | ConvergencePolicy]>('setPolicy');
