// One line of job progress, virsh --verbose style but with the rate and the
// time left: "migrate web1 host-a -> host-b: perform  42% (54.1/128.0 MiB) 8.0 MiB/s ETA 0:09".
import type { JobInfo } from '../common/job-types.js';

const MIB = 1024 * 1024;
/** Rates are averaged over this much recent history: heartbeats arrive about once a second. */
const RATE_WINDOW_MS = 3000;

/**
 * Bytes per second from successive processed-byte counts. QEMU's own figure is
 * preferred when the job reports one; restores and dumps report none.
 */
export class RateMeter {
  private samples: { atMs: number; bytes: number }[] = [];

  add(bytes: number | undefined, atMs: number): void {
    if (bytes === undefined) return;
    const last = this.samples.at(-1);
    if (last && last.bytes === bytes) return; // the same heartbeat read twice
    if (last && bytes < last.bytes) this.samples = []; // a retried step starts over
    this.samples.push({ atMs, bytes });
    while (this.samples.length > 2 && atMs - this.samples[0]!.atMs > RATE_WINDOW_MS) this.samples.shift();
  }

  bytesPerSec(): number | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.atMs - first.atMs < 500) return undefined;
    return ((last.bytes - first.bytes) * 1000) / (last.atMs - first.atMs);
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The rate shown: QEMU's when it reports one, else measured from the byte counts. */
export function rateOf(info: JobInfo, meter: RateMeter): number | undefined {
  if (info.bandwidthMiBps !== undefined && info.bandwidthMiBps > 0) return info.bandwidthMiBps * MIB;
  return meter.bytesPerSec();
}

export function formatProgress(label: string, info: JobInfo, bytesPerSec: number | undefined): string {
  const parts = [`${label}: ${info.phase}`];
  const total = info.dataTotalBytes;
  const processed = info.dataProcessedBytes;
  const remaining = info.dataRemainingBytes ?? (total !== undefined && processed !== undefined ? Math.max(0, total - processed) : undefined);
  const percent = info.percent ?? (total && processed !== undefined ? Math.min(100, (processed * 100) / total) : undefined);
  if (percent !== undefined) parts.push(`${percent.toFixed(0).padStart(3)}%`);
  if (processed !== undefined)
    parts.push(total ? `(${(processed / MIB).toFixed(1)}/${(total / MIB).toFixed(1)} MiB)` : `(${(processed / MIB).toFixed(1)} MiB)`);
  if (bytesPerSec !== undefined) parts.push(`${(bytesPerSec / MIB).toFixed(1)} MiB/s`);
  if (bytesPerSec && remaining !== undefined && info.status === 'running') parts.push(`ETA ${formatDuration(remaining / bytesPerSec)}`);
  return parts.join(' ');
}
