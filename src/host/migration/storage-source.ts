// The source's half of a storage migration (libvirt's NBD path): Begin
// announces the disks to copy with what the destination needs to create them;
// Perform mirrors each into the destination's NBD export and waits until
// every mirror is ready (the disks stay in sync from then on, each guest write
// going to both sides); at the switchover, with the guest paused before its
// device state goes, the mirrors are completed so the destination holds every
// write; an undo stops them and drops their NBD client nodes.
import { ErrorType, vmError } from '../../common/errors.js';
import { STORAGE_COPY_PHASE, type JobHeartbeat, type JobProgress } from '../../common/job-types.js';
import type { CookieNbd } from '../../migration/cookie.js';
import type { StoragePlan } from '../../migration/storage-plan.js';
import { bandwidthBytes } from '../../qemu/migration-params.js';
import {
  abortMirror,
  completeMirror,
  dismissMirror,
  driveName,
  queryBlockImages,
  queryBlockJobs,
  removeMirrorTarget,
  setMirrorSpeed,
  startMirror,
  type BlockJobInfo,
  type NbdAddress,
} from '../../qemu/migration-engine-storage.js';
import type { QmpClient } from '../../qemu/qmp-client.js';
import type { HostJob } from '../domain-lock.js';
import type { RunningDomain } from '../running-domain.js';

/** Begin: the <nbd> disks of the cookie, from what QEMU has open (capacity, allocation, cluster size, backing file). */
export async function announceDisks(dom: RunningDomain, plan: StoragePlan): Promise<CookieNbd> {
  const images = await queryBlockImages(dom.qmp);
  return {
    disks: plan.disks.map((d) => {
      const target = d.target.dev;
      const img = images.get(target);
      if (img?.virtualSizeBytes === undefined) {
        throw vmError(ErrorType.OperationFailed, `disk '${target}' of '${dom.name}': QEMU reports no open image to copy`, { disk: target });
      }
      const top = plan.sync === 'top' && img.backingFile !== undefined;
      return {
        target,
        capacityBytes: img.virtualSizeBytes,
        ...(img.actualSizeBytes !== undefined ? { allocationBytes: img.actualSizeBytes } : {}),
        ...(img.format === 'qcow2' && img.clusterSizeBytes !== undefined ? { clusterSizeBytes: img.clusterSizeBytes } : {}),
        ...(top ? { backingFile: img.backingFile, ...(img.backingFormat ? { backingFormat: img.backingFormat } : {}) } : {}),
      };
    }),
  };
}

export interface MirrorSpec {
  disks: string[];
  sync: 'full' | 'top';
  /** The destination's NBD server, or the worker's relay into the tunnel. */
  address: NbdAddress;
  bandwidthMiBps: number;
  tls?: { creds: string; hostname: string };
}

/** What a retried Perform found: the mirrors an earlier attempt left running, and whether each was ready. */
export type ResumedMirrors = Array<{ disk: string; ready: boolean }>;

/** Starts every mirror not yet running (a retried Perform finds the ones already there, and says so). */
export async function startMirrors(qmp: QmpClient, s: MirrorSpec): Promise<ResumedMirrors> {
  const running = new Map((await queryBlockJobs(qmp)).map((j) => [j.device, j]));
  const resumed: ResumedMirrors = [];
  for (const target of s.disks) {
    const j = running.get(driveName(target));
    if (j) {
      resumed.push({ disk: target, ready: j.ready });
      continue;
    }
    await startMirror(qmp, {
      target,
      ...s.address,
      sync: s.sync,
      speedBytes: s.bandwidthMiBps === 0 ? 0 : bandwidthBytes(s.bandwidthMiBps),
      ...(s.tls ? { tlsCreds: s.tls.creds, tlsHostname: s.tls.hostname } : {}),
    });
  }
  return resumed;
}

function mirrorsOf(jobs: BlockJobInfo[], disks: readonly string[]): BlockJobInfo[] {
  const names = new Set(disks.map(driveName));
  return jobs.filter((j) => names.has(j.device));
}

export function diskProgress(jobs: BlockJobInfo[]): JobProgress {
  const total = jobs.reduce((n, j) => n + j.len, 0);
  const done = jobs.reduce((n, j) => n + Math.min(j.offset, j.len), 0);
  return { diskTotalBytes: total, diskProcessedBytes: done, diskRemainingBytes: total - done };
}

/** A mirror that stopped on its own (an I/O error, the destination gone): the copy cannot finish. */
function failedMirror(jobs: BlockJobInfo[], disks: readonly string[]): Error | undefined {
  for (const target of disks) {
    const j = jobs.find((x) => x.device === driveName(target));
    if (!j) return vmError(ErrorType.OperationFailed, `the mirror of disk '${target}' is gone from QEMU`, { disk: target });
    if (j.status === 'concluded' || j.status === 'aborting' || j.error !== undefined) {
      return vmError(ErrorType.OperationFailed, `the mirror of disk '${target}' failed: ${j.error ?? j.status ?? 'no reason given'}`, { disk: target });
    }
  }
  return undefined;
}

export interface MirrorWatch {
  dom: RunningDomain;
  job: HostJob;
  disks: string[];
  signal: AbortSignal;
  heartbeat: (hb: JobHeartbeat & { status: string; speedLimitMiBps?: number }) => void;
  intervalMs?: number;
}

/** One look at the mirrors: their progress as its own phase in a heartbeat; true once every one is ready. */
async function mirrorsReady(w: MirrorWatch): Promise<boolean> {
  const jobs = mirrorsOf(await queryBlockJobs(w.dom.qmp), w.disks);
  const failed = failedMirror(jobs, w.disks);
  if (failed) throw failed;
  const progress = diskProgress(jobs);
  w.job.phase = STORAGE_COPY_PHASE;
  w.job.progress = progress;
  const ready = jobs.every((j) => j.ready);
  // The limit as QEMU applies it to the mirrors (block-job-set-speed), 0 = unlimited.
  const speed = jobs[0]?.speed;
  w.heartbeat({
    phase: STORAGE_COPY_PHASE,
    status: ready ? 'ready' : 'mirroring',
    progress,
    ...(speed !== undefined ? { speedLimitMiBps: Math.round(speed / (1024 * 1024)) } : {}),
  });
  return ready;
}

/**
 * Waits until every mirror is ready, reporting disk progress as its own phase. A cancel
 * (activity cancel or the job's abort) stops the wait with OperationAborted; the caller undoes.
 */
export async function waitMirrorsReady(w: MirrorWatch): Promise<void> {
  const { qmp } = w.dom;
  const aborted = new Promise<void>((r) => w.signal.addEventListener('abort', () => r(), { once: true }));
  for (;;) {
    if (w.signal.aborted || w.job.abortRequested) throw vmError(ErrorType.OperationAborted, 'storage migration cancelled while the disks were copied');
    if (qmp.isClosed) throw vmError(ErrorType.OperationFailed, `the source QEMU of '${w.dom.name}' exited while its disks were copied`);
    // Listening before the query, so a READY that comes between the query and the wait ends the wait at once.
    const listening = new AbortController();
    const readyEvent = qmp.waitForEvent('BLOCK_JOB_READY', { timeoutMs: w.intervalMs ?? 500, signal: listening.signal }).catch(() => undefined);
    try {
      if (await mirrorsReady(w)) return;
      await Promise.race([readyEvent, aborted]);
    } finally {
      listening.abort();
    }
  }
}

/** During the memory stream: an error when a mirror stopped (libvirt's storage check while it waits). */
export async function checkMirrors(qmp: QmpClient, disks: readonly string[]): Promise<{ failed?: Error; progress: JobProgress }> {
  const jobs = mirrorsOf(await queryBlockJobs(qmp), disks);
  const failed = failedMirror(jobs, disks);
  return { ...(failed ? { failed } : {}), progress: diskProgress(jobs) };
}

/**
 * At the pre-switchover pause: completes every ready mirror (the guest is paused, so the
 * target ends up equal to the source) and waits until each has concluded without error.
 */
export async function completeMirrors(qmp: QmpClient, disks: readonly string[], deadlineMs = 60_000): Promise<void> {
  const jobs = mirrorsOf(await queryBlockJobs(qmp), disks);
  const failed = failedMirror(jobs, disks);
  if (failed) throw failed;
  for (const target of disks) await completeMirror(qmp, target);
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    // The guest is paused while this waits: listen before the query, so a COMPLETED that comes in between is not missed.
    const listening = new AbortController();
    const completedEvent = qmp.waitForEvent('BLOCK_JOB_COMPLETED', { timeoutMs: 200, signal: listening.signal }).catch(() => undefined);
    try {
      const now = mirrorsOf(await queryBlockJobs(qmp), disks);
      const bad = now.find((j) => j.error !== undefined);
      if (bad) throw vmError(ErrorType.OperationFailed, `completing the mirror of ${bad.device} failed: ${bad.error}`);
      if (now.every((j) => j.status === 'concluded')) break;
      if (Date.now() > deadline) throw vmError(ErrorType.OperationFailed, `the disk mirrors did not complete within ${deadlineMs} ms of the switchover`);
      await completedEvent;
    } finally {
      listening.abort();
    }
  }
  for (const target of disks) {
    await dismissMirror(qmp, target);
    await removeMirrorTarget(qmp, target);
  }
}

/** Undo: stops whatever mirror still runs and drops the NBD client nodes; the source's own disks are untouched. */
export async function abortMirrors(qmp: QmpClient, disks: readonly string[]): Promise<void> {
  if (qmp.isClosed) return;
  const deadline = Date.now() + 15_000;
  for (const target of disks) await abortMirror(qmp, target, { timeoutMs: 5_000 }).catch(() => undefined);
  for (;;) {
    const left = mirrorsOf(await queryBlockJobs(qmp, { timeoutMs: 5_000 }), disks).filter((j) => j.status !== 'concluded' && j.status !== 'null');
    if (left.length === 0 || Date.now() > deadline) break;
    await qmp.waitForEvent('BLOCK_JOB_CANCELLED', { timeoutMs: 200 }).catch(() => undefined);
  }
  for (const target of disks) {
    await dismissMirror(qmp, target).catch(() => undefined);
    await removeMirrorTarget(qmp, target).catch(() => undefined);
  }
}

/** setSpeed on a running storage migration: every mirror still running takes the new limit at once. */
export async function setMirrorsSpeed(qmp: QmpClient, disks: readonly string[], mibps: number): Promise<number> {
  const jobs = mirrorsOf(await queryBlockJobs(qmp), disks).filter((j) => j.status !== 'concluded');
  for (const j of jobs) await setMirrorSpeed(qmp, j.device.slice('drive-'.length), mibps === 0 ? 0 : bandwidthBytes(mibps));
  return jobs.length;
}
