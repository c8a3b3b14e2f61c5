// What may touch a domain on this host right now. A short operation (start,
// suspend, ...) holds the domain for one call; a job (save, migration) holds it
// across several activities until it ends. Cluster-wide job exclusivity is
// Temporal's (one workflow ID per domain); this guards the host against two
// activities racing on one QEMU.
import type { JobProgress, JobType } from '../common/job-types.js';
import { ErrorType, vmError } from '../common/errors.js';

export interface HostJob {
  id: string;
  type: JobType;
  domain: string;
  phase: string;
  startedAtMs: number;
  progress: JobProgress;
  /** Set by the abort activity so the running step reports OperationAborted, not a failure. */
  abortRequested: boolean;
  /** Post-copy was asked for (the startPostcopy control): the watch switches as soon as the stream is active. */
  postcopyRequested?: boolean;
  /** migrate-start-postcopy went to QEMU: from here on nothing may cancel the stream (the destination may run the guest). */
  postcopySent?: boolean;
}

export class DomainLocks {
  private readonly holders = new Map<string, string>();
  private readonly jobs = new Map<string, HostJob>();

  private busy(name: string, holder: string): Error {
    return vmError(ErrorType.DomainBusy, `domain '${name}' is busy with job ${holder}`, { domain: name, job: holder });
  }

  async with<T>(name: string, op: string, fn: () => Promise<T>): Promise<T> {
    const holder = this.holders.get(name);
    if (holder !== undefined) throw this.busy(name, holder);
    this.holders.set(name, op);
    try {
      return await fn();
    } finally {
      if (this.holders.get(name) === op) this.holders.delete(name);
    }
  }

  withSync<T>(name: string, fn: () => T): T {
    const holder = this.holders.get(name);
    if (holder !== undefined) throw this.busy(name, holder);
    return fn();
  }

  /** Takes the domain for a job; the same job taking it again (a retried activity) is fine. */
  beginJob(name: string, id: string, type: JobType, phase: string): HostJob {
    const holder = this.holders.get(name);
    const existing = this.jobs.get(name);
    if (existing && existing.id === id) {
      existing.phase = phase;
      return existing;
    }
    if (holder !== undefined) throw this.busy(name, holder);
    const job: HostJob = { id, type, domain: name, phase, startedAtMs: Date.now(), progress: {}, abortRequested: false };
    this.holders.set(name, id);
    this.jobs.set(name, job);
    return job;
  }

  job(name: string): HostJob | undefined {
    return this.jobs.get(name);
  }

  /** Ends the job if it is still the one holding the domain; ending twice is fine. */
  endJob(name: string, id: string): void {
    if (this.jobs.get(name)?.id !== id) return;
    this.jobs.delete(name);
    this.holders.delete(name);
  }

  holder(name: string): string | undefined {
    return this.holders.get(name);
  }
}
