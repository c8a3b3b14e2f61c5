// The host worker's side of the inventory (common/inventory-types.ts): it reports this host
// and its domains to the host's inventory workflow (signal-with-start) when they changed,
// after every activity (so a read right after an operation sees it), when a domain's status
// file changes (so what QEMU did by itself, a guest powering off or panicking, shows at
// once), on a poll as a backstop, and at least every intervalMs while it runs, so readers
// can tell a silent host from an idle one.
import { watch, type FSWatcher } from 'node:fs';
import { Client, type ConnectionLike } from '@temporalio/client';
import { CONTROL_TASK_QUEUE } from '../common/constants.js';
import type { DomainInfo } from '../common/domain-types.js';
import { INVENTORY_WORKFLOW_TYPE, inventoryReportSignal, inventoryWorkflowId, type HostInventory } from '../common/inventory-types.js';
import type { HostRuntime } from './host-runtime.js';

/** How often the worker looks for changes the status-file watch could miss. */
const POLL_MS = 2000;
/** Status files change in bursts (a stop writes, then removes): one report for the burst. */
const WATCH_SETTLE_MS = 50;
/** How long an activity waits for its report before it returns anyway. */
const REPORT_WAIT_MS = 5000;

export interface InventoryPublisher {
  /** Reports now if anything changed since the last report (or it is due); resolves when the report is in the workflow's history. */
  publish(): Promise<void>;
  stop(): void;
}

export function startInventoryPublisher(rt: HostRuntime, connection: ConnectionLike | Client, opts: { intervalMs: number }): InventoryPublisher {
  const client = connection instanceof Client ? connection : new Client({ connection, namespace: rt.config.temporal.namespace });
  let lastContent: string | undefined;
  let lastSentAtMs = 0;
  let chain: Promise<void> = Promise.resolve();

  const snapshot = (): Omit<HostInventory, 'reportedAtMs'> => ({
    host: rt.config.name,
    hostInfo: rt.hostInfo(),
    domains: rt
      .list()
      .map((d): DomainInfo | undefined => {
        try {
          return rt.info(d.name);
        } catch {
          // Undefined between list() and info(): it is gone, which the next report shows.
          return undefined;
        }
      })
      .filter((d): d is DomainInfo => d !== undefined),
    intervalMs: opts.intervalMs,
    workerPid: process.pid,
  });

  const sendIfChanged = async (): Promise<void> => {
    const content = snapshot();
    const text = JSON.stringify(content);
    if (text === lastContent && Date.now() - lastSentAtMs < opts.intervalMs) return;
    const report: HostInventory = { ...content, reportedAtMs: Date.now() };
    await client.workflow.signalWithStart(INVENTORY_WORKFLOW_TYPE, {
      workflowId: inventoryWorkflowId(rt.config.name),
      taskQueue: CONTROL_TASK_QUEUE,
      args: [],
      signal: inventoryReportSignal,
      signalArgs: [report],
    });
    lastContent = text;
    lastSentAtMs = report.reportedAtMs;
  };

  // One report at a time, in order: a later one never lands before an earlier one.
  const publish = (): Promise<void> => {
    const next = chain.then(sendIfChanged);
    chain = next.catch(() => undefined);
    return next;
  };

  const timer = setInterval(
    () => {
      publish().catch((err: unknown) => rt.log.warn({ err: String(err) }, 'inventory report failed; will try again'));
    },
    Math.min(POLL_MS, opts.intervalMs),
  );
  timer.unref();
  return { publish, stop: () => clearInterval(timer) };
}

/**
 * The activities, each followed by a report. `wait`: the activity returns only once its report
 * is in (the workflow that called it, and any read after, then see what it changed). Migration
 * steps do not wait: a Perform that returned later would lengthen the guest's pause at the
 * switchover (Finish resumes it only after), and their changes are reported all the same.
 * A failed report is logged, never the activity's result (the poll sends it again).
 */
export function reportingAfterEach<T extends Record<string, (...args: any[]) => Promise<unknown>>>(
  activities: T,
  publisher: InventoryPublisher,
  rt: HostRuntime,
  opts: { wait: boolean },
): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: unknown[]): Promise<unknown> => {
      try {
        return await fn(...args);
      } finally {
        const report = publisher
          .publish()
          .catch((err: unknown) => rt.log.warn({ err: String(err), activity: name }, 'inventory report after an activity failed'));
        // Bounded: a Temporal outage must not hold the activity's own result back.
        if (opts.wait) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([report, new Promise<void>((resolve) => (timer = setTimeout(resolve, REPORT_WAIT_MS)))]).finally(() => clearTimeout(timer));
        }
      }
    };
  }
  return wrapped as T;
}
