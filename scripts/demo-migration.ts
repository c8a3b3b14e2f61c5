// The demo's migration step: the guest goes from host-a to host-b and back, each
// time as one `migrate` workflow (v3, live, its definition moving with it).
// scripts/demo.ts calls runDemoMigration once the guest runs on host-a.
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import type { MigrateInput, MigrateResult } from '../src/common/migration-types.js';

export interface DemoMigrationOptions {
  from?: string;
  to?: string;
  log?: (line: string) => void;
  /** Runs after each leg (e.g. to show the guest's workload carrying on). */
  after?: (result: MigrateResult) => Promise<void>;
}

async function domainInfo(client: Client, host: string, name: string): Promise<DomainInfo> {
  const r = await client.workflow.execute<(i: unknown) => Promise<DomainOperationResult>>('domainOperation', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: `demo-info-${host}-${randomUUID().slice(0, 8)}`,
    args: [{ host, operation: { op: 'info', name } }],
  });
  if (!('domain' in r)) throw new Error(`no domain '${name}' on ${host}`);
  return r.domain as DomainInfo;
}

async function migrateOnce(client: Client, name: string, uuid: string, from: string, to: string, say: (l: string) => void): Promise<MigrateResult> {
  const input: MigrateInput = { domain: name, domainUuid: uuid, sourceHost: from, destinationHost: to, flags: ['live', 'persist-dest', 'undefine-source'] };
  const workflowId = jobWorkflowId(uuid);
  say(`migrating ${name} ${from} -> ${to} (workflow ${workflowId})`);
  const started = Date.now();
  const result = await client.workflow.execute<(i: MigrateInput) => Promise<MigrateResult>>('migrate', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId,
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
  });
  const s = result.stats;
  say(
    `${name} now runs on ${result.destinationHost} (pid ${result.destination.pid}, protocol v${result.protocol}): ` +
      `${Date.now() - started} ms end to end, QEMU ${s.totalTimeMs ?? '?'} ms, ${Math.round((s.transferredBytes ?? 0) / 1048576)} MiB sent, ` +
      `downtime ${s.downtimeMs ?? '?'} ms (QEMU) / ${result.measuredDowntimeMs ?? '?'} ms (STOP to RESUME)`,
  );
  return result;
}

/** Migrates `guestName` from `from` (default host-a) to `to` (default host-b) and back. */
export async function runDemoMigration(client: Client, guestName: string, opts: DemoMigrationOptions = {}): Promise<MigrateResult[]> {
  const from = opts.from ?? 'host-a';
  const to = opts.to ?? 'host-b';
  const say = opts.log ?? ((line: string) => console.log(`[demo] ${line}`));
  const { uuid } = await domainInfo(client, from, guestName);
  const there = await migrateOnce(client, guestName, uuid, from, to, say);
  await opts.after?.(there);
  const back = await migrateOnce(client, guestName, uuid, to, from, say);
  await opts.after?.(back);
  return [there, back];
}
