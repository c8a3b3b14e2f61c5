// `npm run build` as a deployment uses it: the compiled host and control workers run with
// plain node (no tsx), the control worker takes the build's prebuilt workflow bundle, and the
// compiled CLI drives a real guest through them. dist/ is the one setup made (npm test runs
// setup), rebuilt here first only if the sources changed since.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo } from '../src/common/domain-types.js';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { ensureBuild } from '../src/local/build.js';
import { freshBuild } from '../bin/build-fresh.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { jsonOf, type CliResult } from './helpers/vmferry-cli.js';

const OUT = join(PROJECT_ROOT, 'dist');
const HOST = 'bld-a';
const cluster = new TestCluster();

function compiledCli(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [join(OUT, 'cli.mjs'), ...args], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    env: { ...process.env, TEMPORAL_ADDRESS: cluster.address, VMFERRY_HOST: HOST, NODE_OPTIONS: '' },
    timeout: 60_000,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  await ensureBuild(() => undefined);
  expect(freshBuild(PROJECT_ROOT)).toBe(true);
  await cluster.connect();
  await Promise.all([cluster.startHost(HOST, {}, { build: OUT }), cluster.startControl({}, { build: OUT })]);
}, 300_000);

afterAll(async () => {
  await cluster.removeAllDomains([HOST]);
  await cluster.stop();
});

describe('npm run build', () => {
  it('makes compiled workers and CLI, a prebuilt workflow bundle and a build stamp', () => {
    for (const f of ['workers/host.js', 'workers/control.js', 'cli/main.js', 'cli.mjs', 'workflow-bundle.js', 'build-info.json'])
      expect(existsSync(join(OUT, f)), f).toBe(true);
    const info = JSON.parse(readFileSync(join(OUT, 'build-info.json'), 'utf8')) as { sourcesAsOfMs: number };
    expect(info.sourcesAsOfMs).toBeGreaterThan(0);
  });

  it('runs the compiled workers, the control worker on the prebuilt bundle, and a guest through the bundled CLI', async () => {
    const ready = cluster.control!.logs.find((l) => l.msg === 'control worker ready');
    expect(ready?.workflowBundle).toBe(join(OUT, 'workflow-bundle.js'));
    const xml = join(cluster.root, 'bld.xml');
    writeFileSync(xml, guestXml({ name: 'bld-g', memoryMiB: 64 }));
    expect(compiledCli('define', xml).code).toBe(0);
    const started = compiledCli('start', 'bld-g', '--paused');
    expect(started.code, started.stderr).toBe(0);
    const info = compiledCli('dominfo', 'bld-g', '--json');
    expect(info.code, info.stderr).toBe(0);
    expect(jsonOf<DomainInfo>(info)).toMatchObject({ name: 'bld-g', state: 'paused' });
    const list = compiledCli('list', '--json');
    expect(jsonOf<DomainInfo[]>(list).map((d) => d.name)).toContain('bld-g');
    expect(compiledCli('destroy', 'bld-g').code).toBe(0);
  });
});
