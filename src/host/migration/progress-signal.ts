// Perform's progress, sent to its workflow as signals, for a migration run with a
// convergence policy: the policy is workflow code, and workflow code cannot see
// heartbeats. Each signal costs about four history events, so a sample goes at
// each new pass over memory (what the policy counts; at most one a second) and
// otherwise every 30 s (what its timeouts need); a migration without a policy
// sends none and its history stays as small as before.
import type { Client } from '@temporalio/client';
import { migrationProgressSignal, type ConvergenceSample } from '../../common/convergence-messages.js';
import type { JobProgress } from '../../common/job-types.js';
import type { MigrationInfo } from '../../qemu/migration-info.js';
import type { Logger } from 'pino';

/** Between samples of one pass, and at least between samples of successive passes. */
const EVERY_MS = 30_000;
const MIN_GAP_MS = 1_000;

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
    const gap = last ? s.elapsedMs - last.atMs : Infinity;
    const due = gap >= EVERY_MS || (gap >= MIN_GAP_MS && (s.iteration !== last!.iteration || s.status !== last!.status));
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
