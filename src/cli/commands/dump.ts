// virsh's dump --memory-only: the guest's memory to an ELF or kdump file on its
// host, as a job (cancellable, with progress). libvirt's default dump (the whole
// migration stream into a file) is not implemented; asking for it is refused.
import { CORE_DUMP_FORMATS, type CoreDumpFormat, type CoreDumpResult } from '../../common/dump-types.js';
import { ErrorType, vmError } from '../../common/errors.js';
import { mib, positionals, stringOpt, wholeNumber } from '../args.js';
import { UsageError } from '../exit-codes.js';
import { followDomainJob } from '../domain-job.js';
import { domainInfo, requireHost } from '../job-start.js';
import { type Verb, FLAG, VALUE } from '../verb.js';

export const dumpVerb: Verb = {
  summary: "dump a domain's memory to a file on its host (--memory-only)",
  usage: `vmferry dump DOMAIN FILE --memory-only [--format ${CORE_DUMP_FORMATS.join('|')}] [--live] [--bandwidth MIBPS]`,
  options: { 'memory-only': FLAG, format: VALUE, live: FLAG, bandwidth: VALUE, verbose: FLAG },
  async run(ctx, args, opts) {
    const [name, path] = positionals(args, 2, this.usage) as [string, string];
    if (opts['memory-only'] !== true) {
      throw vmError(
        ErrorType.ConfigUnsupported,
        'only memory-only dumps are supported: give --memory-only (a full dump of the migration stream is not implemented)',
      );
    }
    const f = stringOpt(opts.format);
    if (f !== undefined && !(CORE_DUMP_FORMATS as readonly string[]).includes(f))
      throw new UsageError(`unknown dump format ${JSON.stringify(f)} (one of ${CORE_DUMP_FORMATS.join(', ')})`);
    const bandwidthMiBps = wholeNumber(opts.bandwidth, '--bandwidth');
    const host = requireHost(ctx.host);
    return await followDomainJob<CoreDumpResult>(ctx, {
      resolve: () => domainInfo(ctx.client, host, name),
      workflow: 'coreDump',
      input: (dom) => ({ host, name, uuid: dom.uuid, path, format: f as CoreDumpFormat | undefined, live: opts.live === true, bandwidthMiBps }),
      label: () => `dump ${name}`,
      report: (r) => ctx.out(`Domain '${name}' dumped to ${r.path} (${r.format}, ${mib(r.sizeBytes)}); it is ${r.domainState}`),
    });
  },
};
