// One percentage and ETA over a whole migration, Begin through Confirm, that
// never runs backwards. QEMU's own figures do: remaining memory grows when the
// guest dirties pages faster than they move, and a disk mirror's total grows
// with the guest's writes. The steps without a stream get fixed shares; the
// rest is split between the disk copy and the memory by their sizes.
import type { JobProgress } from '../common/job-types.js';
import { STORAGE_COPY_PHASE } from '../common/job-types.js';

/** Shares of the steps that move no data, in percent of the whole job. */
const FIXED: Readonly<Record<string, { start: number; size: number }>> = {
  begin: { start: 0, size: 2 },
  prepare: { start: 2, size: 3 },
  finish: { start: 95, size: 3 },
  confirm: { start: 98, size: 2 },
};
const STREAM_START = 5;
const STREAM_SIZE = 90;

export interface OverallProgress {
  percent: number;
  /** Seconds left, from the stream's rate over the last samples; absent until it can be told. */
  etaSeconds?: number;
}

export class JobPercent {
  private best = 0;
  private rate?: { atMs: number; bytes: number; bytesPerSec?: number };

  /** `nowMs` is workflow time (deterministic), `phase` the job's phase, `p` the latest figures. */
  update(phase: string, p: JobProgress, nowMs: number): OverallProgress {
    const raw = this.raw(phase, p);
    this.best = Math.min(100, Math.max(this.best, raw));
    const eta = this.eta(phase, p, nowMs);
    return { percent: Math.floor(this.best * 10) / 10, ...(eta !== undefined ? { etaSeconds: eta } : {}) };
  }

  private raw(phase: string, p: JobProgress): number {
    if (phase === 'completed') return 100;
    const fixed = FIXED[phase];
    if (fixed) return fixed.start;
    const disk = p.diskTotalBytes ?? 0;
    const mem = p.memTotalBytes ?? p.dataTotalBytes ?? 0;
    const diskShare = disk + mem > 0 ? disk / (disk + mem) : 0;
    const diskDone = fraction(p.diskProcessedBytes, p.diskRemainingBytes);
    if (phase === STORAGE_COPY_PHASE) return STREAM_START + STREAM_SIZE * diskShare * diskDone;
    if (phase === 'perform' || phase.startsWith('postcopy')) {
      const memDone = fraction(p.memProcessedBytes ?? p.dataProcessedBytes, p.memRemainingBytes ?? p.dataRemainingBytes);
      // The disks are mirrored (ready) before the memory stream starts: their share is done.
      return STREAM_START + STREAM_SIZE * (diskShare + (1 - diskShare) * memDone);
    }
    return this.best;
  }

  private eta(phase: string, p: JobProgress, nowMs: number): number | undefined {
    const streaming = phase === STORAGE_COPY_PHASE ? p.diskProcessedBytes : (p.memProcessedBytes ?? p.dataProcessedBytes);
    const remaining = phase === STORAGE_COPY_PHASE ? p.diskRemainingBytes : (p.memRemainingBytes ?? p.dataRemainingBytes);
    if (streaming === undefined || remaining === undefined) return undefined;
    const last = this.rate;
    if (!last || streaming < last.bytes) {
      this.rate = { atMs: nowMs, bytes: streaming };
      return undefined;
    }
    const dt = (nowMs - last.atMs) / 1000;
    if (dt <= 0) return last.bytesPerSec ? Math.ceil(remaining / last.bytesPerSec) : undefined;
    const now = (streaming - last.bytes) / dt;
    // Smoothed, so one slow sample does not swing the estimate.
    const bytesPerSec = last.bytesPerSec === undefined ? now : 0.7 * last.bytesPerSec + 0.3 * now;
    this.rate = { atMs: nowMs, bytes: streaming, bytesPerSec };
    return bytesPerSec > 0 ? Math.ceil(remaining / bytesPerSec) : undefined;
  }
}

function fraction(done: number | undefined, remaining: number | undefined): number {
  if (done === undefined || remaining === undefined || done + remaining <= 0) return 0;
  return done / (done + remaining);
}
