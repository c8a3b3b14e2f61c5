// What a host must remember about a migration in flight, on disk, so a
// restarted worker (or its auto-destroy reaper) can finish or undo its part:
// which workflow run owns the job, whether the domain ran before, which port an
// incoming QEMU listens on, what the destination persists at Finish.
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrateFlag, MigrationProtocol, MigrationStats } from '../common/migration-types.js';
import { writeFileAtomic } from '../support/atomic-write.js';

export interface MigrationRecord {
  role: 'out' | 'in';
  /** The domain's name on this host. */
  name: string;
  uuid: string;
  jobId: string;
  workflowId: string;
  runId: string;
  protocol: MigrationProtocol;
  flags: MigrateFlag[];
  createdAtMs: number;
  /** out: the domain ran when the job began. */
  wasRunning?: boolean;
  /** out: `migrate` was issued to QEMU (a retried Perform watches instead of starting again). */
  performStarted?: boolean;
  /** out, v2: the stream completed and the source was stopped (what a retried Perform2 returns). */
  completedStats?: MigrationStats;
  /** out: the guest switched to post-copy; the source can no longer be resumed. */
  postcopyStarted?: boolean;
  /** in: the source's name (cookies carry it). */
  sourceName?: string;
  /** in: the incoming QEMU's pid (the reaper kills only that process). */
  pid?: number;
  port?: number;
  uri?: string;
  /** in: Prepare's answer, returned as is to a retried Prepare. */
  cookie?: string;
  /** in: the persistent definition from the source's cookie. */
  persistentXml?: string;
  /** in, tunnelled: who may connect (the source host by certificate name, with the token) and where to. */
  tunnel?: { endpoint: string; token: string; sourceHost: string };
}

function dir(runDir: string): string {
  return join(runDir, 'migrations');
}

function path(runDir: string, name: string): string {
  return join(dir(runDir), `${encodeURIComponent(name)}.json`);
}

export function writeRecord(runDir: string, rec: MigrationRecord): void {
  mkdirSync(dir(runDir), { recursive: true, mode: 0o700 });
  writeFileAtomic(path(runDir, rec.name), `${JSON.stringify(rec)}\n`);
}

export function readRecord(runDir: string, name: string): MigrationRecord | undefined {
  try {
    return JSON.parse(readFileSync(path(runDir, name), 'utf8')) as MigrationRecord;
  } catch {
    return undefined;
  }
}

/** The record of this job, or undefined when there is none or it belongs to another job. */
export function recordOf(runDir: string, name: string, jobId: string): MigrationRecord | undefined {
  const rec = readRecord(runDir, name);
  return rec?.jobId === jobId ? rec : undefined;
}

export function updateRecord(runDir: string, name: string, jobId: string, patch: Partial<MigrationRecord>): MigrationRecord | undefined {
  const rec = recordOf(runDir, name, jobId);
  if (!rec) return undefined;
  const next = { ...rec, ...patch };
  writeRecord(runDir, next);
  return next;
}

/** Removes the record if it is this job's; removing twice is fine. */
export function removeRecord(runDir: string, name: string, jobId: string): void {
  if (recordOf(runDir, name, jobId)) rmSync(path(runDir, name), { force: true });
  try {
    if (readdirSync(dir(runDir)).length === 0) rmSync(dir(runDir), { recursive: true, force: true });
  } catch {
    // already gone
  }
}

export function listRecords(runDir: string): MigrationRecord[] {
  let files: string[];
  try {
    files = readdirSync(dir(runDir)).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  const out: MigrationRecord[] = [];
  for (const f of files) {
    const rec = readRecord(runDir, decodeURIComponent(f.slice(0, -'.json'.length)));
    if (rec) out.push(rec);
  }
  return out;
}
