// The audit trail: one record per VM-changing activity (who asked, which job, what,
// on which domain and host, outcome), through pino to its own destination so it can
// be shipped and retained apart from operational logs.
import { Context } from '@temporalio/activity';
import type { ActivityInboundCallsInterceptor, ActivityExecuteInput, Next } from '@temporalio/worker';
import { pino, type Logger } from 'pino';
import { decodeRequestedBy } from '../common/requested-by.js';

/** Activities that only read: everything else changes a VM or its files and is audited. */
const READ_ONLY = new Set(['hostInfo', 'domainInfo', 'listDomains', 'dumpDomainXml', 'blockStats']);

export function createAuditLogger(path: string): Logger {
  return pino({ base: { kind: 'audit' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: path, mkdir: true, sync: true }));
}

function describeTarget(args: unknown[]): string | undefined {
  const first = args[0];
  if (typeof first === 'string') return first.startsWith('<') ? /<name>([^<]*)<\/name>/.exec(first)?.[1] : first;
  if (first && typeof first === 'object' && 'name' in first && typeof first.name === 'string') return first.name;
  return undefined;
}

export function auditInterceptor(audit: Logger, host: string) {
  return (ctx: Context): { inbound: ActivityInboundCallsInterceptor } => ({
    inbound: {
      async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
        const { activityType, workflowExecution, attempt } = ctx.info;
        if (READ_ONLY.has(activityType)) return await next(input);
        const record = {
          who: decodeRequestedBy(input.headers) ?? 'unknown',
          job: workflowExecution?.workflowId,
          run: workflowExecution?.runId,
          what: activityType,
          domain: describeTarget(input.args),
          host,
          attempt,
        };
        try {
          const result = await next(input);
          audit.info({ ...record, outcome: 'ok' });
          return result;
        } catch (err) {
          const e = err as { type?: string; message?: string };
          audit.info({ ...record, outcome: 'error', errorType: e.type, error: e.message });
          throw err;
        }
      },
    },
  });
}
