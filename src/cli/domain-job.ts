// The shape of every job verb (save, restore, managedsave, dump, migrate): find
// the domain the job is for, start the job under the domain's workflow ID unless
// Ctrl-C came first, follow it in the foreground, print one line about the result.
import type { VerbContext } from './verb.js';
import { inForeground } from './foreground.js';
import { startJob } from './job-start.js';

export interface DomainJob<R> {
  /** The domain the job is for: its UUID names the job's workflow. */
  resolve: () => Promise<{ uuid: string; name: string }>;
  workflow: string;
  input: (dom: { uuid: string; name: string }) => unknown;
  /** What the progress line calls the job. */
  label: (dom: { uuid: string; name: string }) => string;
  report: (result: R) => void;
}

export async function followDomainJob<R>(ctx: VerbContext, spec: DomainJob<R>): Promise<R> {
  return await inForeground(ctx, async (job) => {
    const dom = await spec.resolve();
    job.notInterrupted();
    const handle = await startJob(ctx.client, spec.workflow, dom.uuid, dom.name, spec.input(dom));
    const result = await job.follow<R>(handle, spec.label(dom));
    spec.report(result);
    return result;
  });
}
