// The on-disk record of a save or restore job in flight, one per domain in
// <stateDir>/jobs/<name>.json. The in-memory job table dies with the worker;
// this record tells the next worker what to undo (which image is partial,
// whether the guest's CPUs were running, which helper processes and which QEMU
// the job started, QEMU's bandwidth before the save raised it) or that the job
// already finished, so a retried activity answers instead of redoing it. It
// lives in the state directory, not the run directory, because a partial image
// outlives a host reboot and should still be removed.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JobType } from '../common/job-types.js';
import type { RestoreResult, SaveResult } from '../common/save-types.js';
import type { HelperRef } from '../saveimage/compressor.js';
import { writeFileAtomic } from '../support/atomic-write.js';

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

export class SaveJobRecords {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'jobs');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private file(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  read(name: string): SaveJobRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.file(name), 'utf8');
    } catch {
      return undefined;
    }
    const rec = JSON.parse(text) as SaveJobRecord;
    if (typeof rec !== 'object' || rec === null || rec.name !== name || typeof rec.jobId !== 'string')
      throw new Error(`job record ${this.file(name)} is malformed`);
    return rec;
  }

  /** The record of this very job, if it is the one on disk. */
  readJob(name: string, jobId: string): SaveJobRecord | undefined {
    const rec = this.read(name);
    return rec?.jobId === jobId ? rec : undefined;
  }

  write(rec: SaveJobRecord): SaveJobRecord {
    rec.updatedAtMs = Date.now();
    writeFileAtomic(this.file(rec.name), `${JSON.stringify(rec, null, 2)}\n`);
    return rec;
  }

  update(rec: SaveJobRecord, patch: Partial<SaveJobRecord>): SaveJobRecord {
    return this.write(Object.assign(rec, patch));
  }

  /** Removes the record if it still belongs to `jobId`. */
  remove(name: string, jobId: string): void {
    if (this.read(name)?.jobId === jobId) rmSync(this.file(name), { force: true });
  }

  names(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
  }
}
