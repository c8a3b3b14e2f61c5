// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The hook runner alone (src/host/hooks.ts), with real hook processes and no QEMU:
// a hook past its deadline is killed and refuses even when a grandchild holds its
// pipes; a missing or non-executable hook means no hook; a hook that ignores its
// stdin is not an error; spawnWithHooks keeps libvirt's order around the host's
// set-up (prepare, set-up, start, spawn) and undoes the set-up before release when
// a step fails.
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../src/support/proc.js';
import { runHook, spawnWithHooks } from '../src/host/hooks.js';
import type { DomainDef } from '../src/domain/index.js';
import { parseDomainXml } from '../src/domain/index.js';

const dir = mkdtempSync(join(tmpdir(), 'vmf-hook-'));
const host = { config: { hooksDir: dir }, log: pino({ level: 'silent' }) };
const grandchildPidFile = join(dir, 'grandchild.pid');

function writeHook(body: string, mode = 0o755): void {
  writeFileSync(join(dir, 'qemu'), `#!/bin/sh\n${body}\n`);
  chmodSync(join(dir, 'qemu'), mode);
}

afterAll(() => {
  // The grandchild the timeout case started, by the PID it wrote.
  try {
    const pid = Number(readFileSync(grandchildPidFile, 'utf8').trim());
    if (pid > 0 && isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    // never started
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('host hook runner', () => {
  it('kills a hook past its deadline and refuses, even while a grandchild keeps its pipes open', async () => {
    writeHook(`sleep 20 & echo $! > ${grandchildPidFile}\nexec sleep 20`);
    const t0 = Date.now();
    await expect(runHook(host, 'start', 'd', '<domain/>', 500)).rejects.toThrow(/refused start begin of domain 'd': no answer within 500 ms \(killed\)/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('runs nothing when the hook is missing or not executable; a hook ignoring stdin is fine', async () => {
    rmSync(join(dir, 'qemu'), { force: true });
    expect(await runHook(host, 'prepare', 'd', '<domain/>')).toBeUndefined();
    writeHook('exit 1', 0o644);
    expect(await runHook(host, 'prepare', 'd', '<domain/>')).toBeUndefined();
    writeHook('echo "$1 $2 $3 $4"');
    expect(await runHook(host, 'release', 'd', '<domain/>'.repeat(100_000))).toBe('d release end -\n');
    expect(await runHook({ ...host, config: {} }, 'prepare', 'd', '<domain/>')).toBeUndefined();
  });
  it('spawnWithHooks: set-up between prepare and start; a failed set-up or spawn is undone before release', async () => {
    const log = join(dir, 'order.log');
    writeHook(`echo "hook $2" >> ${log}\n[ "$2" = start ] && [ -e ${join(dir, 'refuse-start')} ] && exit 1\nexit 0`);
    const def: DomainDef = parseDomainXml(
      "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory><os><type arch='x86_64' machine='pc'>hvm</type></os><devices/></domain>",
    );
    const mark = (what: string) => appendFileSync(log, `${what}\n`);
    const order = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
    const steps = {
      setUp: async () => mark('set-up'),
      spawn: async (): Promise<never> => {
        mark('spawn');
        throw new Error('spawn failed');
      },
      tearDown: () => mark('tear-down'),
    };
    await expect(spawnWithHooks(host, def, steps)).rejects.toThrow('spawn failed');
    expect(order()).toEqual(['hook prepare', 'set-up', 'hook start', 'spawn', 'tear-down', 'hook release']);
    rmSync(log);
    writeFileSync(join(dir, 'refuse-start'), '');
    await expect(spawnWithHooks(host, def, steps)).rejects.toThrow(/refused start begin/);
    expect(order()).toEqual(['hook prepare', 'set-up', 'hook start', 'tear-down', 'hook release']);
  });
});
