// virsh's migrate: DOMAIN on the source host (--host / VMFERRY_HOST) to DESTHOST,
// with libvirt's flag names mapped onto the migrate workflow's flags. What the
// workflow cannot do (e.g. tunnelled between hosts without tunnel certificates)
// it refuses with a typed error. --timeout SECONDS suspends the guest on the source
// when the live migration has not finished by then, so it converges (virsh's default
// timeout action).
import { ErrorType, vmError } from '../../common/errors.js';
import { invalidTimeout, type MigrateFlag, type MigrateInput, type MigrateResult } from '../../common/migration-types.js';
import { mib, positionals, readXmlFile, stringOpt, wholeNumber, type Opts } from '../args.js';
import { UsageError } from '../exit-codes.js';
import { policyArg } from '../policy-arg.js';
import { followDomainJob } from '../domain-job.js';
import { domainInfo, requireHost } from '../job-start.js';
import { type OptionSpec, type Verb, FLAG, VALUE } from '../verb.js';

/** virsh option -> workflow flag. */
const FLAG_OPTIONS: Record<string, MigrateFlag> = {
  live: 'live',
  p2p: 'peer2peer',
  tunnelled: 'tunnelled',
  tls: 'tls',
  persistent: 'persist-dest',
  undefinesource: 'undefine-source',
  suspend: 'paused',
  unsafe: 'unsafe',
  'change-protection': 'change-protection',
  'abort-on-error': 'abort-on-error',
  'auto-converge': 'auto-converge',
  postcopy: 'postcopy',
  'postcopy-after-precopy': 'postcopy-after-precopy',
  compressed: 'compressed',
  offline: 'offline',
  'copy-storage-all': 'copy-storage-all',
  'copy-storage-inc': 'copy-storage-inc',
  parallel: 'parallel',
};

const OPTIONS: OptionSpec = {
  ...Object.fromEntries(Object.keys(FLAG_OPTIONS).map((o) => [o, { type: 'boolean' as const }])),
  bandwidth: VALUE,
  'postcopy-bandwidth': VALUE,
  xml: VALUE,
  dname: VALUE,
  migrateuri: VALUE,
  timeout: VALUE,
  'migrate-disks': VALUE,
  'parallel-connections': VALUE,
  policy: VALUE,
  verbose: FLAG,
};

/** virsh's --migrate-disks vda,vdb: a comma-separated list of disk target names (the workflow checks each). */
export function migrateDisksOf(value: string | boolean | string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new UsageError('--migrate-disks needs a comma-separated list of disk targets, e.g. vda,vdb');
  const disks = value.split(',').map((d) => d.trim());
  if (disks.some((d) => d === '')) throw new UsageError(`--migrate-disks: empty disk name in ${JSON.stringify(value)}`);
  return disks;
}

export function flagsOf(opts: Opts): MigrateFlag[] {
  return Object.entries(FLAG_OPTIONS)
    .filter(([option]) => opts[option] === true)
    .map(([, flag]) => flag);
}

export const migrateVerb: Verb = {
  summary: 'migrate a domain from --host to DESTHOST',
  usage:
    'vmferry migrate DOMAIN DESTHOST [--live] [--p2p] [--tunnelled] [--tls] [--persistent] [--undefinesource] [--suspend] [--unsafe] [--offline] ' +
    '[--auto-converge] [--postcopy [--postcopy-after-precopy]] [--compressed] [--parallel [--parallel-connections N]] [--abort-on-error] [--change-protection] [--copy-storage-all | --copy-storage-inc] [--migrate-disks DISK,...] ' +
    '[--bandwidth MIBPS] [--postcopy-bandwidth MIBPS] [--xml FILE] [--dname NAME] [--migrateuri tcp:HOST[:PORT]] [--timeout SECONDS] [--policy NAME|FILE.json]',
  options: OPTIONS,
  async run(ctx, args, opts) {
    const [domain, destinationHost] = positionals(args, 2, this.usage) as [string, string];
    const timeout = wholeNumber(opts.timeout, '--timeout');
    if (timeout !== undefined) {
      const why = invalidTimeout(timeout);
      if (why) throw new UsageError(`--timeout: ${why}`);
      // As virsh: only a running guest's memory keeps changing, so only a live migration can need the push.
      if (opts.live !== true) throw new UsageError('--timeout needs --live');
    }
    const sourceHost = requireHost(ctx.host);
    const input: MigrateInput = {
      domain,
      sourceHost,
      destinationHost,
      flags: flagsOf(opts),
      bandwidthMiBps: wholeNumber(opts.bandwidth, '--bandwidth'),
      postcopyBandwidthMiBps: wholeNumber(opts['postcopy-bandwidth'], '--postcopy-bandwidth'),
      destinationXml: readXmlFile(stringOpt(opts.xml)),
      dname: stringOpt(opts.dname),
      uri: stringOpt(opts.migrateuri),
      timeoutSuspendSeconds: timeout,
      migrateDisks: migrateDisksOf(opts['migrate-disks']),
      parallelConnections: wholeNumber(opts['parallel-connections'], '--parallel-connections'),
      policy: policyArg(opts.policy, '--policy'),
    };
    return await followDomainJob<MigrateResult>(ctx, {
      resolve: () => domainInfo(ctx.client, sourceHost, domain),
      workflow: 'migrate',
      input: (dom) => ({ ...input, domainUuid: dom.uuid }),
      label: () => `migrate ${domain} ${sourceHost} -> ${destinationHost}`,
      report: (r) => {
        const s = r.stats;
        const downtime = s.downtimeMs !== undefined ? `, downtime ${s.downtimeMs} ms` : '';
        const parallel = r.parallelConnections !== undefined ? `, ${r.parallelConnections} parallel connections` : '';
        if (s.timeoutSuspendedAtMs !== undefined)
          ctx.out(`Domain '${domain}' was suspended on ${r.sourceHost} after the ${timeout ?? '?'} s timeout so the migration could converge`);
        ctx.out(
          `Domain '${domain}' migrated from ${r.sourceHost} to ${r.destinationHost} as '${r.domain}' (protocol v${r.protocol}, ${mib(s.transferredBytes ?? 0)} sent${downtime}${parallel}); it is ${r.destination.state} there`,
        );
      },
    });
  },
};
