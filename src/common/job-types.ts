// The asynchronous job model shared by workflows, host activities and the CLI.
// Field names follow libvirt's domjobinfo, with units in the names.
import type { PostcopyState } from './postcopy.js';

export type JobType = 'save' | 'restore' | 'managedSave' | 'managedStart' | 'coreDump' | 'migrateOut' | 'migrateIn';

export type JobStatus = 'running' | 'completed' | 'failed' | 'cancelled';

/** What QEMU reports while a migration stream (to a file or a peer) runs. */
export interface JobProgress {
  dataTotalBytes?: number;
  dataProcessedBytes?: number;
  dataRemainingBytes?: number;
  memTotalBytes?: number;
  memProcessedBytes?: number;
  memRemainingBytes?: number;
  dirtyRatePagesPerSec?: number;
  bandwidthMiBps?: number;
  expectedDowntimeMs?: number;
  downtimeMs?: number;
  setupTimeMs?: number;
  /** 0-100, from processed / total when both are known. */
  percent?: number;
  /** copy-storage: the disks' mirror (virsh domjobinfo's "File" rows), summed over the copied disks. */
  diskTotalBytes?: number;
  diskProcessedBytes?: number;
  diskRemainingBytes?: number;
  /** Passes over memory so far (QEMU's dirty-sync-count) and the auto-converge throttle in force. */
  iterations?: number;
  throttlePercent?: number;
}

/** The phase a migration reports while its disks are mirrored and before the memory stream starts. */
export const STORAGE_COPY_PHASE = 'storage-copy';

export interface JobError {
  type: string;
  message: string;
  phase: string;
}

export interface JobInfo extends JobProgress {
  jobType: JobType;
  domain: string;
  domainUuid: string;
  status: JobStatus;
  phase: string;
  startedAtMs: number;
  elapsedMs: number;
  /** Speed limit the job applies (MiB/s, 0 = unlimited) and max downtime (ms), when set. */
  speedLimitMiBps?: number;
  maxDowntimeMs?: number;
  /** A migration's whole-job percentage (phase-weighted, never runs backwards) and its estimate of seconds left. */
  jobPercent?: number;
  etaSeconds?: number;
  /** A migration's convergence policy and the step of it in force. */
  policy?: string;
  policyStep?: string;
  /** Post-copy migrations: where the post-copy phase stands (paused while the link is broken), and recovery attempts made. */
  postcopyState?: PostcopyState;
  postcopyRecoveries?: number;
  error?: JobError;
  /** Errors met while cleaning up after `error`; never replace it. */
  cleanupErrors?: JobError[];
}

/** One job per domain cluster-wide: the workflow ID is derived from the domain UUID. */
export function jobWorkflowId(domainUuid: string): string {
  return `vmferry-job-${domainUuid.toLowerCase()}`;
}

/** Phase progress an activity reports in its heartbeats. */
export interface JobHeartbeat {
  phase: string;
  progress: JobProgress;
}
