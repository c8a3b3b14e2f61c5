// The README's Temporal CLI examples, run verbatim (parsed out of README.md) against
// the dev server: the documentation cannot drift from what works.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { findTemporalCli } from '../src/local/temporal-cli.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';

// Only this file uses host-a: host names are task queues, shared across the run's server.
const HOST = 'host-a';
const cluster = new TestCluster();
const cli = findTemporalCli()!;

/** Splits a shell line the way sh would for these examples: words and single-quoted strings. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) words.push(m[1] ?? m[2]!);
  return words;
}

function readmeExamples(): string[] {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const block = /<!-- temporal-cli-examples:begin -->([\s\S]*?)<!-- temporal-cli-examples:end -->/.exec(readme)?.[1] ?? '';
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
  await Promise.all([cluster.startHost(HOST), cluster.startControl()]);
  await cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'demo1' }) });
});

afterAll(async () => {
  await cluster.op(HOST, { op: 'destroy', name: 'demo1' }).catch(() => undefined);
  await cluster.stop();
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
});
