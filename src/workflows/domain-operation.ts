// One lifecycle operation on one named host, as a workflow: so the demo, the tests
// and the CLI act on hosts through Temporal and every change is in history.
import { proxyActivities, upsertSearchAttributes, type ActivityOptions } from '@temporalio/workflow';
import type { DomainActivities } from '../activities/domain-activities.js';
import { HOST_NAME_PATTERN, hostTaskQueue } from '../common/constants.js';
import { MAX_SHUTDOWN_TIMEOUT_S, type DomainInfo, type DomainOperationInput, type DomainOperationResult } from '../common/domain-types.js';
import { invalidDomainName } from '../common/domain-name.js';
import { ErrorType, vmError } from '../common/errors.js';
import { DomainName, JobType, SourceHost } from '../common/search-attributes.js';
import { unwrapActivityError } from './activity-errors.js';
import { recordJobEnd } from './job-metrics.js';

const NON_RETRYABLE = Object.values(ErrorType).filter((t) => t !== ErrorType.QmpTimeout);
const NAMED_OPS: ReadonlySet<string> = new Set([
  'undefine',
  'start',
  'destroy',
  'shutdown',
  'reboot',
  'reset',
  'suspend',
  'resume',
  'info',
  'blockstats',
  'dumpxml',
  'change-media',
  'domif-setlink',
]);

const KNOWN_OPS: ReadonlySet<string> = new Set([...NAMED_OPS, 'define', 'list']);

function hostActivities(host: string): { acts: DomainActivities; options: ActivityOptions } {
  const options: ActivityOptions = {
    taskQueue: hostTaskQueue(host),
    startToCloseTimeout: '2 minutes',
    // One step: if no worker took it, nothing changed, so an unknown or dead host is
    // reported after a supervisor's restart time rather than a minute.
    scheduleToStartTimeout: '15 seconds',
    retry: { maximumAttempts: 3, initialInterval: '1 second', nonRetryableErrorTypes: NON_RETRYABLE },
  };
  return { acts: proxyActivities<DomainActivities>(options), options };
}

export async function domainOperation(input: DomainOperationInput): Promise<DomainOperationResult> {
  const started = Date.now();
  const jobType = `domain-${String(input?.operation?.op)}`;
  try {
    const result = await runDomainOperation(input);
    recordJobEnd(jobType, 'completed', Date.now() - started);
    return result;
  } catch (err) {
    recordJobEnd(jobType, 'failed', Date.now() - started);
    throw err;
  }
}

async function runDomainOperation(input: DomainOperationInput): Promise<DomainOperationResult> {
  const { host, operation } = input ?? ({} as DomainOperationInput);
  if (typeof host !== 'string' || !HOST_NAME_PATTERN.test(host)) {
    throw vmError(ErrorType.OperationInvalid, `bad host name ${JSON.stringify(host)}`);
  }
  if (!operation || typeof operation.op !== 'string') throw vmError(ErrorType.OperationInvalid, 'missing operation');
  // Checked before the search attributes: an oversized op would fail every workflow task, not the workflow.
  if (!KNOWN_OPS.has(operation.op)) throw vmError(ErrorType.OperationInvalid, `unknown operation ${JSON.stringify(operation.op.slice(0, 100))}`);
  const name = 'name' in operation ? operation.name : undefined;
  const badName = NAMED_OPS.has(operation.op) || 'name' in operation ? invalidDomainName(name) : undefined;
  if (badName) throw vmError(ErrorType.OperationInvalid, badName);
  upsertSearchAttributes([
    { key: JobType, value: `domain-${operation.op}` },
    { key: SourceHost, value: host },
    ...(name ? [{ key: DomainName, value: name }] : []),
  ]);
  const { acts, options } = hostActivities(host);
  const run: Run = (act, args) => (acts[act] as any).executeWithOptions({ ...options, summary: `${operation.op}${name ? ` '${name}'` : ''} on ${host}` }, args);
  try {
    switch (operation.op) {
      case 'define': {
        if (typeof operation.xml !== 'string') throw vmError(ErrorType.OperationInvalid, 'define needs xml');
        const domain = await run('defineDomain', [operation.xml]);
        upsertSearchAttributes([{ key: DomainName, value: domain.name }]);
        return { op: 'define', domain };
      }
      case 'undefine':
        return { op: 'undefine', domain: await run('undefineDomain', [operation.name]) };
      case 'start':
        return { op: 'start', domain: await run('startDomain', [operation.name, { paused: operation.paused === true }]) };
      case 'destroy':
        return { op: 'destroy', domain: await run('destroyDomain', [operation.name]) };
      case 'shutdown':
        return { op: 'shutdown', domain: await shutdown(run, acts, options, operation.name, operation.timeoutSeconds) };
      case 'reboot':
        return { op: 'reboot', domain: await run('rebootDomain', [operation.name]) };
      case 'reset':
        return { op: 'reset', domain: await run('resetDomain', [operation.name]) };
      case 'suspend':
        return { op: 'suspend', domain: await run('suspendDomain', [operation.name]) };
      case 'resume':
        return { op: 'resume', domain: await run('resumeDomain', [operation.name]) };
      case 'info':
        return { op: 'info', domain: await run('domainInfo', [operation.name]) };
      case 'domif-setlink':
        return { op: 'domif-setlink', domain: await run('setInterfaceLink', [operation.name, operation.interface, operation.state]) };
      case 'blockstats':
        return { op: 'blockstats', stats: await run('blockStats', [operation.name]) };
      case 'change-media': {
        const { path, source, eject } = operation;
        if (typeof path !== 'string' || (source !== undefined && typeof source !== 'string'))
          throw vmError(ErrorType.OperationInvalid, 'change-media needs a path');
        return { op: 'change-media', domain: await run('changeMedia', [operation.name, { path, source, eject: eject === true }]) };
      }
      case 'list':
        return { op: 'list', domains: await run('listDomains', []) };
      case 'dumpxml':
        return {
          op: 'dumpxml',
          xml: await run('dumpDomainXml', [
            operation.name,
            { inactive: operation.inactive, migratable: operation.migratable, securityInfo: operation.securityInfo === true },
          ]),
        };
      default:
        throw vmError(ErrorType.OperationInvalid, `unknown operation ${JSON.stringify((operation as { op: unknown }).op)}`);
    }
  } catch (err) {
    throw unwrapActivityError(err, { host, step: operation.op });
  }
}

type Run = <K extends keyof DomainActivities>(act: K, args: Parameters<DomainActivities[K]>) => Promise<Awaited<ReturnType<DomainActivities[K]>>>;

/** Power button; with a timeout, then a heartbeating wait on the host until the guest has stopped. */
async function shutdown(run: Run, acts: DomainActivities, options: ActivityOptions, name: string, timeoutSeconds: unknown): Promise<DomainInfo> {
  if (
    timeoutSeconds !== undefined &&
    (typeof timeoutSeconds !== 'number' || !Number.isInteger(timeoutSeconds) || timeoutSeconds < 0 || timeoutSeconds > MAX_SHUTDOWN_TIMEOUT_S)
  ) {
    throw vmError(ErrorType.OperationInvalid, `shutdown timeout must be a whole number of seconds from 0 to ${MAX_SHUTDOWN_TIMEOUT_S}`);
  }
  const pressed = await run('shutdownDomain', [name]);
  if (timeoutSeconds === undefined || pressed.state === 'shutoff') return pressed;
  // The deadline is fixed here, so a retried wait (worker restarted) does not start the clock again.
  const deadlineMs = Date.now() + timeoutSeconds * 1000;
  return await (acts.waitDomainShutoff as any).executeWithOptions(
    { ...options, startToCloseTimeout: (timeoutSeconds + 60) * 1000, heartbeatTimeout: '10 seconds', summary: `wait for '${name}' to shut down` },
    [name, deadlineMs],
  );
}
