// virsh's start: a persistent domain with a managed save image comes back from
// it (the image is consumed); without one it boots. Both go through the
// managedStart job, which looks for the image on the host, so the decision and
// the start are one step that no other job on the domain can interleave with.
import type { DomainInfo } from '../../common/domain-types.js';
import type { RestoreResult } from '../../common/save-types.js';
import { positionals } from '../args.js';
import { inForeground } from '../foreground.js';
import { domainInfo, requireHost, startJob } from '../job-start.js';
import { runOperation } from '../run-operation.js';
import { type Verb, FLAG } from '../verb.js';

export const startVerb: Verb = {
  summary: 'start a domain (from its managed save image when it has one)',
  usage: 'vmferry start DOMAIN [--paused] [--force-boot] [--bypass-cache]',
  options: { paused: FLAG, 'force-boot': FLAG, 'bypass-cache': FLAG },
  async run(ctx, args, opts) {
    const [name] = positionals(args, 1, this.usage) as [string];
    const host = requireHost(ctx.host);
    const paused = opts.paused === true;
    return await inForeground(ctx, async (job) => {
      const dom = await domainInfo(ctx.client, host, name);
      if (!dom.persistent) {
        // Only a persistent domain has a managed save; the host answers for a transient one.
        const r = await runOperation(ctx.client, host, { op: 'start', name, paused });
        ctx.out(`Domain '${name}' started`);
        return (r as { domain: DomainInfo }).domain;
      }
      job.notInterrupted();
      const input = { host, name, domainUuid: dom.uuid, paused, forceBoot: opts['force-boot'] === true, bypassCache: opts['bypass-cache'] === true };
      const handle = await startJob(ctx.client, 'managedStart', dom.uuid, name, input);
      const r = await job.follow<RestoreResult>(handle, `start ${name}`);
      const restored = r.bootedFresh !== true;
      ctx.out(restored ? `Domain '${name}' started (restored from its managed save image)` : `Domain '${name}' started`);
      return { ...r.domain, restoredFromManagedSave: restored };
    });
  },
};
