// Perform's progress, sent to its workflow as signals: the convergence policy
// and the whole-job percentage are workflow code, and workflow code cannot see
// heartbeats. Each signal is a history event, so samples go at each new pass
// over memory (what the policy counts) and otherwise at a pace that slows as
// the migration ages, keeping a day-long migration's history bounded.
import type { Client } from '@temporalio/client';
import { migrationProgressSignal, type ConvergenceSample } from '../../common/convergence-messages.js';
import type { JobProgress } from '../../common/job-types.js';
import type { MigrationInfo } from '../../qemu/migration-info.js';
import type { Logger } from 'pino';

/** Between samples of the same pass: this at first, then SLOW_EVERY_MS once the stream is older than SLOW_AFTER_MS. */
const EVERY_MS = 2_000;
const SLOW_AFTER_MS = 10 * 60_000;
const SLOW_EVERY_MS = 30_000;

const STREAMING = new Set(['active', 'postcopy-active', 'pre-switchover', 'device']);

export function sampleOf(info: MigrationInfo, p: JobProgress): ConvergenceSample | undefined {
  const ram = info.ram;
  if (!ram || ram.remaining === undefined || ram.total === undefined) return undefined;
  const diskTotal = p.diskTotalBytes ?? 0;
  return {
    elapsedMs: info['total-time'] ?? 0,
    iteration: ram['dirty-sync-count'] ?? 0,
    remainingBytes: ram.remaining + (p.diskRemainingBytes ?? 0),
    totalBytes: ram.total + diskTotal,
    ...(ram.transferred !== undefined ? { processedBytes: ram.transferred } : {}),
    ...(ram['dirty-pages-rate'] !== undefined ? { dirtyRatePagesPerSec: ram['dirty-pages-rate'] } : {}),
    ...(info['cpu-throttle-percentage'] !== undefined ? { throttlePercent: info['cpu-throttle-percentage'] } : {}),
    ...(info.status !== undefined ? { status: info.status } : {}),
  };
}

export class ProgressSignaller {
  private last?: { iteration: number; atMs: number; status?: string };
  private inFlight = false;

  constructor(
    private readonly client: Client,
    private readonly workflow: { workflowId: string; runId: string },
    private readonly log: Logger,
  ) {}

  /** The activity's worker client, when it has one (a test's mock context has none: no samples then). */
  static fromContext(ctx: { client: Client }, workflow: { workflowId: string; runId: string }, log: Logger): ProgressSignaller | undefined {
    try {
      return new ProgressSignaller(ctx.client, workflow, log);
    } catch {
      return undefined;
    }
  }

  /** Called at every poll; sends when the policy has something new to judge. Never throws, never waits. */
  offer(info: MigrationInfo, p: JobProgress): void {
    if (!STREAMING.has(info.status ?? '')) return;
    const s = sampleOf(info, p);
    if (!s || this.inFlight) return;
    const last = this.last;
    const every = s.elapsedMs > SLOW_AFTER_MS ? SLOW_EVERY_MS : EVERY_MS;
    const due = !last || s.iteration !== last.iteration || s.status !== last.status || s.elapsedMs - last.atMs >= every;
    if (!due) return;
    this.last = { iteration: s.iteration, atMs: s.elapsedMs, ...(s.status !== undefined ? { status: s.status } : {}) };
    this.inFlight = true;
    // A lost sample only delays the policy to the next one; the migration never waits on it.
    void this.client.workflow
      .getHandle(this.workflow.workflowId, this.workflow.runId)
      .signal(migrationProgressSignal, s)
      .catch((err: unknown) => this.log.debug({ err: String(err) }, 'progress sample not delivered'))
      .finally(() => {
        this.inFlight = false;
      });
  }
}
