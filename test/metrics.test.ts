// Both workers serve Prometheus metrics when asked; job counters and durations included.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../src/local/free-port.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';

const cluster = new TestCluster();
const HOST = 'met-a';
let controlMetrics = '';
let hostMetrics = '';

beforeAll(async () => {
  await cluster.connect();
  controlMetrics = `127.0.0.1:${await freePort()}`;
  hostMetrics = `127.0.0.1:${await freePort()}`;
  await Promise.all([cluster.startHost(HOST, { VMFERRY_METRICS_ADDRESS: hostMetrics }), cluster.startControl({ VMFERRY_METRICS_ADDRESS: controlMetrics })]);
});

afterAll(() => cluster.stop());

async function scrape(address: string): Promise<string> {
  const res = await fetch(`http://${address}/metrics`);
  expect(res.status).toBe(200);
  return await res.text();
}

describe('metrics', () => {
  it('counts jobs by type and outcome with durations, and the host worker exports activity metrics', async () => {
    await cluster.op(HOST, { op: 'list' });
    await cluster.op(HOST, { op: 'info', name: 'nope' }).catch(() => undefined);
    // The exporter publishes on its own schedule: wait for the values, not for time.
    const text = await waitFor(
      'job metrics on the control worker',
      async () => {
        const t = await scrape(controlMetrics);
        return /vmferry_jobs(_total)?\{[^}]*job_type="domain-info"[^}]*outcome="failed"[^}]*\} 1/.test(t) ? t : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(text).toMatch(/vmferry_jobs(_total)?\{[^}]*job_type="domain-list"[^}]*outcome="completed"[^}]*\} 1/);
    expect(text).toMatch(/vmferry_job_duration[a-z_]*_count\{[^}]*job_type="domain-list"/);
    const host = await scrape(hostMetrics);
    expect(host).toMatch(/temporal_activity_execution_latency/);
  });
});
