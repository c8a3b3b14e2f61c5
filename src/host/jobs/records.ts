// The one record of work in flight on this host: one JSON file per domain in
// <stateDir>/jobs/<name>.json, written atomically, shaped by the job's kind.
// The in-memory job table (domain-lock.ts) dies with the worker; this record
// tells the next worker (recovery.ts) and the auto-destroy reaper what the job
// changed and who owns it. A domain has one job at a time, so one file per
// domain: a new job's record replaces the finished one before it (save and
// restore keep theirs after finishing, as the answer to a retried activity).
// It lives in the state directory, not the run directory, because a partial
// save image outlives a host reboot and should still be removed.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JobType } from '../../common/job-types.js';
import type { MigrateFlag, MigrationProtocol, MigrationStats } from '../../common/migration-types.js';
import type { RestoreResult, SaveResult } from '../../common/save-types.js';
import type { HelperRef } from '../../saveimage/compressor.js';
import { writeFileAtomic } from '../../support/atomic-write.js';

export type SaveJobState = 'running' | 'completed' | 'rolledBack';

export interface SaveJobRecord {
  kind: 'save' | 'restore';
  type: JobType;
  jobId: string;
  name: string;
  uuid: string;
  path: string;
  state: SaveJobState;
  /** Save: the CPUs ran when the save paused them; a rollback starts them again. */
  resumeCpus?: boolean;
  /** Save: the file at `path` is this job's (created or truncated by it): a rollback may remove it. */
  imageCreated?: boolean;
  /** A sparse (mapped-ram) stream: QEMU's mapped-ram and multifd are switched off again, its image fdsets let go. */
  sparse?: boolean;
  /** Restore: start the CPUs once the stream is in. */
  startRunning?: boolean;
  /** Save: QEMU's max-bandwidth (bytes/s) before the save made it unlimited. */
  bandwidthBytes?: number;
  /** Restore: the incoming QEMU this job launched. */
  qemuPid?: number;
  helpers: HelperRef[];
  /** Managed start: remove the image once the domain runs from it. */
  managed?: boolean;
  saveResult?: SaveResult;
  restoreResult?: Omit<RestoreResult, 'domain'>;
  updatedAtMs: number;
}

/** What both sides of a migration remember: which workflow run owns the job (the reaper asks Temporal about it). */
interface MigrationRecordBase {
  /** The domain's name on this host. */
  name: string;
  uuid: string;
  jobId: string;
  workflowId: string;
  runId: string;
  protocol: MigrationProtocol;
  flags: MigrateFlag[];
  createdAtMs: number;
  updatedAtMs?: number;
}

export interface MigrateOutRecord extends MigrationRecordBase {
  kind: 'migrate-out';
  /** The domain ran when the job began. */
  wasRunning?: boolean;
  /** `migrate` was issued to QEMU (a retried Perform watches instead of starting again). */
  performStarted?: boolean;
  /** v2: the stream completed and the source was stopped (what a retried Perform2 returns). */
  completedStats?: MigrationStats;
  /** The guest switched to post-copy; the source can no longer be resumed. */
  postcopyStarted?: boolean;
  /** copy-storage: how and which disks (by target) Begin chose to mirror to the destination's NBD server. */
  storage?: { sync: 'full' | 'top'; disks: string[] };
  /** copy-storage: the mirrors were started (Perform); every undo cancels them. */
  mirrorsStarted?: boolean;
}

export interface MigrateInRecord extends MigrationRecordBase {
  kind: 'migrate-in';
  /** The source's name (cookies carry it). */
  sourceName?: string;
  /** The incoming QEMU's pid (the reaper kills only that process). */
  pid?: number;
  port?: number;
  uri?: string;
  /** Prepare's answer, returned as is to a retried Prepare. */
  cookie?: string;
  /** The persistent definition from the source's cookie. */
  persistentXml?: string;
  /** Tunnelled: who may connect (the source host by certificate name, with the token) and where to. */
  tunnel?: { endpoint: string; token: string; sourceHost: string };
  /**
   * copy-storage: image files this job claimed (written before each is made), so an undo
   * deletes these and never an image that was there before; and the NBD server's port, or
   * (tunnelled) the unix socket it listens on, which only the worker's tunnel listener reaches.
   */
  createdImages?: string[];
  nbdPort?: number;
  nbdSocket?: string;
  /** Post-copy: this QEMU runs with postcopy-preempt (a retried Prepare reports it again). */
  postcopyPreempt?: boolean;
}

export type MigrationRecord = MigrateOutRecord | MigrateInRecord;

export interface DumpJobRecord {
  kind: 'dump';
  jobId: string;
  name: string;
  uuid: string;
  /** Where the dump is published, and the temporary file it is written to first. */
  path: string;
  tempPath: string;
  live: boolean;
  wasRunning: boolean;
  updatedAtMs: number;
}

/** Later kinds (storage copy) join this union and the recovery switch. */
export type JobRecord = SaveJobRecord | MigrationRecord | DumpJobRecord;
export type JobKind = JobRecord['kind'];
export type RecordOfKind<K extends JobKind> = Extract<JobRecord, { kind: K }>;

export const JOB_KINDS: readonly JobKind[] = ['migrate-out', 'migrate-in', 'save', 'restore', 'dump'];

function ofJob<K extends JobKind>(rec: JobRecord | undefined, jobId: string, kinds: K[]): RecordOfKind<K> | undefined {
  return rec?.jobId === jobId && (kinds as JobKind[]).includes(rec.kind) ? (rec as RecordOfKind<K>) : undefined;
}

export class JobRecords {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'jobs');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private file(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  read(name: string): JobRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.file(name), 'utf8');
    } catch {
      return undefined;
    }
    const rec = JSON.parse(text) as JobRecord;
    if (typeof rec !== 'object' || rec === null || rec.name !== name || typeof rec.jobId !== 'string' || !JOB_KINDS.includes(rec.kind))
      throw new Error(`job record ${this.file(name)} is malformed`);
    return rec;
  }

  /** The record of this very job, if it is the one on disk and of one of these kinds; a malformed file throws. */
  readJob<K extends JobKind>(name: string, jobId: string, ...kinds: K[]): RecordOfKind<K> | undefined {
    return ofJob(this.read(name), jobId, kinds);
  }

  /** Like readJob, but an unreadable file is no record (a migration step then starts over or reports no job). */
  find<K extends JobKind>(name: string, jobId: string, ...kinds: K[]): RecordOfKind<K> | undefined {
    return ofJob(this.tryRead(name), jobId, kinds);
  }

  private tryRead(name: string): JobRecord | undefined {
    try {
      return this.read(name);
    } catch {
      return undefined;
    }
  }

  // One overload per record type, so a record written from an object literal keeps its declared type.
  write(rec: SaveJobRecord): SaveJobRecord;
  write(rec: MigrateOutRecord): MigrateOutRecord;
  write(rec: MigrateInRecord): MigrateInRecord;
  write(rec: DumpJobRecord): DumpJobRecord;
  write(rec: JobRecord): JobRecord;
  write(rec: JobRecord): JobRecord {
    rec.updatedAtMs = Date.now();
    writeFileAtomic(this.file(rec.name), `${JSON.stringify(rec, null, 2)}\n`);
    return rec;
  }

  /** Changes `rec` in place and writes it. */
  update<R extends JobRecord>(rec: R, patch: Partial<R>): R {
    return this.write(Object.assign(rec, patch) as JobRecord) as R;
  }

  /** Reads this job's record, changes it and writes it back; undefined when the record on disk is not this job's. */
  patch<K extends JobKind>(name: string, jobId: string, kind: K, patch: Partial<RecordOfKind<K>>): RecordOfKind<K> | undefined {
    const rec = this.find(name, jobId, kind);
    return rec ? this.update(rec, patch) : undefined;
  }

  /** Removes the record if it still belongs to `jobId`; removing twice is fine. */
  remove(name: string, jobId: string): void {
    if (this.tryRead(name)?.jobId === jobId) rmSync(this.file(name), { force: true });
  }

  /** Every record that can be read (for the reaper: an unreadable one is left for start-up recovery to report). */
  list(): JobRecord[] {
    return this.names().flatMap((n) => this.tryRead(n) ?? []);
  }

  names(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
  }
}
