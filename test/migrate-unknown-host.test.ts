// A migration naming a host no worker serves ends soon with a typed error: the
// first step on each host waits 15 s for a worker (as domainOperation does), and
// a source that never took Begin is not sent an undo it would wait minutes for.
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, failureOf, startMigration } from './helpers/migration.js';

const cluster = new TestCluster();
const A = 'cl-u-a';
const B = 'cl-u-b';
const NOHOST = 'cl-u-nohost';

/** Activity types the workflow scheduled, with each one's schedule-to-start timeout (s). */
async function scheduled(handle: WorkflowHandle): Promise<[string, number][]> {
  const events = (await handle.fetchHistory()).events ?? [];
  return events.flatMap((e) => {
    const a = e.activityTaskScheduledEventAttributes;
    return a ? [[a.activityType?.name ?? '?', Number(a.scheduleToStartTimeout?.seconds ?? 0)] as [string, number]] : [];
  });
}

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([cluster.startHost(A), cluster.startHost(B), cluster.startControl()]);
});

afterAll(async () => {
  await cluster.removeAllDomains([A, B]);
  await cluster.stop();
});

describe('migration with an unknown host', () => {
  it('from an unknown source: OperationFailed after the 15 s first-step wait, no undo sent to the source, nothing left on the destination', async () => {
    const uuid = randomUUID();
    const t0 = Date.now();
    const handle = await startMigration(cluster.client, { domain: 'cl-ghost', domainUuid: uuid, sourceHost: NOHOST, destinationHost: B, flags: ['live'] });
    const failure = await failureOf(handle.result());
    const elapsed = Date.now() - t0;
    expect(failure.type).toBe('OperationFailed');
    expect(failure.message).toMatch(new RegExp(`host '${NOHOST}' did not take the migrateBegin step`));
    expect(elapsed).toBeGreaterThanOrEqual(14_000);
    expect(elapsed).toBeLessThan(30_000);
    const steps = await scheduled(handle);
    expect(steps).toEqual([
      ['migrateBegin', 15],
      ['hostInfo', 15],
    ]);
    const list = await cluster.op(B, { op: 'list' });
    expect('domains' in list ? list.domains : list).toEqual([]);
  });

  it('to an unknown destination: OperationFailed after 15 s and the guest keeps running on the source', async () => {
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'cl-u1', memoryMiB: 64 }) });
    const g = domainOf(await cluster.op(A, { op: 'start', name: 'cl-u1' }));
    const t0 = Date.now();
    const handle = await startMigration(cluster.client, { domain: 'cl-u1', domainUuid: g.uuid, sourceHost: A, destinationHost: NOHOST, flags: ['live'] });
    const failure = await failureOf(handle.result());
    const elapsed = Date.now() - t0;
    expect(failure.type).toBe('OperationFailed');
    expect(failure.message).toMatch(new RegExp(`host '${NOHOST}' did not take the hostInfo step`));
    expect(elapsed).toBeLessThan(30_000);
    // Begin took the job on the source, so the undo releases it there (Confirm with success false).
    expect((await scheduled(handle)).map(([a]) => a)).toEqual(['migrateBegin', 'hostInfo', 'migrateConfirm']);
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'cl-u1' }))).toMatchObject({ state: 'running', pid: g.pid });
  });
});
