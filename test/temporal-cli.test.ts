// The README's Temporal CLI examples, run verbatim (parsed out of README.md) against
// the dev server: the documentation cannot drift from what works.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo } from '../src/common/domain-types.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { findTemporalCli } from '../src/local/temporal-cli.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { performHeartbeat } from './helpers/migration.js';

// Only this file uses host-a and host-b: host names are task queues, shared across the run's server.
const HOST = 'host-a';
const HOST_B = 'host-b';
/** The UUID and image path the README's job examples name. */
const DEMO_UUID = '6f1c2a9e-4b7d-4e0a-9c3f-2d8e5b1a7c40';
const IMAGE = '/tmp/vmferry-demo1.img';
const cluster = new TestCluster();
const cli = findTemporalCli()!;

/** Splits a shell line the way sh would for these examples: words and single-quoted strings. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) words.push(m[1] ?? m[2]!);
  return words;
}

function readmeExamples(marker = 'temporal-cli-examples'): string[] {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const block = new RegExp(`<!-- ${marker}:begin -->([\\s\\S]*?)<!-- ${marker}:end -->`).exec(readme)?.[1] ?? '';
  return block.split('\n').filter((l) => l.startsWith('temporal '));
}

async function run(words: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(cli, words.slice(1), { env: { ...process.env, TEMPORAL_ADDRESS: cluster.address }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, out };
}

beforeAll(async () => {
  await cluster.connect();
  const ports = (min: number): Record<string, string> => ({ VMFERRY_HOST_MIGRATION_PORT_MIN: String(min), VMFERRY_HOST_MIGRATION_PORT_MAX: String(min + 7) });
  await Promise.all([cluster.startHost(HOST, ports(49248)), cluster.startHost(HOST_B, ports(49256)), cluster.startControl()]);
  await cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'demo1', uuid: DEMO_UUID, memoryMiB: 128 }) });
  rmSync(IMAGE, { force: true });
});

afterAll(async () => {
  for (const host of [HOST, HOST_B]) await cluster.op(host, { op: 'destroy', name: 'demo1' }).catch(() => undefined);
  await cluster.stop();
  rmSync(IMAGE, { force: true });
});

describe('README Temporal CLI examples', () => {
  it('run verbatim and do what they say', async () => {
    const lines = readmeExamples();
    expect(lines.length).toBeGreaterThanOrEqual(6);
    const outputs: string[] = [];
    for (const line of lines) {
      const r = await run(shellWords(line));
      expect(r.code, `${line}\n${r.out}`).toBe(0);
      outputs.push(r.out);
    }
    // start, suspend, info (paused), resume, list (finds them by search attribute), destroy
    expect(outputs[0]).toMatch(/"state":\s*"running"/);
    expect(outputs[1]).toMatch(/"state":\s*"paused"/);
    expect(outputs[2]).toMatch(/"reason":\s*"user"/);
    expect(outputs[3]).toMatch(/"state":\s*"running"/);
    expect(outputs[4]).toMatch(/op-demo1-start/);
    expect(outputs[4]).toMatch(/op-demo1-resume/);
    expect(outputs[5]).toMatch(/"state":\s*"shutoff"/);
  });

  it('job examples: save, restore, a migration steered by a signal and an update and cancelled, jobs listed by search attribute', async () => {
    const lines = readmeExamples('temporal-cli-jobs');
    expect(lines.length).toBe(14);
    for (const line of lines) expect(line).not.toMatch(/<|>/); // copy-paste ready: no placeholders left
    const jobId = jobWorkflowId(DEMO_UUID);
    const handle = cluster.client.workflow.getHandle(jobId);
    const results: { code: number | null; out: string }[] = [];
    for (const line of lines) {
      const words = shellWords(line);
      if (words[2] === 'start' && words.includes('migrate')) {
        // Random RAM so the 8 MiB/s stream lasts long enough for the signals that follow.
        const dom = (await cluster.op(HOST, { op: 'info', name: 'demo1' })) as { domain: DomainInfo };
        fillRandom(dom.domain.memoryBackingFile!, 96 * 1024 * 1024);
      }
      if (words[2] === 'signal' && words.includes('setSpeed')) {
        await waitFor('the migration to stream', async () => ((await performHeartbeat(handle))?.progress.dataProcessedBytes ?? 0) > 0, {
          timeoutMs: 30_000,
          intervalMs: 50,
        });
      }
      if (words[2] === 'describe') {
        await waitFor('QEMU to apply the new speed', async () => (await performHeartbeat(handle))?.speedLimitMiBps === 16, { timeoutMs: 5000, intervalMs: 50 });
      }
      const r = await run(words);
      results.push(r);
      // Only the result of the cancelled migration fails.
      const expectFailure = words[2] === 'result' && results.filter((_, i) => shellWords(lines[i]!)[2] === 'result').length === 2;
      expect(r.code === 0, `${line}\n${r.out}`).toBe(!expectFailure);
    }
    const [boot, , saved, restored, , info, , , described, running, , aborted, listed, destroyed] = results.map((r) => r.out);
    expect(boot).toMatch(/"state":\s*"running"/);
    expect(saved).toMatch(/"path":\s*"\/tmp\/vmferry-demo1.img"/);
    expect(restored).toMatch(/"state":\s*"running"/);
    expect(info).toMatch(/"jobType":\s*"migrateOut"/);
    expect(described).toMatch(/migratePerform/);
    expect(described).toMatch(/dataProcessedBytes/);
    expect(running).toContain(jobId);
    expect(aborted).toMatch(/OperationAborted/);
    expect(listed).toContain(jobId);
    // Destroyed where it ran before the cancelled migration: on host-a; host-b has no copy.
    expect(destroyed).toMatch(/"state":\s*"shutoff"/);
    expect(await cluster.op(HOST_B, { op: 'list' })).toMatchObject({ domains: [] });
    expect(existsSync(IMAGE)).toBe(true);
    expect(await handle.query('jobInfo')).toMatchObject({ status: 'cancelled', speedLimitMiBps: 16, maxDowntimeMs: 500 });
  });
});
