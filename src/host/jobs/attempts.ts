// At most one attempt of a long save or restore activity per domain in this
// worker. Temporal may start a retry while an earlier attempt still runs here
// (its heartbeats lapsed, say, during a long stall): the new attempt first stops
// the old one and waits until it has cleaned up, so two pipelines never touch
// one domain and one image.
import { ErrorType, vmError } from '../../common/errors.js';

interface Attempt {
  jobId: string;
  ac: AbortController;
  done: Promise<unknown>;
}

export class JobAttempts {
  private readonly current = new Map<string, Attempt>();

  /** Runs `fn` with a signal that fires on `outer` (the activity's cancellation) or when superseded. */
  async run<T>(name: string, jobId: string, outer: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const prev = this.current.get(name);
    if (prev && prev.jobId !== jobId) throw vmError(ErrorType.DomainBusy, `domain '${name}' is busy with job ${prev.jobId}`, { domain: name, job: prev.jobId });
    prev?.ac.abort();
    const ac = new AbortController();
    const onOuter = (): void => ac.abort();
    if (outer?.aborted) ac.abort();
    else outer?.addEventListener('abort', onOuter, { once: true });
    const done = (async () => {
      if (prev) await prev.done.catch(() => undefined);
      return await fn(ac.signal);
    })();
    const entry: Attempt = { jobId, ac, done };
    this.current.set(name, entry);
    try {
      return await done;
    } finally {
      outer?.removeEventListener('abort', onOuter);
      if (this.current.get(name) === entry) this.current.delete(name);
    }
  }

  /** Stops the attempt of `jobId` running for `name`, if any, and waits until it has cleaned up. */
  async stop(name: string, jobId: string): Promise<void> {
    const prev = this.current.get(name);
    if (!prev || prev.jobId !== jobId) return;
    prev.ac.abort();
    await prev.done.catch(() => undefined);
  }
}
