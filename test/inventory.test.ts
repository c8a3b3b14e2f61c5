// Reads without workflows (issue 17): `vmferry list` and `dominfo` answer from the host's
// inventory workflow by a query. A read right after an operation sees it, a change QEMU made
// by itself (its process killed) shows within seconds, a read starts no workflow, an unknown
// host is refused at once, and a host whose worker stopped is reported as not reporting
// rather than shown as it was. Real host and control workers, real QEMU, real Temporal.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainSummary } from '../src/common/domain-types.js';
import { inventoryQuery, inventoryWorkflowId } from '../src/common/inventory-types.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { jsonOf, vmferry, type CliResult } from './helpers/vmferry-cli.js';

const cluster = new TestCluster();
const A = 'inv-a';
const INTERVAL_MS = 1000;
const onA = (...args: string[]): Promise<CliResult> => vmferry({ address: cluster.address, host: A }, ...args);

async function domainOperationCount(): Promise<number> {
  const r = await cluster.client.workflowService.countWorkflowExecutions({
    namespace: 'default',
    query: `WorkflowType="domainOperation" AND WorkflowId STARTS_WITH "vmferry-op-${A}-"`,
  });
  return Number(r.count ?? 0);
}

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([cluster.startHost(A, { VMFERRY_INVENTORY_INTERVAL_MS: String(INTERVAL_MS) }), cluster.startControl()]);
});

afterAll(async () => {
  await cluster.removeAllDomains([A]);
  await cluster.stop();
});

describe('host inventory: reads by query', () => {
  it('list and dominfo see an operation at once, start no workflow, and see QEMU dying on its own', async () => {
    const xml = join(cluster.root, 'inv.xml');
    const uuid = randomUUID();
    writeFileSync(xml, guestXml({ name: 'inv-g', uuid }));
    expect((await onA('define', xml)).code).toBe(0);
    const started = await onA('start', 'inv-g', '--paused', '--json');
    expect(started.code, started.stderr).toBe(0);

    // Visibility counts the define and start operations (a second later at most); then reads add none.
    const before = await waitFor(
      'visibility to count the define and start',
      async () => ((await domainOperationCount()) >= 1 ? domainOperationCount() : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 200,
      },
    );
    const [list, info] = await Promise.all([onA('list', '--json'), onA('dominfo', 'inv-g', '--json')]);
    expect(list.code, list.stderr).toBe(0);
    expect(jsonOf<DomainSummary[]>(list)).toContainEqual({ name: 'inv-g', uuid, state: 'paused', persistent: true });
    const dom = jsonOf<DomainInfo>(info);
    expect(dom).toMatchObject({ name: 'inv-g', uuid, state: 'paused', host: A });
    // A marker operation after the reads: once visibility shows it, anything the reads started would show too.
    expect((await onA('suspend', 'inv-g')).code).toBeLessThanOrEqual(2);
    const after = await waitFor(
      'visibility to count the marker',
      async () => {
        const n = await domainOperationCount();
        return n > before ? n : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    expect(after).toBe(before + 1);

    // QEMU killed behind the worker's back: the worker sees it exit and the next report says so.
    process.kill(dom.pid!, 'SIGKILL');
    await waitFor(
      'list --all to show the guest shut off',
      async () => {
        const r = await onA('list', '--all', '--json');
        return jsonOf<DomainSummary[]>(r).find((d) => d.name === 'inv-g')?.state === 'shutoff' || undefined;
      },
      { timeoutMs: 15_000, intervalMs: 300 },
    );
    expect(jsonOf<DomainSummary[]>(await onA('list', '--json')).map((d) => d.name)).not.toContain('inv-g');
    const missing = await onA('dominfo', 'no-such-domain', '--json');
    expect(missing.code).toBe(2);
    expect(jsonOf<{ error: { type: string } }>(missing).error.type).toBe('DomainNotFound');
  });

  it('an unknown host is refused at once; a host whose worker stopped is reported as not reporting', async () => {
    const t0 = Date.now();
    const unknown = await vmferry({ address: cluster.address, host: 'inv-nosuch' }, 'list', '--json');
    expect(unknown.code).toBe(2);
    expect(jsonOf<{ error: { type: string; message: string } }>(unknown).error.message).toMatch(/unknown host 'inv-nosuch'/);
    expect(Date.now() - t0).toBeLessThan(10_000);

    await cluster.hosts.get(A)!.worker!.stop();
    const silent = await waitFor(
      'list to call the host silent',
      async () => {
        const r = await onA('list', '--json');
        return r.code !== 0 ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(silent.code).toBe(1);
    expect(jsonOf<{ error: { type: string; message: string } }>(silent).error.message).toMatch(/host 'inv-a' is not reporting/);
    // Its last report is still there for whoever asks the workflow directly.
    const view = await cluster.client.workflow.getHandle(inventoryWorkflowId(A)).query(inventoryQuery);
    expect(view?.host).toBe(A);
    await cluster.startHost(A, { VMFERRY_INVENTORY_INTERVAL_MS: String(INTERVAL_MS) });
    expect((await onA('list')).code).toBe(0);
  });
});
