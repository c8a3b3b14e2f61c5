// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The setup step on a machine without a Temporal CLI: it must say what to install.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/local/paths.js';

const emptyCache = mkdtempSync(join(tmpdir(), 'vmf-nocache-'));
afterAll(() => rmSync(emptyCache, { recursive: true, force: true }));

function runSetup(env: Record<string, string>): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/setup.ts'], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    // No temporal on PATH, an empty cache: setup has to build, and cannot.
    env: { PATH: '/usr/bin:/bin', HOME: emptyCache, XDG_CACHE_HOME: emptyCache, ...env },
  });
  return { status: r.status, stderr: r.stderr };
}

describe('setup without a Temporal CLI', () => {
  it('names Go >= 1.25 or VMFERRY_TEMPORAL_CLI when there is no Go toolchain', () => {
    const r = runSetup({ VMFERRY_GO: join(emptyCache, 'no-go-here') });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/no Go toolchain/);
    expect(r.stderr).toMatch(/Go >= 1\.25/);
    expect(r.stderr).toMatch(/VMFERRY_TEMPORAL_CLI/);
  });

  it('refuses a VMFERRY_TEMPORAL_CLI that does not exist', () => {
    const r = runSetup({ VMFERRY_TEMPORAL_CLI: join(emptyCache, 'missing-temporal') });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/VMFERRY_TEMPORAL_CLI=.*does not exist/);
  });
});
