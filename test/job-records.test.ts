// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The one job store (src/host/jobs/records.ts): kinds, this-job-only reads and removes,
// lenient reads for migration steps, and start-up adoption of run/migrations.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { expect, it } from 'vitest';
import { HostRuntime } from '../src/host/host-runtime.js';
import { loadHostConfig } from '../src/host/host-config.js';
import { createJobDeps } from '../src/host/jobs/deps.js';
import { recoverJobs } from '../src/host/jobs/recovery.js';

it('the job store keeps one record per domain by kind, and takes in the migration records of an older worker once', async () => {
  const base = mkdtempSync(join(tmpdir(), 'vmf-jobs-'));
  const rt = new HostRuntime(
    loadHostConfig({ VMFERRY_HOST_NAME: 'x', VMFERRY_HOST_BASE_DIR: base, VMFERRY_HOST_MEMORY_DIR: join(base, 'mem') }),
    pino({ level: 'silent' }),
  );
  mkdirSync(join(base, 'run', 'migrations'));
  writeFileSync(
    join(base, 'run', 'migrations', 'a%20b.json'),
    JSON.stringify({ role: 'in', name: 'a b', uuid: 'u', jobId: 'j1', workflowId: 'w', runId: 'r', protocol: 3, flags: [], createdAtMs: 1, pid: 5 }),
  );
  const deps = createJobDeps(rt);
  await recoverJobs(deps);
  expect(existsSync(join(base, 'run', 'migrations'))).toBe(false);
  expect(readdirSync(join(base, 'state', 'jobs'))).toEqual(['a b.json']);
  expect(rt.jobs.find('a b', 'j1', 'migrate-in')?.pid).toBe(5);
  expect(rt.jobs.find('a b', 'j1', 'migrate-out')).toBeUndefined();
  expect(rt.jobs.patch('a b', 'j1', 'migrate-in', { port: 7 })?.port).toBe(7);
  expect(JSON.parse(readFileSync(join(base, 'state', 'jobs', 'a b.json'), 'utf8'))).toMatchObject({ kind: 'migrate-in', port: 7, pid: 5 });
  rt.jobs.remove('a b', 'other');
  expect(rt.jobs.list().length).toBe(1);
  rt.jobs.remove('a b', 'j1');
  expect(rt.jobs.list()).toEqual([]);
  writeFileSync(join(base, 'state', 'jobs', 'bad.json'), '{');
  expect(rt.jobs.find('bad', 'x', 'dump')).toBeUndefined();
  expect(() => rt.jobs.readJob('bad', 'x', 'save')).toThrow();
  rmSync(base, { recursive: true, force: true });
});
