// virsh's domain lifecycle verbs.
import { readFileSync } from 'node:fs';
import { MAX_SHUTDOWN_TIMEOUT_S, type DomainInfo, type DomainOperationResult, type DomainSummary } from '../../common/domain-types.js';
import { UsageError } from '../exit-codes.js';
import { runOperation } from '../run-operation.js';
import { inventoryDomain, readInventory } from '../inventory.js';
import { type Verb, type VerbContext, FLAG, VALUE } from '../verb.js';

function oneDomain(args: string[], verb: string): string {
  if (args.length !== 1 || !args[0]) throw new UsageError(`usage: vmferry ${verb} DOMAIN`);
  return args[0];
}

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error('unexpected result');
  return r.domain as DomainInfo;
}

function printInfo(ctx: VerbContext, d: DomainInfo): void {
  const rows: [string, string | number | undefined][] = [
    ['Name', d.name],
    ['UUID', d.uuid],
    ['Host', d.host],
    ['State', d.state],
    ['Reason', d.reason],
    ['PID', d.pid],
    ['CPU(s)', d.vcpus],
    ['Max memory', `${d.memoryKiB} KiB`],
    ['Used memory', `${d.currentMemoryKiB} KiB`],
    ['Persistent', d.persistent ? 'yes' : 'no'],
  ];
  for (const [k, v] of rows) if (v !== undefined) ctx.out(`${`${k}:`.padEnd(16)}${v}`);
}

// start is in start.ts: it goes through the managed-save job.
const simple = (op: 'destroy' | 'suspend' | 'resume' | 'undefine' | 'reboot' | 'reset', message: (n: string) => string): Verb => ({
  summary: `${op} a domain`,
  usage: `vmferry ${op} DOMAIN`,
  async run(ctx, args) {
    const name = oneDomain(args, op);
    const r = await runOperation(ctx.client, ctx.host, { op, name });
    ctx.out(message(name));
    return domainOf(r);
  },
});

// virsh shutdown returns once the button is pressed; --timeout waits for the guest
// to stop and fails (OperationTimeout, guest left running) if it does not.
const shutdownVerb: Verb = {
  summary: 'gracefully shut down a domain (ACPI power button)',
  usage: 'vmferry shutdown DOMAIN [--timeout SECONDS]',
  options: { timeout: VALUE },
  async run(ctx, args, opts) {
    const name = oneDomain(args, 'shutdown');
    let timeoutSeconds: number | undefined;
    if (opts.timeout !== undefined) {
      const t = String(opts.timeout);
      timeoutSeconds = /^\d{1,7}$/.test(t) ? Number(t) : NaN;
      if (!(timeoutSeconds <= MAX_SHUTDOWN_TIMEOUT_S)) throw new UsageError(`--timeout must be a whole number of seconds from 0 to ${MAX_SHUTDOWN_TIMEOUT_S}`);
    }
    const r = await runOperation(
      ctx.client,
      ctx.host,
      { op: 'shutdown', name, ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }) },
      timeoutSeconds ?? 0,
    );
    const d = domainOf(r);
    ctx.out(timeoutSeconds === undefined ? `Domain '${name}' is being shutdown` : `Domain '${name}' has been shut down`);
    return d;
  },
};

export const domainVerbs: Record<string, Verb> = {
  list: {
    summary: 'list domains on a host',
    usage: 'vmferry list [--all]',
    options: { all: FLAG },
    async run(ctx, _args, opts) {
      const domains = (await readInventory(ctx.client, ctx.host)).domains
        .filter((d) => opts.all === true || d.state !== 'shutoff')
        .map((d): DomainSummary => ({ name: d.name, uuid: d.uuid, state: d.state, persistent: d.persistent }));
      ctx.out(` ${'Name'.padEnd(24)} ${'State'.padEnd(10)} UUID`);
      ctx.out(`${'-'.repeat(72)}`);
      for (const d of domains) ctx.out(` ${d.name.padEnd(24)} ${d.state.padEnd(10)} ${d.uuid}`);
      return domains;
    },
  },
  dominfo: {
    summary: 'domain information',
    usage: 'vmferry dominfo DOMAIN',
    async run(ctx, args) {
      const d = await inventoryDomain(ctx.client, ctx.host, oneDomain(args, 'dominfo'));
      printInfo(ctx, d);
      return d;
    },
  },
  define: {
    summary: 'define a domain from an XML file',
    usage: 'vmferry define FILE',
    async run(ctx, args) {
      if (args.length !== 1 || !args[0]) throw new UsageError('usage: vmferry define FILE');
      let xml: string;
      try {
        xml = readFileSync(args[0], 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read ${args[0]}: ${(err as Error).message}`);
      }
      const r = await runOperation(ctx.client, ctx.host, { op: 'define', xml });
      const d = 'domain' in r ? r.domain : undefined;
      ctx.out(`Domain '${d?.name}' defined from ${args[0]}`);
      return d;
    },
  },
  undefine: simple('undefine', (n) => `Domain '${n}' has been undefined`),
  destroy: simple('destroy', (n) => `Domain '${n}' destroyed`),
  shutdown: shutdownVerb,
  reboot: simple('reboot', (n) => `Domain '${n}' is being rebooted`),
  reset: simple('reset', (n) => `Domain '${n}' was reset`),
  suspend: simple('suspend', (n) => `Domain '${n}' suspended`),
  resume: simple('resume', (n) => `Domain '${n}' resumed`),
  'change-media': {
    summary: "change or eject a cdrom's medium",
    usage: 'vmferry change-media DOMAIN PATH (--source FILE | --eject)',
    options: { source: VALUE, eject: FLAG },
    async run(ctx, args, opts) {
      const usage = 'usage: vmferry change-media DOMAIN PATH (--source FILE | --eject)';
      if (args.length !== 2 || !args[0] || !args[1]) throw new UsageError(usage);
      const source = typeof opts.source === 'string' ? opts.source : undefined;
      if ((opts.eject === true) === (source !== undefined)) throw new UsageError(usage);
      const [name, path] = args;
      const r = await runOperation(ctx.client, ctx.host, { op: 'change-media', name, path, ...(source !== undefined ? { source } : { eject: true }) });
      ctx.out(source !== undefined ? 'Successfully inserted media.' : 'Successfully ejected media.');
      return domainOf(r);
    },
  },
  'domif-setlink': {
    summary: "set a domain's NIC link up or down",
    usage: 'vmferry domif-setlink DOMAIN INTERFACE up|down',
    async run(ctx, args) {
      const [name, iface, state] = args;
      if (args.length !== 3 || !name || !iface || (state !== 'up' && state !== 'down')) {
        throw new UsageError('usage: vmferry domif-setlink DOMAIN INTERFACE up|down');
      }
      const r = await runOperation(ctx.client, ctx.host, { op: 'domif-setlink', name, interface: iface, state });
      ctx.out('Device updated successfully');
      return domainOf(r);
    },
  },
  domblkstat: {
    summary: "a domain's disk I/O counters (answers during a job)",
    usage: 'vmferry domblkstat DOMAIN',
    async run(ctx, args) {
      const r = await runOperation(ctx.client, ctx.host, { op: 'blockstats', name: oneDomain(args, 'domblkstat') });
      const stats = 'stats' in r ? r.stats : [];
      for (const b of stats)
        ctx.out(`${b.device} rd_req ${b.rdOps} rd_bytes ${b.rdBytes} wr_req ${b.wrOps} wr_bytes ${b.wrBytes} flush_operations ${b.flushOps}`);
      return stats;
    },
  },
  dumpxml: {
    summary: 'domain XML',
    usage: 'vmferry dumpxml DOMAIN [--inactive] [--migratable] [--security-info]',
    options: { inactive: FLAG, migratable: FLAG, 'security-info': FLAG },
    async run(ctx, args, opts) {
      const name = oneDomain(args, 'dumpxml');
      const r = await runOperation(ctx.client, ctx.host, {
        op: 'dumpxml',
        name,
        inactive: opts.inactive === true,
        migratable: opts.migratable === true,
        securityInfo: opts['security-info'] === true,
      });
      const xml = 'xml' in r ? r.xml : '';
      if (!ctx.json) ctx.out(xml.trimEnd());
      return { xml };
    },
  },
};
