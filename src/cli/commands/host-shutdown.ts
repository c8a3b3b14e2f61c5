// What libvirt-guests does when a hypervisor goes down, for a vmferry host: every
// active guest of the host is managed-saved (its next start restores it) or shut
// down through its power button, a few at a time, and a guest still active after
// the timeout is destroyed so the host's shutdown is never held up for good.
// Meant for the ExecStop of a oneshot unit ordered after the host worker
// (deploy/systemd/vmferry-guests.service), so the worker is still there to do it.
import type { DomainSummary } from '../../common/domain-types.js';
import type { SaveResult } from '../../common/save-types.js';
import { UsageError } from '../exit-codes.js';
import { requireHost, startJob } from '../job-start.js';
import { runOperation } from '../run-operation.js';
import { stringOpt } from '../args.js';
import { type Verb, type VerbContext, VALUE } from '../verb.js';

export type OnShutdown = 'managedsave' | 'shutdown';

export interface GuestOutcome {
  name: string;
  /** What became of the guest: saved or shut down in time, destroyed after the timeout, or failed. */
  outcome: 'managedsaved' | 'shutdown' | 'destroyed' | 'failed';
  error?: string;
}

function whole(v: unknown, flag: string, min: number, max: number, dflt: number): number {
  const s = stringOpt(v as string | undefined);
  if (s === undefined) return dflt;
  const n = /^\d{1,7}$/.test(s) ? Number(s) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}`);
  return n;
}

class TimedOut extends Error {}

async function within<T>(p: Promise<T>, seconds: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new TimedOut()), seconds * 1000)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

function isTimeout(err: unknown): boolean {
  if (err instanceof TimedOut) return true;
  const seen = new Set<unknown>();
  for (let e: unknown = err; e && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    if ((e as { type?: string }).type === 'OperationTimeout') return true;
  }
  return false;
}

async function stopOne(ctx: VerbContext, host: string, dom: DomainSummary, action: OnShutdown, timeoutSeconds: number): Promise<GuestOutcome> {
  try {
    if (action === 'managedsave') {
      const handle = await startJob(ctx.client, 'managedSave', dom.uuid, dom.name, { host, name: dom.name, domainUuid: dom.uuid });
      try {
        await within(handle.result() as Promise<SaveResult>, timeoutSeconds);
        return { name: dom.name, outcome: 'managedsaved' };
      } catch (err) {
        if (!isTimeout(err)) throw err;
        // The save job is cancelled first so it cleans its own files up; the destroy follows whatever it did.
        await handle.cancel().catch(() => undefined);
        await handle.result().catch(() => undefined);
      }
    } else {
      try {
        await runOperation(ctx.client, host, { op: 'shutdown', name: dom.name, timeoutSeconds }, timeoutSeconds);
        return { name: dom.name, outcome: 'shutdown' };
      } catch (err) {
        if (!isTimeout(err)) throw err;
      }
    }
    await runOperation(ctx.client, host, { op: 'destroy', name: dom.name });
    return { name: dom.name, outcome: 'destroyed' };
  } catch (err) {
    return { name: dom.name, outcome: 'failed', error: (err as Error).message };
  }
}

/** Every active guest of `host`, `parallel` at a time. */
export async function hostShutdown(ctx: VerbContext, host: string, action: OnShutdown, timeoutSeconds: number, parallel: number): Promise<GuestOutcome[]> {
  // From the worker itself, not the inventory it last published: a guest started a moment ago must not be missed.
  const listed = await runOperation(ctx.client, host, { op: 'list' });
  const active = ('domains' in listed ? listed.domains : []).filter((d) => d.state !== 'shutoff');
  const queue = [...active];
  const out: GuestOutcome[] = [];
  await Promise.all(
    Array.from({ length: Math.min(parallel, queue.length) }, async () => {
      for (let dom = queue.shift(); dom !== undefined; dom = queue.shift()) {
        const o = await stopOne(ctx, host, dom, action, timeoutSeconds);
        ctx.out(`Domain '${o.name}': ${o.outcome}${o.error ? ` (${o.error})` : ''}`);
        out.push(o);
      }
    }),
  );
  return out;
}

export const hostShutdownVerb: Verb = {
  summary: 'managed-save or shut down every active guest of a host (libvirt-guests), destroying what outlasts the timeout',
  usage: 'vmferry host-shutdown [--on-shutdown managedsave|shutdown] [--shutdown-timeout SECONDS] [--parallel N]',
  options: { 'on-shutdown': VALUE, 'shutdown-timeout': VALUE, parallel: VALUE },
  async run(ctx, args, opts) {
    if (args.length > 0) throw new UsageError(`usage: ${this.usage} (the host is --host or VMFERRY_HOST)`);
    const action = stringOpt(opts['on-shutdown'] as string | undefined) ?? 'managedsave';
    if (action !== 'managedsave' && action !== 'shutdown') throw new UsageError('--on-shutdown must be managedsave or shutdown');
    const timeoutSeconds = whole(opts['shutdown-timeout'], '--shutdown-timeout', 1, 86_400, 300);
    const parallel = whole(opts.parallel, '--parallel', 1, 64, 1);
    const outcomes = await hostShutdown(ctx, requireHost(ctx.host), action, timeoutSeconds, parallel);
    const failed = outcomes.filter((o) => o.outcome === 'failed');
    if (failed.length > 0) throw new Error(`host-shutdown: ${failed.map((f) => `'${f.name}': ${f.error}`).join('; ')}`);
    return outcomes;
  },
};
