// What a user sees while a job runs in the foreground: on a terminal (a real
// pseudo-terminal) one progress line redrawn in place, in a pipe plain log
// lines; and Ctrl-C (SIGINT to the command) aborting the job as virsh does,
// leaving the guest running where it was and nothing behind.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo } from '../src/common/domain-types.js';
import type { MigrateResult } from '../src/common/migration-types.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { WorkerWatch } from './helpers/worker-watch.js';
import { domainOf, namesOf } from './helpers/migration.js';
import { startVmferry, startVmferryInPty, vmferry, type CliProcess } from './helpers/vmferry-cli.js';

const cluster = new TestCluster();
const A = 'cp-a';
const B = 'cp-b';
const MiB = 1024 * 1024;
let images: string;
let watch: WorkerWatch;

async function info(host: string, name: string): Promise<DomainInfo> {
  return domainOf(await cluster.op(host, { op: 'info', name }));
}

async function runGuest(name: string, fill: number): Promise<DomainInfo> {
  await cluster.op(A, { op: 'define', xml: guestXml({ name, uuid: randomUUID(), memoryMiB: 128 }) });
  const dom = domainOf(await cluster.op(A, { op: 'start', name }));
  fillRandom(dom.memoryBackingFile!, fill);
  return dom;
}

async function removeGuest(host: string, name: string): Promise<void> {
  await cluster.op(host, { op: 'destroy', name });
  await cluster.op(host, { op: 'undefine', name });
}

/** Waits until the running command has printed a line matching `pattern`. */
async function printed(cli: CliProcess, pattern: RegExp): Promise<void> {
  await waitFor(`output matching ${pattern}`, () => pattern.test(cli.output()), { timeoutMs: 30_000, intervalMs: 50 });
}

beforeAll(async () => {
  await cluster.connect();
  const ports = (min: number): Record<string, string> => ({ VMFERRY_HOST_MIGRATION_PORT_MIN: String(min), VMFERRY_HOST_MIGRATION_PORT_MAX: String(min + 7) });
  await Promise.all([cluster.startHost(A, ports(49232)), cluster.startHost(B, ports(49240)), cluster.startControl()]);
  watch = new WorkerWatch(cluster, [A, B]);
  images = join(cluster.root, 'images');
  mkdirSync(images);
});

afterAll(async () => {
  await watch.reviveForCleanup();
  await cluster.removeAllDomains([A, B]);
  await cluster.stop();
});

describe('foreground job output', () => {
  it('on a terminal: one line redrawn in place with phase, percent, MiB/s and ETA; in a pipe: plain lines', async () => {
    await runGuest('cp-t', 80 * MiB);
    const tty = startVmferryInPty({ address: cluster.address, host: A }, [
      'migrate',
      'cp-t',
      B,
      '--live',
      '--persistent',
      '--undefinesource',
      '--bandwidth',
      '24',
    ]);
    const t = await watch.race(tty.done);
    expect(t.code, t.stdout).toBe(0);
    const redraws = t.stdout.split('\r').slice(1);
    const progress = redraws.filter((l) => /^migrate cp-t cp-a -> cp-b: perform +\d+% \(\d+\.\d\/\d+\.\d MiB\) \d+\.\d MiB\/s ETA \d+:\d\d\x1b\[K$/.test(l));
    expect(progress.length, t.stdout).toBeGreaterThanOrEqual(3);
    const percents = progress.map((l) => Number(/(\d+)%/.exec(l)![1]));
    expect(percents.at(-1)!).toBeGreaterThan(percents[0]!);
    // Redrawn, not scrolled: no newline until the job ends.
    expect(t.stdout.slice(0, t.stdout.lastIndexOf('completed')).includes('\n')).toBe(false);
    expect(t.stdout).toMatch(/\rmigrate cp-t cp-a -> cp-b: completed\x1b\[K\r?\nDomain 'cp-t' migrated from cp-a to cp-b/);

    // Back again with stdout a pipe.
    const plain = await vmferry({ address: cluster.address, host: B }, 'migrate', 'cp-t', A, '--live', '--persistent', '--undefinesource', '--bandwidth', '24');
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).not.toContain('\r');
    expect(plain.stdout).not.toContain('\x1b');
    const lines = plain.stdout.trimEnd().split('\n');
    expect(lines).toContainEqual(expect.stringMatching(/^migrate cp-t cp-b -> cp-a: perform/));
    expect(lines).toContainEqual(expect.stringMatching(/^migrate cp-t cp-b -> cp-a: perform +\d+% .* MiB\/s/));
    expect(lines.at(-2)).toBe('migrate cp-t cp-b -> cp-a: completed');
    expect(lines.at(-1)).toMatch(/^Domain 'cp-t' migrated from cp-b to cp-a/);
    // One line per phase change or every few seconds, not one per poll.
    expect(lines.length).toBeLessThan(15);
    expect(await info(A, 'cp-t')).toMatchObject({ state: 'running', persistent: true });
    await removeGuest(A, 'cp-t');
  });

  it('--json prints only the final JSON', async () => {
    await runGuest('cp-j', 16 * MiB);
    const r = await vmferry({ address: cluster.address, host: A }, 'migrate', 'cp-j', B, '--live', '--persistent', '--undefinesource', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as MigrateResult).destination).toMatchObject({ name: 'cp-j', host: B, state: 'running' });
    await removeGuest(B, 'cp-j');
  });
});

describe('Ctrl-C during a foreground job', () => {
  it('aborts a migration: exit 3, the guest runs on at the source, no QEMU at the destination', async () => {
    const dom = await runGuest('cp-c', 112 * MiB);
    const cli = startVmferry({ address: cluster.address, host: A }, ['migrate', 'cp-c', B, '--live', '--bandwidth', '8']);
    await printed(cli, /perform +\d+%/);
    cli.child.kill('SIGINT');
    const r = await watch.race(cli.done);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/aborting job vmferry-job-/);
    expect(r.stderr).toMatch(/error: OperationAborted/);
    expect(r.stdout).toMatch(/migrate cp-c cp-a -> cp-b: aborted/);
    expect(await info(A, 'cp-c')).toMatchObject({ state: 'running', pid: dom.pid });
    expect(namesOf(await cluster.op(B, { op: 'list' }))).not.toContain('cp-c');
    expect(readdirSync(join(cluster.hosts.get(B)!.baseDir, 'run'))).toEqual([]);
    await removeGuest(A, 'cp-c');
  });

  it('aborts an xz save: exit 3, no image, the guest runs on', async () => {
    const dom = await runGuest('cp-s', 112 * MiB);
    const img = join(images, 'cp-s.img');
    const cli = startVmferry({ address: cluster.address, host: A }, ['save', 'cp-s', img, '--format', 'xz']);
    await printed(cli, /save cp-s: perform/);
    cli.child.kill('SIGINT');
    const r = await watch.race(cli.done);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/error: OperationAborted/);
    expect(existsSync(img)).toBe(false);
    expect(readdirSync(images)).toEqual([]);
    expect(await info(A, 'cp-s')).toMatchObject({ state: 'running', pid: dom.pid });
    await removeGuest(A, 'cp-s');
  });
});
