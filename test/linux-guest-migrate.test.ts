// The Linux test guest under vmferry, end to end (real Temporal, real QEMU TCG): two host
// workers, each running inside its host's network namespace, whose bridges are joined into
// one segment (a real cluster names its bridges alike, so both are called BRIDGE); the guest
// is defined through vmferry with a bridge <interface> (the worker makes the tap), a virtio
// disk on storage both hosts see (one file path) and a file serial (append='on': the
// destination QEMU opens the same log). A client in a third namespace streams the guest's
// counter while the guest migrates live, direct A -> B and then tunnelled B -> A, and while it
// is saved and restored: the TCP connection survives, the sequence has no gap, the longest
// pause is printed, every disk write the guest acknowledged is on disk afterwards, and the
// destination's bridge sees QEMU's self-announce (RARP from the guest's MAC).
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrateFlag } from '../src/common/migration-types.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { TestCluster } from './helpers/cluster.js';
import { createGuestNetwork, type GuestNetwork } from './helpers/guest-network.js';
import {
  checkDiskRecords,
  connectCounter,
  guestCmdline,
  lastDiskAck,
  linuxGuest,
  linuxGuestXml,
  waitForSerial,
  type CounterClient,
} from './helpers/linux-guest.js';
import { domainOf, failureOf, jobInfo, performHeartbeat, postcopyHeartbeat, startMigration, waitForPerform } from './helpers/migration.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { vmferry } from './helpers/vmferry-cli.js';
import { BUILTIN_POLICIES, type ConvergencePolicy } from '../src/common/convergence-policy.js';
import { setPolicyUpdate } from '../src/common/convergence-messages.js';
import { jobInfoQuery } from '../src/common/job-messages.js';
import type { JobInfo } from '../src/common/job-types.js';
import { waitFor } from '../src/support/wait.js';
import { createNetnsPair, type NetnsPair } from './helpers/netns.js';
import { runJob } from './helpers/save.js';
import { forwardTcp, type TcpForward } from './helpers/tcp-forward.js';
import { makeCa, makeHostCert, tunnelEnv } from './helpers/tunnel-certs.js';
import { tcpdumpListening } from './helpers/tcpdump.js';

const MiB = 1024 * 1024;
const A = 'lg-a';
const B = 'lg-b';
const HOST_A = A;
const HOST_B = B;
const PORT = 7453;
const NAME = 'lguest';
const MAC = '52:54:00:4c:47:42';
const BRIDGE = `vmfbr${process.pid % 10000}`;

const isRoot = process.getuid?.() === 0;
const cluster = new TestCluster();
const dir = mkdtempSync(join(tmpdir(), 'vmf-lg-migrate-'));
const disk = join(dir, 'disk.raw');
const serialLog = join(dir, 'serial.log');
let pair: NetnsPair | undefined;
let net: GuestNetwork | undefined;
let relay: TcpForward | undefined;
let client: CounterClient | undefined;
const uuid = randomUUID();
/** Where the guest runs between the tests. */
let home = A;

// host-model, not QEMU's default qemu64: with qemu64 (AMD family 15) the guest kernel takes the
// AMD E400 idle path, and after a live migration under TCG it panicked in 3 of 4 runs (a fatal
// exception in interrupt, rb_next from amd_e400_idle); with host-model (a named Intel model under
// TCG) 4 of 4 passed. Whether TCG or the guest kernel is at fault is not settled.
// memmap: a range of guest RAM the guest kernel leaves alone, which the host fills with random
// bytes through the shared backing file and hashes on both sides of the post-copy migration.
const KEPT_OFFSET = 128 * MiB;
const KEPT_LENGTH = 16 * MiB;

function domainXml(): string {
  return linuxGuestXml({
    name: NAME,
    uuid,
    memoryMiB: 256,
    sharedMemory: true,
    cmdline: `${guestCmdline({ ip: `${net!.guestAddr(0)}/${net!.prefixLen}`, disk: '/dev/vda', diskIntervalMs: 50, dirtyMib: 16, dirtyRateMibS: 8 })} memmap=16M$128M`,
    serialLog,
    disk: { path: disk, format: 'raw' },
    nic: { mac: MAC, bridge: BRIDGE },
  });
}

/** Taps on a host's bridge, as `ip` sees them inside its namespace. */
function tapsOn(ns: string): string[] {
  const r = spawnSync('ip', ['-n', ns, '-j', 'link', 'show', 'master', BRIDGE], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip link show failed: ${r.stderr}`);
  return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('vnet'));
}

/** RARP frames from the guest's MAC on a host's bridge while `during` runs (tcpdump in that namespace, stopped by PID). */
async function announcesDuring(ns: string, during: () => Promise<void>): Promise<string[]> {
  const child = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', BRIDGE, '-n', '-e', '-l', '-U', 'ether', 'proto', '0x8035', 'and', 'ether', 'src', MAC], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    await tcpdumpListening(child);
    await during();
    // QEMU's first announce round goes out 50 ms after the switchover; wait for it (deadline), not a fixed time.
    const deadline = Date.now() + 10_000;
    while (!out.includes(MAC) && Date.now() < deadline) await new Promise<void>((r) => child.stdout.once('data', () => r()) && setTimeout(r, 500));
  } finally {
    child.kill('SIGINT');
    await closed;
  }
  return out.split('\n').filter((l) => l.includes(MAC));
}

beforeAll(async () => {
  if (!isRoot) return;
  pair = createNetnsPair();
  net = createGuestNetwork({ a: pair.a, b: pair.b }, { bridge: BRIDGE });
  truncateSync((writeFileSync(disk, ''), disk), 16 * 1024 * 1024);
  const [host, port] = cluster.address.split(':') as [string, string];
  relay = await forwardTcp([pair.mgmtRootA, pair.mgmtRootB], { host, port: Number(port) });
  const ca = makeCa(dir, 'lg-ca');
  await cluster.connect();
  await Promise.all([
    cluster.startHost(
      A,
      {
        ...tunnelEnv(`${pair.addrA}:${PORT}`, makeHostCert(dir, ca, A)),
        TEMPORAL_ADDRESS: `${pair.mgmtRootA}:${relay.port}`,
        VMFERRY_HOST_MIGRATION_ADDRESS: pair.addrA,
        // One file both hosts open: storage they share, so the disk is not copied.
        VMFERRY_SHARED_STORAGE_PATHS: dir,
        // A cut link stalls the post-copy stream silently: noticed after this, then paused for recovery.
        VMFERRY_MIGRATION_STALL_TIMEOUT_MS: '5000',
      },
      { commandPrefix: pair.prefix(pair.a) },
    ),
    cluster.startHost(
      B,
      {
        ...tunnelEnv(`${pair.addrB}:${PORT}`, makeHostCert(dir, ca, B)),
        TEMPORAL_ADDRESS: `${pair.mgmtRootB}:${relay.port}`,
        VMFERRY_HOST_MIGRATION_ADDRESS: pair.addrB,
        VMFERRY_SHARED_STORAGE_PATHS: dir,
        VMFERRY_MIGRATION_STALL_TIMEOUT_MS: '5000',
      },
      { commandPrefix: pair.prefix(pair.b) },
    ),
    cluster.startControl(),
  ]);
}, 120_000);

afterAll(async () => {
  await client?.close();
  if (isRoot) {
    await cluster.removeAllDomains([A, B]).catch(() => undefined);
    await cluster.stop();
  }
  await relay?.close();
  net?.destroy();
  pair?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function longestPause(samples: { at: number }[]): number {
  let pauseMs = 0;
  for (let i = 1; i < samples.length; i++) pauseMs = Math.max(pauseMs, samples[i]!.at - samples[i - 1]!.at);
  return pauseMs;
}

/** Every record the guest acknowledged so far must be on the disk (the image is shared: read it where it is). */
async function expectAckedOnDisk(what: string): Promise<number> {
  const acked = lastDiskAck(readFileSync(serialLog, 'utf8'));
  const check = await checkDiskRecords(disk, acked);
  console.log(`${what}: ${acked} disk records acknowledged, highest on disk ${check.highest}, ${check.missing.length} missing`);
  expect(acked).toBeGreaterThan(0);
  expect(check.missing).toEqual([]);
  return acked;
}

async function migrate(from: string, to: string, flags: MigrateFlag[]): Promise<{ pauseMs: number; announces: string[] }> {
  const before = client!.samples.length;
  const announces = await announcesDuring(to === A ? pair!.a : pair!.b, async () => {
    const handle = await startMigration(cluster.client, { domain: NAME, domainUuid: uuid, sourceHost: from, destinationHost: to, flags });
    const result = await handle.result();
    expect(result).toMatchObject({ domain: NAME, destination: { state: 'running', host: to } });
  });
  // The stream goes on from the destination: 100 more ticks (10 ms each) after the switchover.
  const last = client!.samples.at(-1)!.seq;
  await client!.waitForSeq(last + 100, 30_000).catch((err: unknown) => {
    const fdb = (ns: string) => spawnSync('bridge', ['-n', ns, 'fdb', 'show', 'br', BRIDGE], { encoding: 'utf8' }).stdout;
    console.log(
      `on failure: announces ${JSON.stringify(announces)}\nA fdb ${fdb(pair!.a)}\nB fdb ${fdb(pair!.b)}\nA taps ${tapsOn(pair!.a)} B taps ${tapsOn(pair!.b)}\nserial tail ${readFileSync(serialLog, 'utf8').slice(-4000)}`,
    );
    const c = net!.prefix(net!.client);
    const ping = spawnSync(c[0]!, [...c.slice(1), 'ping', '-c', '2', '-W', '1', net!.guestAddr(0)], { encoding: 'utf8' }).stdout;
    const ss = spawnSync(c[0]!, [...c.slice(1), 'ss', '-tnoi'], { encoding: 'utf8' }).stdout;
    console.log(`on failure: last sample at ${new Date(client!.samples.at(-1)!.at).toISOString()} now ${new Date().toISOString()}\nping ${ping}\nss ${ss}`);
    throw err;
  });
  const during = client!.samples.slice(Math.max(0, before - 1));
  let pauseMs = 0;
  for (let i = 1; i < during.length; i++) pauseMs = Math.max(pauseMs, during[i]!.at - during[i - 1]!.at);
  return { pauseMs, announces };
}

/**
 * A migration A -> B under `policy`, whose timeout action is suspend: at the timeout the source's
 * QEMU is seen paused (its worker's state, sampled, and the worker's log of the suspend for this
 * job) while the job still runs, then the job completes with the guest running on B and its
 * counter going on. Returns when each happened and the longest pause of the counter.
 */
async function suspendThenComplete(
  policy: ConvergencePolicy,
  bandwidthMiBps: number,
): Promise<{ startedAt: number; pausedAt: number; endedAt: number; pauseMs: number; info: JobInfo }> {
  const before = client!.samples.length;
  const startedAt = Date.now();
  const handle = await startMigration(cluster.client, {
    domain: NAME,
    domainUuid: uuid,
    sourceHost: A,
    destinationHost: B,
    flags: ['live'],
    bandwidthMiBps,
    policy,
  });
  let ended = false;
  const result = handle.result().finally(() => (ended = true));
  // The deadline covers the completion timeout (40 s per GiB of 256 MiB: 10 s) and a loaded machine.
  await waitFor(
    'the source paused by the policy while the job runs',
    async () => {
      if (ended) return true;
      return domainOf(await cluster.op(A, { op: 'info', name: NAME })).state === 'paused';
    },
    { timeoutMs: 90_000, intervalMs: 100 },
  );
  const pausedAt = Date.now();
  expect(ended, 'the job was still running when the source was seen paused').toBe(false);
  expect(domainOf(await cluster.op(A, { op: 'info', name: NAME }))).toMatchObject({ state: 'paused', reason: 'migration' });
  const done = await result;
  const endedAt = Date.now();
  expect(done).toMatchObject({ domain: NAME, destination: { state: 'running', host: B } });
  const info = await jobInfo(handle);
  expect(info).toMatchObject({ status: 'completed', policy: policy.name, policyStep: expect.stringMatching(/timed out: not complete after \d+ s/) });
  const line = cluster.hosts
    .get(A)!
    .worker!.logs.find(
      (l) => l.msg === 'convergence timeout: guest suspended on the source so the migration can complete' && String(l.job).startsWith(`${handle.workflowId}/`),
    );
  expect(line, 'the source worker logged the suspend of this job').toBeDefined();
  expect(Number(line!.time)).toBeGreaterThanOrEqual(startedAt + 9_000);
  expect(Number(line!.time)).toBeLessThanOrEqual(pausedAt);
  // The counter goes on from B: the guest was resumed there.
  await client!.waitForSeq(client!.samples.at(-1)!.seq + 100, 30_000);
  expect(client!.report().gaps).toEqual([]);
  expect(domainOf(await cluster.op(B, { op: 'info', name: NAME })).state).toBe('running');
  return { startedAt, pausedAt, endedAt, pauseMs: longestPause(client!.samples.slice(Math.max(0, before - 1))), info };
}

describe.skipIf(!isRoot)('the Linux guest under vmferry across two hosts (namespaces, bridged segment)', () => {
  it('keeps its TCP counter stream and every acknowledged disk write through a direct and a tunnelled live migration, and announces itself on the destination bridge', async () => {
    const defined = await cluster.op(A, { op: 'define', xml: domainXml() });
    expect(defined).toMatchObject({ domain: { name: NAME } });
    const started = domainOf(await cluster.op(A, { op: 'start', name: NAME }));
    expect(started.state).toBe('running');
    // The worker made the tap on host A's bridge, none on B.
    expect(tapsOn(pair!.a)).toHaveLength(1);
    expect(tapsOn(pair!.b)).toEqual([]);
    const ready = await waitForSerial(serialLog, /^VMFERRY-GUEST-(READY|FAILED).*$/m, 120_000);
    expect(ready).not.toMatch(/VMFERRY-GUEST-FAILED/);

    client = connectCounter(net!.prefix(net!.client), net!.guestAddr(0));
    const first = await client.next(30_000);
    await client.waitForSeq(first.seq + 100, 30_000);

    const direct = await migrate(A, B, ['live', 'persist-dest', 'undefine-source']);
    expect(tapsOn(pair!.b)).toHaveLength(1);
    // Confirm on the source removed the tap the source's worker made.
    expect(tapsOn(pair!.a)).toEqual([]);
    expect(direct.announces.length).toBeGreaterThan(0);
    await expectAckedOnDisk('after the direct migration');

    const tunnelled = await migrate(B, A, ['live', 'persist-dest', 'undefine-source', 'tunnelled']);
    expect(tapsOn(pair!.a)).toHaveLength(1);
    expect(tapsOn(pair!.b)).toEqual([]);
    expect(tunnelled.announces.length).toBeGreaterThan(0);
    await expectAckedOnDisk('after the tunnelled migration');

    const report = client.report();
    console.log(
      `Linux guest live migration (TCG, 256 MiB, dirtying 8 MiB/s): longest TCP pause direct ${direct.pauseMs.toFixed(1)} ms, ` +
        `tunnelled ${tunnelled.pauseMs.toFixed(1)} ms; ${report.count} lines, seq ${report.firstSeq}..${report.lastSeq}; ` +
        `self-announce frames on the destination bridge: ${direct.announces.length} / ${tunnelled.announces.length}`,
    );
    // One connection all along, and not one line lost.
    expect(report.gaps).toEqual([]);
    expect(await Promise.race([client.ended, Promise.resolve('open')])).toBe('open');
  });

  it('convergence policies, with the guest dirtying memory as fast as the link moves it: a timeout with action abort rolls back with the source running; with action suspend it completes, the guest paused on the source then resumed on the destination; the default policy completes it', async () => {
    expect(client, 'the migration test ran first').toBeDefined();
    const bandwidthMiBps = 8;
    // No schedule, a completion timeout (60 s per GiB: 15 s for 256 MiB), action abort.
    const giveUp: ConvergencePolicy = { ...BUILTIN_POLICIES.none!, name: 'give-up', completionTimeoutSecondsPerGiB: 60, timeoutAction: 'abort' };
    const before = client!.samples.length;
    const h1 = await startMigration(cluster.client, {
      domain: NAME,
      domainUuid: uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live'],
      bandwidthMiBps,
      policy: giveUp,
    });
    await waitForPerform(h1, 60_000);
    // A policy changed mid-run is in the source's QEMU when the Update answers (QEMU's own value shows in Perform's next heartbeat).
    const t0 = Date.now();
    const change = await h1.executeUpdate(setPolicyUpdate, { args: [{ ...giveUp, initialMaxDowntimeMs: 250 }] });
    const updateMs = Date.now() - t0;
    expect(change).toMatchObject({ policy: 'give-up', maxDowntimeMs: 250 });
    // Under a loaded CI machine the control step's round trip alone can pass a second: bound it loosely, print it.
    expect(updateMs).toBeLessThan(5000);
    await waitFor('QEMU downtime-limit 250 in the heartbeat', async () => (await performHeartbeat(h1))?.maxDowntimeMs === 250, {
      timeoutMs: 10_000,
      intervalMs: 100,
    });
    const f = await failureOf(h1.result());
    expect(f).toMatchObject({ type: 'OperationTimeout', message: expect.stringMatching(/did not converge: not complete after \d+ s \(60 s per GiB\)/) });
    expect(domainOf(await cluster.op(A, { op: 'info', name: NAME })).state).toBe('running');
    await client!.waitForSeq(client!.samples.at(-1)!.seq + 100, 30_000);
    const timedOut = (await h1.query(jobInfoQuery)) as JobInfo;
    console.log(`policy give-up: ${f.message}; ${timedOut.iterations} passes; setPolicy answered in ${updateMs} ms`);

    // The same timeout with action suspend: the guest stops dirtying on the source, the stream converges, B runs it.
    const stopAndGo: ConvergencePolicy = { ...giveUp, name: 'stop-and-go', completionTimeoutSecondsPerGiB: 40, timeoutAction: 'suspend' };
    const suspended = await suspendThenComplete(stopAndGo, bandwidthMiBps);
    console.log(
      `policy stop-and-go (action suspend): source paused ${((suspended.pausedAt - suspended.startedAt) / 1000).toFixed(1)} s after the start, ` +
        `completed ${((suspended.endedAt - suspended.pausedAt) / 1000).toFixed(1)} s later; ${suspended.info.iterations} passes; longest TCP pause ${suspended.pauseMs.toFixed(0)} ms`,
    );

    // The default policy brings it back.
    const h2 = await startMigration(cluster.client, {
      domain: NAME,
      domainUuid: uuid,
      sourceHost: B,
      destinationHost: A,
      flags: ['live'],
      bandwidthMiBps,
      policy: 'default',
    });
    const result = await h2.result();
    expect(result).toMatchObject({ domain: NAME, destination: { state: 'running', host: A } });
    const done = (await h2.query(jobInfoQuery)) as JobInfo;
    await client!.waitForSeq(client!.samples.at(-1)!.seq + 100, 30_000);
    const during = client!.samples.slice(Math.max(0, before - 1));
    let pauseMs = 0;
    for (let i = 1; i < during.length; i++) pauseMs = Math.max(pauseMs, during[i]!.at - during[i - 1]!.at);
    console.log(
      `policy default at ${bandwidthMiBps} MiB/s with the guest dirtying 8 MiB/s: completed in ${result.stats.totalTimeMs} ms after ${done.iterations} passes, ` +
        `at "${done.policyStep}", throttle ${done.throttlePercent ?? 0} %, downtime ${result.stats.downtimeMs} ms; longest TCP pause ${pauseMs.toFixed(0)} ms`,
    );
    expect(done).toMatchObject({ policy: 'default', jobPercent: 100 });
    expect(client!.report().gaps).toEqual([]);
    home = A;
  });

  it('post-copy on request: the guest runs on the destination before the stream ends; a cut link pauses both sides, the job waits, and recovers once the link is back', async () => {
    expect(client, 'the migration test ran first').toBeDefined();
    // From wherever the guest is now (A, B below) to the other host, and back at the end.
    const [A, B] = home === HOST_A ? [HOST_A, HOST_B] : [HOST_B, HOST_A];
    const onA = domainOf(await cluster.op(A, { op: 'info', name: NAME }));
    fillRandom(onA.memoryBackingFile!, KEPT_LENGTH, KEPT_OFFSET);
    const kept = hashRange(onA.memoryBackingFile!, KEPT_LENGTH, KEPT_OFFSET);
    const cli = { address: cluster.address, host: A };
    // Slow on purpose, so the post-copy phase lasts long enough to watch and to break.
    const handle = await startMigration(cluster.client, {
      domain: NAME,
      domainUuid: uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live', 'postcopy', 'persist-dest', 'undefine-source'],
      bandwidthMiBps: 8,
      postcopyBandwidthMiBps: 3,
    });
    await waitForPerform(handle);
    // Both QEMUs (7.2) have postcopy-preempt and the stream is direct: faulted pages go on a channel of their own.
    const started = cluster.hosts.get(A)!.worker!.logs.filter((l) => l.msg === 'starting migration' && String(l.job).startsWith(`${handle.workflowId}/`));
    expect(started.at(-1)).toMatchObject({ postcopyPreempt: true });
    const switched = await vmferry(cli, 'migrate-postcopy', NAME);
    expect(switched.stdout + switched.stderr).toMatch(/post-copy requested/);
    expect(switched.code).toBe(0);

    // Finish has started the guest on B while the source still streams: its counter advances now.
    await waitFor('post-copy active after Finish', async () => (await jobInfo(handle)).phase === 'postcopy', { timeoutMs: 60_000, intervalMs: 100 });
    const atSwitch = client!.samples.at(-1)!.seq;
    await client!.waitForSeq(atSwitch + 50, 30_000);
    const midway = await postcopyHeartbeat(handle);
    expect(midway?.status).toBe('postcopy-active');
    expect(midway?.progress.memRemainingBytes ?? 0).toBeGreaterThan(0);
    expect(domainOf(await cluster.op(B, { op: 'info', name: NAME }))).toMatchObject({ state: 'running' });
    expect(domainOf(await cluster.op(A, { op: 'info', name: NAME }))).toMatchObject({ state: 'paused', reason: 'postcopy' });

    // The link goes down: no byte moves, the source notices, pauses its side and then the destination's.
    pair!.cut();
    let restored = false;
    let recoveredBy = '';
    try {
      await waitFor('post-copy paused', async () => (await jobInfo(handle)).phase === 'postcopy-paused', { timeoutMs: 60_000, intervalMs: 200 });
      const logs = (h: string, msg: string) => cluster.hosts.get(h)!.worker!.logs.filter((l) => l.msg === msg);
      await waitFor('the destination paused', async () => logs(B, 'incoming post-copy stream paused').length > 0, { timeoutMs: 20_000, intervalMs: 200 });
      expect(logs(B, 'incoming post-copy stream paused')[0]).toMatchObject({ status: 'postcopy-paused' });
      const info = await vmferry(cli, 'domjobinfo', NAME);
      // Between attempts the phase is postcopy-paused; while one runs, postcopy (state recovering).
      expect(info.stdout).toMatch(/Phase:\s+postcopy(-paused)?\n/);
      expect(info.stdout).toMatch(/Postcopy:\s+(paused|recovering)/);
      // It waits (attempts fail while the link is down); it neither fails nor gives the source back.
      await waitFor('a failed recovery attempt', async () => ((await jobInfo(handle)).postcopyRecoveries ?? 0) >= 1, { timeoutMs: 30_000, intervalMs: 200 });
      expect((await handle.describe()).status.name).toBe('RUNNING');
      expect(domainOf(await cluster.op(A, { op: 'info', name: NAME })).state).toBe('paused');

      pair!.restore();
      restored = true;
      const asked = await vmferry(cli, 'migrate-recover', NAME);
      // The job's own next attempt (its backoff is 2 s after the first failure) may recover the stream and end the
      // job before the CLI has started: then the CLI finds no job, and the job must have completed by itself.
      if (asked.code !== 0) {
        expect(asked.stderr).toMatch(/no job is active on domain/);
        expect(await jobInfo(handle)).toMatchObject({ status: 'completed', postcopyState: 'completed' });
      }
      recoveredBy = asked.code === 0 ? 'migrate-recover' : 'the job itself, before migrate-recover started';
    } finally {
      if (!restored) pair!.restore();
    }
    const result = await handle.result();
    expect(result).toMatchObject({ destination: { state: 'running', host: B }, stats: { postcopy: true } });
    const done = await jobInfo(handle);
    expect(done).toMatchObject({ status: 'completed', postcopyState: 'completed' });
    expect(done.postcopyRecoveries).toBeGreaterThanOrEqual(1);
    // The range the guest never touches came through the switch, the cut and the recovery intact.
    expect(hashRange(result.destination.memoryBackingFile!, KEPT_LENGTH, KEPT_OFFSET)).toBe(kept);
    const last = client!.samples.at(-1)!.seq;
    await client!.waitForSeq(last + 100, 30_000);
    expect(client!.report().gaps).toEqual([]);
    expect(await Promise.race([client!.ended, Promise.resolve('open')])).toBe('open');
    await expectAckedOnDisk('after the post-copy migration with a cut link');
    console.log(
      `post-copy with a cut link: ${done.postcopyRecoveries} recovery attempt(s), recovered by ${recoveredBy}, downtime at the switch ${result.measuredDowntimeMs ?? '?'} ms, ` +
        `longest TCP pause ${longestPause(client!.samples.filter((x) => x.seq >= atSwitch - 10)).toFixed(1)} ms`,
    );

    // Back to A after the first pre-copy pass (virsh --postcopy-after-precopy), at full speed.
    const back = await (
      await startMigration(cluster.client, {
        domain: NAME,
        domainUuid: uuid,
        sourceHost: B,
        destinationHost: A,
        flags: ['live', 'postcopy', 'postcopy-after-precopy', 'persist-dest', 'undefine-source'],
      })
    ).result();
    // Whether it switched depends on the pass racing the dirtier; migrate.test.ts asserts the switch on a guest that cannot converge first.
    expect(back).toMatchObject({ destination: { state: 'running', host: A } });
    expect(hashRange(back.destination.memoryBackingFile!, KEPT_LENGTH, KEPT_OFFSET)).toBe(kept);
    await client!.waitForSeq(client!.samples.at(-1)!.seq + 100, 30_000);
    expect(client!.report().gaps).toEqual([]);
  });

  it('resumes the same TCP connection after save and restore, with no gap in the sequence', async () => {
    expect(client, 'the migration test ran first').toBeDefined();
    const path = join(dir, 'lguest.save');
    const before = client!.samples.length;
    const saved = await runJob<SaveResult>(cluster.client, 'save', uuid, { host: home, name: NAME, path });
    expect(saved).toMatchObject({ name: NAME });
    // The QEMU is gone, and with it the tap its worker made.
    expect(tapsOn(home === A ? pair!.a : pair!.b)).toEqual([]);
    const acked = await expectAckedOnDisk('after save');
    const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: home, path });
    expect(restored.domain).toMatchObject({ name: NAME, state: 'running' });
    expect(tapsOn(home === A ? pair!.a : pair!.b)).toHaveLength(1);
    const last = client!.samples.at(-1)!.seq;
    await client!.waitForSeq(last + 100, 60_000);
    const during = client!.samples.slice(Math.max(0, before - 1));
    let pauseMs = 0;
    for (let i = 1; i < during.length; i++) pauseMs = Math.max(pauseMs, during[i]!.at - during[i - 1]!.at);
    console.log(`save/restore: the same TCP connection resumed; longest pause ${pauseMs.toFixed(1)} ms`);
    expect(client!.report().gaps).toEqual([]);
    expect(await Promise.race([client!.ended, Promise.resolve('open')])).toBe('open');
    // The guest writes on after the restore: a record past the last one acknowledged before the save.
    await waitFor('a disk write acknowledged after the restore', () => lastDiskAck(readFileSync(serialLog, 'utf8')) > acked, {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    rmSync(path, { force: true });

    await client!.close();
    client = undefined;
    expect(domainOf(await cluster.op(home, { op: 'destroy', name: NAME })).state).toBe('shutoff');
    expect(tapsOn(home === A ? pair!.a : pair!.b)).toEqual([]);
    // Nothing of the guest's network left in either worker's run directory.
    for (const h of [A, B]) {
      const run = join(cluster.hosts.get(h)!.baseDir, 'run');
      expect(existsSync(run) ? readdirSync(run).filter((f) => f.endsWith('.taps')) : []).toEqual([]);
    }
  });
});
