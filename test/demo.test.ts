// README command 1 as a user runs it, headless and once (`npm run demo -- --headless --once`,
// without the setup step the test run already did): its own dev server on free ports and a
// private state directory, the Linux guest booted, saved and restored, migrated host-a ->
// host-b -> host-a. As root the demo reads the guest's TCP counter over the bridge it makes,
// and every counter line must be higher than the one before (the guest carried on through
// each step); not root, it follows the disk writer on the serial log. It exits 0 and leaves
// no bridge, QEMU or worker behind.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../src/local/free-port.js';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { demoBridgeName } from '../scripts/demo-network.js';

const stateDir = mkdtempSync(join(tmpdir(), 'vmf-demo-'));
const isRoot = process.getuid?.() === 0;
let launcher: ReturnType<typeof spawn> | undefined;

/** PIDs of processes whose command line or environment names the demo's state directory. */
function processesUsing(dir: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    for (const what of ['cmdline', 'environ']) {
      try {
        if (readFileSync(`/proc/${name}/${what}`, 'utf8').includes(dir)) found.push(Number(name));
      } catch {
        // Gone, or not ours to read.
      }
    }
  }
  return [...new Set(found)];
}

afterAll(async () => {
  if (launcher && launcher.exitCode === null && launcher.signalCode === null) {
    // The launcher hands SIGTERM to the detached demo, which cleans up and exits.
    launcher.kill('SIGTERM');
    await new Promise((r) => launcher!.once('exit', r));
  }
  rmSync(stateDir, { recursive: true, force: true });
});

describe('npm run demo -- --headless --once', () => {
  it('boots the Linux guest, shows its workload carrying on across save/restore and both migrations, exits 0 and leaves nothing behind', async () => {
    const port = await freePort();
    const uiPort = await freePort();
    launcher = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', '--headless', '--once'], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, VMFERRY_STATE_DIR: stateDir, VMFERRY_TEMPORAL_PORT: String(port), VMFERRY_UI_PORT: String(uiPort), VMFERRY_DEMO_DETACHED: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    launcher.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    launcher.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => launcher!.once('exit', (c) => r(c)));
    console.log(
      out
        .split('\n')
        .filter((l) => /counter|disk record|workload is up|now runs on|restored/.test(l))
        .join('\n'),
    );
    expect(code, out).toBe(0);

    const steps = ['before save', 'after save/restore', 'after migration to host-b', 'after migration to host-a'];
    const pattern = isRoot
      ? /^\[demo\] counter (\d+) via (10\.239\.\d+\.2):5555 (.+?) \(the connection opened at boot;/gm
      : /^\[demo\] disk record (\d+) \(serial log, no network counter\) (.+)$/gm;
    const seen = [...out.matchAll(pattern)].map((m) => ({ value: Number(m[1]), step: isRoot ? m[3] : m[2] }));
    expect(seen.map((s) => s.step)).toEqual(steps);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.value, `${seen[i]!.step} after ${seen[i - 1]!.step}`).toBeGreaterThan(seen[i - 1]!.value);
    if (isRoot) expect(out).toMatch(new RegExp(`removed bridge ${demoBridgeName(port)}`));

    // Nothing left: the bridge, the guest's taps, QEMU, workers, the dev server.
    const bridge = spawnSync('ip', ['link', 'show', 'dev', demoBridgeName(port)], { encoding: 'utf8' });
    expect(bridge.status, bridge.stdout).not.toBe(0);
    expect(processesUsing(stateDir)).toEqual([]);
    // The workers removed the taps they made (each is in a ledger until it is deleted).
    for (const host of ['host-a', 'host-b']) {
      const run = join(stateDir, 'hosts', host, 'run');
      expect(existsSync(run) ? readdirSync(run).filter((f) => f.endsWith('.taps')) : []).toEqual([]);
    }
  }, 420_000);
});
