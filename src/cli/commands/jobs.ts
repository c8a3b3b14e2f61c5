// Job verbs: list jobs, and virsh's domjob* and migrate-* control of a running job.
import { cancelSignal, invalidDowntime, invalidSpeed, setMaxDowntimeUpdate, setSpeedUpdate } from '../../common/job-messages.js';
import { invalidRecoverRequest, recoverPostcopyUpdate, startPostcopyUpdate } from '../../common/postcopy.js';
import type { JobInfo } from '../../common/job-types.js';
import { ErrorType, isVmError, vmError } from '../../common/errors.js';
import { UsageError } from '../exit-codes.js';
import { policyArg } from '../policy-arg.js';
import { setPolicyUpdate } from '../../common/convergence-messages.js';
import { inventoryDomain } from '../inventory.js';
import { JOB_ID_PREFIX, jobInfoWithProgress, lastCompletedJob, quote, runningJob, type FoundJob, type JobScope } from '../job-lookup.js';
import { type Verb, type VerbContext, FLAG, VALUE } from '../verb.js';

function oneDomain(args: string[], usage: string): string {
  if (args.length < 1 || !args[0]) throw new UsageError(`usage: ${usage}`);
  return args[0];
}

function numberArg(v: string | undefined, usage: string): number {
  if (v === undefined || v.trim() === '' || !/^-?\d+(\.\d+)?$/.test(v.trim())) throw new UsageError(`usage: ${usage}`);
  return Number(v);
}

const MIB = 1024 * 1024;

export function printJobInfo(ctx: VerbContext, j: JobInfo): void {
  const rows: [string, string | number | undefined][] = [
    ['Job type', j.jobType],
    ['Status', j.status],
    ['Phase', j.phase],
    ['Time elapsed', `${j.elapsedMs} ms`],
    ['Data processed', j.dataProcessedBytes !== undefined ? `${(j.dataProcessedBytes / MIB).toFixed(3)} MiB` : undefined],
    ['Data remaining', j.dataRemainingBytes !== undefined ? `${(j.dataRemainingBytes / MIB).toFixed(3)} MiB` : undefined],
    ['Data total', j.dataTotalBytes !== undefined ? `${(j.dataTotalBytes / MIB).toFixed(3)} MiB` : undefined],
    ['Memory processed', j.memProcessedBytes !== undefined ? `${(j.memProcessedBytes / MIB).toFixed(3)} MiB` : undefined],
    ['Memory remaining', j.memRemainingBytes !== undefined ? `${(j.memRemainingBytes / MIB).toFixed(3)} MiB` : undefined],
    ['Memory total', j.memTotalBytes !== undefined ? `${(j.memTotalBytes / MIB).toFixed(3)} MiB` : undefined],
    ['File processed', j.diskProcessedBytes !== undefined ? `${(j.diskProcessedBytes / MIB).toFixed(3)} MiB` : undefined],
    ['File remaining', j.diskRemainingBytes !== undefined ? `${(j.diskRemainingBytes / MIB).toFixed(3)} MiB` : undefined],
    ['File total', j.diskTotalBytes !== undefined ? `${(j.diskTotalBytes / MIB).toFixed(3)} MiB` : undefined],
    ['Dirty rate', j.dirtyRatePagesPerSec !== undefined ? `${j.dirtyRatePagesPerSec} pages/s` : undefined],
    ['Bandwidth', j.bandwidthMiBps !== undefined ? `${j.bandwidthMiBps.toFixed(1)} MiB/s` : undefined],
    ['Speed limit', j.speedLimitMiBps !== undefined ? (j.speedLimitMiBps === 0 ? 'unlimited' : `${j.speedLimitMiBps} MiB/s`) : undefined],
    ['Max downtime', j.maxDowntimeMs !== undefined ? `${j.maxDowntimeMs} ms` : undefined],
    ['Expected downtime', j.expectedDowntimeMs !== undefined ? `${j.expectedDowntimeMs} ms` : undefined],
    ['Total downtime', j.downtimeMs !== undefined ? `${j.downtimeMs} ms` : undefined],
    ['Postcopy', j.postcopyState],
    ['Postcopy recoveries', j.postcopyRecoveries],
    ['Percent', j.percent !== undefined ? `${j.percent.toFixed(1)} %` : undefined],
    ['Iterations', j.iterations],
    ['Throttle', j.throttlePercent !== undefined ? `${j.throttlePercent} %` : undefined],
    ['Policy', j.policy],
    ['Policy step', j.policyStep],
    [
      'Job progress',
      j.jobPercent !== undefined ? `${j.jobPercent.toFixed(1)} %${j.etaSeconds !== undefined ? `, about ${j.etaSeconds} s left` : ''}` : undefined,
    ],
    ['Error', j.error ? `${j.error.type} in ${j.error.phase}: ${j.error.message}` : undefined],
  ];
  for (const [k, v] of rows) if (v !== undefined) ctx.out(`${`${k}:`.padEnd(20)}${v}`);
}

/**
 * Which jobs a verb on `domain` may touch: on a named host, that host's domain of the
 * name (by UUID) or, when it is not defined there (an incoming migration), jobs that
 * touch the host; without a host, every domain of the name.
 */
async function scopeOf(ctx: VerbContext, domain: string): Promise<JobScope> {
  if (!ctx.host) return { domain };
  try {
    return { domain, host: ctx.host, uuid: (await inventoryDomain(ctx.client, ctx.host, domain)).uuid };
  } catch (err) {
    if (isVmError(err, ErrorType.DomainNotFound)) return { domain, host: ctx.host };
    throw err;
  }
}

async function jobOf(ctx: VerbContext, domain: string): Promise<FoundJob> {
  return await runningJob(ctx.client, await scopeOf(ctx, domain));
}

/** Speed and downtime reach QEMU only for the job types that apply them; others would silently ignore the signal. */
const SPEED_JOBS = new Set(['migrateOut', 'coreDump']);
const DOWNTIME_JOBS = new Set(['migrateOut']);

function requireControl(job: FoundJob, domain: string, allowed: Set<string>, what: string): void {
  if (job.jobType !== undefined && !allowed.has(job.jobType)) {
    throw vmError(ErrorType.OperationInvalid, `the ${job.jobType} job on domain '${domain}' has no ${what} control (only ${[...allowed].join(', ')} jobs do)`);
  }
}

/**
 * migrate-setspeed and migrate-setmaxdowntime: an update, not a signal, so the
 * job's validator answers and a refusal reaches the operator.
 */
function setLimitVerb(
  summary: string,
  usage: string,
  spec: { validate: (n: number) => string | undefined; jobs: Set<string>; what: string; update: typeof setSpeedUpdate },
  resultKey: string,
): Verb {
  return {
    summary,
    usage,
    async run(ctx, args) {
      const value = numberArg(args[1], usage);
      const why = spec.validate(value);
      if (why) throw new UsageError(why);
      const domain = oneDomain(args, usage);
      const job = await jobOf(ctx, domain);
      requireControl(job, domain, spec.jobs, spec.what);
      await job.handle.executeUpdate(spec.update, { args: [value] });
      return { workflowId: job.handle.workflowId, [resultKey]: value };
    },
  };
}

export const jobVerbs: Record<string, Verb> = {
  jobs: {
    summary: 'recent and running jobs',
    usage: 'vmferry jobs [--domain NAME] [--host NAME] [--running] [--limit N]',
    options: { domain: VALUE, running: FLAG, limit: VALUE },
    async run(ctx, _args, opts) {
      const clauses = [`WorkflowId STARTS_WITH "${JOB_ID_PREFIX}"`];
      if (typeof opts.domain === 'string') clauses.push(`DomainName="${opts.domain.replace(/"/g, '')}"`);
      // Only an explicit --host filters (not VMFERRY_HOST): listing jobs is not an action on a host.
      const host = typeof opts.host === 'string' ? opts.host : undefined;
      if (host) clauses.push(`(SourceHost="${host.replace(/"/g, '')}" OR DestinationHost="${host.replace(/"/g, '')}")`);
      if (opts.running) clauses.push('ExecutionStatus="Running"');
      const limit = typeof opts.limit === 'string' ? numberArg(opts.limit, 'vmferry jobs --limit N') : 20;
      const rows: Record<string, unknown>[] = [];
      for await (const wf of ctx.client.workflow.list({ query: clauses.join(' AND ') })) {
        const sa = wf.searchAttributes as Record<string, unknown[] | undefined>;
        rows.push({
          workflowId: wf.workflowId,
          domain: sa.DomainName?.[0],
          jobType: sa.JobType?.[0],
          phase: sa.JobPhase?.[0],
          source: sa.SourceHost?.[0],
          destination: sa.DestinationHost?.[0],
          status: wf.status.name,
          started: wf.startTime.toISOString(),
        });
        if (rows.length >= limit) break;
      }
      ctx.out(` ${'Domain'.padEnd(16)} ${'Job'.padEnd(12)} ${'Phase'.padEnd(12)} ${'Status'.padEnd(11)} ${'Hosts'.padEnd(20)} Started`);
      for (const r of rows) {
        const hosts = [r.source, r.destination].filter(Boolean).join(' -> ');
        ctx.out(
          ` ${String(r.domain ?? '').padEnd(16)} ${String(r.jobType ?? '').padEnd(12)} ${String(r.phase ?? '').padEnd(12)} ${String(r.status).padEnd(11)} ${hosts.padEnd(20)} ${String(r.started)}`,
        );
      }
      return rows;
    },
  },
  domjobinfo: {
    summary: "the domain's running job (or with --completed, its last finished one): phase and progress",
    usage: 'vmferry domjobinfo DOMAIN [--completed]',
    options: { completed: FLAG },
    async run(ctx, args, opts) {
      const domain = oneDomain(args, this.usage);
      const job =
        opts.completed === true
          ? await lastCompletedJob(ctx.client, await scopeOf(ctx, domain))
          : await jobOf(ctx, domain).catch((err: unknown) => {
              // virsh answers "Job type: None" for an idle domain rather than failing.
              if (isVmError(err, ErrorType.OperationInvalid)) return undefined;
              throw err;
            });
      if (!job) {
        ctx.out(`${'Job type:'.padEnd(20)}None`);
        return { jobType: 'none' };
      }
      const info = await jobInfoWithProgress(ctx.client, job.handle);
      printJobInfo(ctx, info);
      return { ...info, workflowId: job.handle.workflowId };
    },
  },
  domjobabort: {
    summary: "abort the domain's running job",
    usage: 'vmferry domjobabort DOMAIN',
    async run(ctx, args) {
      const domain = oneDomain(args, this.usage);
      const job = await jobOf(ctx, domain);
      // After the post-copy switch the workflow drops a cancel (it could only lose the guest); say so rather than pretend.
      const info = job.jobType === 'migrateOut' ? await jobInfoWithProgress(ctx.client, job.handle).catch(() => undefined) : undefined;
      if (info?.postcopyState !== undefined) {
        throw vmError(ErrorType.OperationInvalid, `the migration of '${domain}' is in post-copy (${info.postcopyState}) and cannot be aborted`);
      }
      await job.handle.signal(cancelSignal);
      ctx.out(`abort requested for ${job.jobType ? `the ${job.jobType} job` : 'job'} ${job.handle.workflowId}`);
      return { workflowId: job.handle.workflowId, signal: 'cancel' };
    },
  },
  'migrate-setspeed': setLimitVerb(
    "set the running migration's (or dump's) bandwidth (MiB/s, 0 = unlimited)",
    'vmferry migrate-setspeed DOMAIN MIBPS',
    { validate: invalidSpeed, jobs: SPEED_JOBS, what: 'speed', update: setSpeedUpdate },
    'speedMiBps',
  ),
  'migrate-setpolicy': {
    summary: "replace the running migration's convergence policy (a built-in name or a JSON file)",
    usage: 'vmferry migrate-setpolicy DOMAIN NAME|FILE.json',
    async run(ctx, args) {
      const domain = oneDomain(args, this.usage);
      const policy = policyArg(args[1], 'migrate-setpolicy');
      if (policy === undefined) throw new UsageError(`usage: ${this.usage}`);
      const job = await jobOf(ctx, domain);
      requireControl(job, domain, DOWNTIME_JOBS, 'convergence policy');
      const change = await job.handle.executeUpdate(setPolicyUpdate, { args: [policy] });
      ctx.out(`policy '${change.policy}' in force for ${domain}: ${change.step}`);
      return { workflowId: job.handle.workflowId, ...change };
    },
  },
  'migrate-postcopy': {
    summary: 'switch the running migration (started with --postcopy) to post-copy now',
    usage: 'vmferry migrate-postcopy DOMAIN',
    async run(ctx, args) {
      const domain = oneDomain(args, this.usage);
      const job = await jobOf(ctx, domain);
      requireControl(job, domain, DOWNTIME_JOBS, 'post-copy');
      const r = await job.handle.executeUpdate(startPostcopyUpdate, { args: [] });
      ctx.out(`post-copy ${r.postcopy} for ${job.handle.workflowId}`);
      return { workflowId: job.handle.workflowId, ...r };
    },
  },
  'migrate-recover': {
    summary: 'recover a paused post-copy migration now (optionally through another destination address)',
    usage: 'vmferry migrate-recover DOMAIN [--migrateuri tcp:HOST:PORT]',
    options: { migrateuri: VALUE },
    async run(ctx, args, opts) {
      const domain = oneDomain(args, this.usage);
      const req = typeof opts.migrateuri === 'string' ? { uri: opts.migrateuri } : {};
      const why = invalidRecoverRequest(req);
      if (why) throw new UsageError(why);
      const job = await jobOf(ctx, domain);
      requireControl(job, domain, DOWNTIME_JOBS, 'post-copy');
      const r = await job.handle.executeUpdate(recoverPostcopyUpdate, { args: [req] });
      ctx.out(`post-copy recovery attempt ${r.attempt} started for ${job.handle.workflowId} (post-copy ${r.postcopy})`);
      return { workflowId: job.handle.workflowId, ...r };
    },
  },
  'migrate-getspeed': {
    summary: "the running job's bandwidth limit (MiB/s, 0 = unlimited)",
    usage: 'vmferry migrate-getspeed DOMAIN',
    async run(ctx, args) {
      const job = await jobOf(ctx, oneDomain(args, this.usage));
      const info = await jobInfoWithProgress(ctx.client, job.handle);
      ctx.out(String(info.speedLimitMiBps ?? 0));
      return { speedMiBps: info.speedLimitMiBps ?? 0 };
    },
  },
  'migrate-setmaxdowntime': setLimitVerb(
    "set the running migration's max downtime (ms)",
    'vmferry migrate-setmaxdowntime DOMAIN MS',
    { validate: invalidDowntime, jobs: DOWNTIME_JOBS, what: 'downtime', update: setMaxDowntimeUpdate },
    'maxDowntimeMs',
  ),
  'migrate-getmaxdowntime': {
    summary: "the running migration's max downtime (ms)",
    usage: 'vmferry migrate-getmaxdowntime DOMAIN',
    async run(ctx, args) {
      const domain = oneDomain(args, this.usage);
      const job = await jobOf(ctx, domain);
      requireControl(job, domain, DOWNTIME_JOBS, 'downtime');
      const info = await jobInfoWithProgress(ctx.client, job.handle);
      // QEMU's default when nobody set one.
      const ms = info.maxDowntimeMs ?? 300;
      ctx.out(String(ms));
      return { maxDowntimeMs: ms };
    },
  },
};
