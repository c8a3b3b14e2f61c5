// The vmferry command, run as a real process against the dev server and a host worker.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { isProcessAlive } from '../src/support/proc.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';

const cluster = new TestCluster();
const HOST = 'cli-a';
const files = mkdtempSync(join(tmpdir(), 'vmf-cli-'));

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function vmferry(...args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, ['bin/vmferry.js', ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, TEMPORAL_ADDRESS: cluster.address, VMFERRY_HOST: HOST, VMFERRY_REQUESTED_BY: 'alice@ops' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stdout, stderr };
}

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([cluster.startHost(HOST), cluster.startControl()]);
});

afterAll(async () => {
  await vmferry('destroy', 'cli1');
  await cluster.stop();
  rmSync(files, { recursive: true, force: true });
});

describe('vmferry CLI', () => {
  it('runs the lifecycle verbs with human and JSON output', async () => {
    const xmlFile = join(files, 'cli1.xml');
    writeFileSync(xmlFile, guestXml({ name: 'cli1' }));
    const def = await vmferry('define', xmlFile);
    expect(def.code).toBe(0);
    expect(def.stdout).toMatch(/Domain 'cli1' defined/);

    const start = await vmferry('start', 'cli1', '--json');
    expect(start.code).toBe(0);
    const started = JSON.parse(start.stdout) as { state: string; pid: number };
    expect(started.state).toBe('running');
    expect(isProcessAlive(started.pid)).toBe(true);

    const list = await vmferry('list');
    expect(list.stdout).toMatch(/cli1\s+running/);

    expect((await vmferry('suspend', 'cli1')).code).toBe(0);
    const info = await vmferry('dominfo', 'cli1');
    expect(info.stdout).toMatch(/State:\s+paused/);
    expect((await vmferry('resume', 'cli1')).code).toBe(0);

    const xml = await vmferry('dumpxml', 'cli1', '--migratable');
    expect(xml.stdout).toMatch(/<name>cli1<\/name>/);
    expect(xml.stdout).not.toMatch(/tty=/);

    expect((await vmferry('destroy', 'cli1')).code).toBe(0);
    expect(isProcessAlive(started.pid)).toBe(false);
  });

  it('separates invalid input (2) from failures, with typed messages', async () => {
    const unknown = await vmferry('start', 'no-such-domain', '--json');
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ error: { type: 'DomainNotFound' } });

    const unknownSuspend = await vmferry('suspend', 'no-such-domain');
    expect(unknownSuspend.code).toBe(2);

    const badVerb = await vmferry('frobnicate');
    expect(badVerb.code).toBe(2);
    expect(badVerb.stderr).toMatch(/unknown verb/);

    const badOption = await vmferry('start', 'cli1', '--bogus');
    expect(badOption.code).toBe(2);

    const missingFile = await vmferry('define', join(files, 'missing.xml'));
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr).toMatch(/cannot read/);

    const hostile = join(files, 'hostile.xml');
    writeFileSync(hostile, '<!DOCTYPE d [<!ENTITY a "aaaa">]><domain><name>&a;</name></domain>');
    const xmlErr = await vmferry('define', hostile);
    expect(xmlErr.code).toBe(2);
    expect(xmlErr.stderr).toMatch(/XmlError/);

    const running = await vmferry('list', '--all', '--json');
    expect(JSON.parse(running.stdout)).toEqual([expect.objectContaining({ name: 'cli1', state: 'shutoff' })]);
  });
});

describe('audit log', () => {
  it('records who asked, which job, what and the outcome for each VM-changing step, and nothing for reads', async () => {
    const auditFile = join(cluster.hosts.get(HOST)!.baseDir, 'log', 'audit.log');
    const records = readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // start goes through the managedStart job (it restores a managed save when there is one).
    expect(records).toContainEqual(
      expect.objectContaining({ kind: 'audit', who: 'alice@ops', domain: 'cli1', host: HOST, outcome: 'ok', job: expect.stringMatching(/^vmferry-job-/) }),
    );
    expect(records).toContainEqual(expect.objectContaining({ what: 'suspendDomain', domain: 'no-such-domain', outcome: 'error', errorType: 'DomainNotFound' }));
    for (const r of records) expect(String(r.job)).toMatch(/^vmferry-(op|job)-/);
    expect(records.map((r) => r.what)).toEqual(expect.arrayContaining(['defineDomain', 'suspendDomain', 'resumeDomain', 'destroyDomain']));
    expect(records.some((r) => r.what === 'domainInfo' || r.what === 'listDomains')).toBe(false);
  });
});
