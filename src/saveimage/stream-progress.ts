// How far a save or restore stream has got, in libvirt's domjobinfo terms.
// Save: QEMU's own counters (query-migrate). Restore: QEMU's incoming side
// reports no byte counts, so the position of the process reading the image
// file (QEMU itself for raw, else the decompressor or dd) is read from
// /proc/<pid>/fdinfo: that is exactly the bytes of the image consumed so far.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { JobProgress } from '../common/job-types.js';
import type { MigrationInfo } from '../qemu/migration-info.js';

/** How long a save or restore waits for QEMU to answer query-migrate or migrate_cancel. */
export const STREAM_QMP_DEADLINE = { timeoutMs: 5000 } as const;

const percentOf = (total: number | undefined, remaining: number | undefined): number | undefined =>
  total && remaining !== undefined ? Math.min(100, Math.max(0, Math.floor(((total - remaining) * 100) / total))) : undefined;

export function migrationProgress(q: MigrationInfo): JobProgress {
  const ram = q.ram ?? {};
  const p: JobProgress = {
    dataTotalBytes: ram.total,
    dataProcessedBytes: ram.transferred,
    dataRemainingBytes: ram.remaining,
    memTotalBytes: ram.total,
    memProcessedBytes: ram.transferred,
    memRemainingBytes: ram.remaining,
    dirtyRatePagesPerSec: ram['dirty-pages-rate'],
    // QEMU's mbps is megabits (10^6) per second.
    bandwidthMiBps: ram.mbps === undefined ? undefined : Math.round((ram.mbps * 1e6) / 8 / 1048576),
    setupTimeMs: q['setup-time'],
    percent: q.status === 'completed' ? 100 : percentOf(ram.total, ram.remaining),
  };
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as JobProgress;
}

/** The file offset of `pid`'s descriptor open on `path`, or undefined. */
export function readPosition(pid: number, path: string): number | undefined {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== path) continue;
      const m = /^pos:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) return Number(m[1]);
    } catch {
      // the descriptor closed while we looked
    }
  }
  return undefined;
}

export function fileReadProgress(streamOffset: number, fileSize: number, position: number | undefined): JobProgress {
  const total = Math.max(0, fileSize - streamOffset);
  if (position === undefined) return { dataTotalBytes: total };
  const processed = Math.min(total, Math.max(0, position - streamOffset));
  return {
    dataTotalBytes: total,
    dataProcessedBytes: processed,
    dataRemainingBytes: total - processed,
    percent: total ? Math.floor((processed * 100) / total) : 100,
  };
}
