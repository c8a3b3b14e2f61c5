// Live migration through Temporal between real host workers running real QEMU:
// v3 with persist-dest and undefine-source, v2 to a v2-only host, post-copy,
// compression and auto-converge, a paused guest, offline, and job control during
// Perform (read-only queries, setSpeed, setMaxDowntime, a refused second job,
// cancel), and parallel (multifd) from the CLI.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { isProcessAlive } from '../src/support/proc.js';
import { cancelSignal, setMaxDowntimeSignal, setSpeedSignal } from '../src/common/job-messages.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, failureOf, jobInfo, namesOf, performHeartbeat, startMigration, switchToPostcopy, waitForPerform } from './helpers/migration.js';
import { runJob } from './helpers/save.js';
import { capture, tcpPorts } from './helpers/tcpdump.js';
import { vmferry } from './helpers/vmferry-cli.js';
import type { MigrateResult } from '../src/common/migration-types.js';
import type { SaveResult } from '../src/common/save-types.js';

const cluster = new TestCluster();
const A = 'mig-a';
const B = 'mig-b';
const C = 'mig-c';
const MiB = 1024 * 1024;
const SPICE = "\n    <graphics type='spice' autoport='yes' listen='127.0.0.1'/>";

const hostEnv = (min: number, extra: Record<string, string> = {}): Record<string, string> => ({
  VMFERRY_HOST_MIGRATION_PORT_MIN: String(min),
  VMFERRY_HOST_MIGRATION_PORT_MAX: String(min + 7),
  ...extra,
});

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([
    cluster.startHost(A, hostEnv(49160)),
    cluster.startHost(B, hostEnv(49168)),
    cluster.startHost(C, hostEnv(49176, { VMFERRY_HOST_PROTOCOLS: '2' })),
    cluster.startControl(),
  ]);
});

afterAll(async () => {
  await cluster.removeAllDomains([A, B, C]);
  await cluster.stop();
});

async function runGuest(host: string, name: string, memoryMiB: number, extraDevices = ''): Promise<{ uuid: string; pid: number; ram: string }> {
  const uuid = randomUUID();
  await cluster.op(host, { op: 'define', xml: guestXml({ name, uuid, memoryMiB, extraDevices }) });
  const started = domainOf(await cluster.op(host, { op: 'start', name }));
  return { uuid, pid: started.pid!, ram: started.memoryBackingFile! };
}

function runDirOf(host: string): string[] {
  return readdirSync(join(cluster.hosts.get(host)!.baseDir, 'run'));
}

describe('live migration', () => {
  it('v3: moves a random-RAM guest with persist-dest and undefine-source; then v2 to a v2-only host', async () => {
    const g = await runGuest(A, 'm1', 256, SPICE);
    const fill = 192 * MiB;
    fillRandom(g.ram, fill);
    const before = hashRange(g.ram, fill);

    const handle = await startMigration(cluster.client, {
      domain: 'm1',
      domainUuid: g.uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live', 'persist-dest', 'undefine-source'],
    });
    const result = await handle.result();
    expect(result).toMatchObject({
      protocol: 3,
      domain: 'm1',
      persistent: true,
      sourceUndefined: true,
      destination: { state: 'running', reason: 'migrated', host: B },
    });
    expect(result.stats.transferredBytes).toBeGreaterThan(fill);
    expect(isProcessAlive(g.pid)).toBe(false);
    expect(namesOf(await cluster.op(A, { op: 'list' }))).not.toContain('m1');
    expect(runDirOf(A)).toEqual([]);
    expect(cluster.hosts.get(A)!.worker!.logs.some((l) => l.msg === 'SPICE clients told where the destination listens')).toBe(true);

    const onB = domainOf(await cluster.op(B, { op: 'info', name: 'm1' }));
    expect(onB).toMatchObject({ state: 'running', persistent: true });
    expect(onB.pid).not.toBe(g.pid);
    expect(hashRange(onB.memoryBackingFile!, fill)).toBe(before);
    const info = await jobInfo(handle);
    expect(info).toMatchObject({ status: 'completed', jobType: 'migrateOut', domainUuid: g.uuid });
    const history = await handle.fetchHistory();
    expect(history.events?.length ?? 0).toBeLessThan(100);

    // On to a host that speaks only v2: no cookies, the source goes away at the end of Perform.
    const v2 = await startMigration(cluster.client, { domain: 'm1', domainUuid: g.uuid, sourceHost: B, destinationHost: C, flags: ['live'] });
    const r2 = await v2.result();
    expect(r2).toMatchObject({ protocol: 2, destination: { state: 'running', host: C }, persistent: false });
    expect(isProcessAlive(onB.pid!)).toBe(false);
    const onC = domainOf(await cluster.op(C, { op: 'info', name: 'm1' }));
    expect(hashRange(onC.memoryBackingFile!, fill)).toBe(before);
    expect(domainOf(await cluster.op(B, { op: 'info', name: 'm1' }))).toMatchObject({ state: 'shutoff', persistent: true });
    expect(runDirOf(B)).toEqual([]);

    await cluster.op(C, { op: 'destroy', name: 'm1' });
    await cluster.op(B, { op: 'undefine', name: 'm1' });
    expect(runDirOf(C)).toEqual([]);
  });

  it('during a slow Perform: info and block stats answer, setSpeed reaches QEMU, a second job is refused, cancel restores the source', async () => {
    // A read-only disk on "shared" storage (one file both hosts see) gives block stats something to count.
    const disk = join(cluster.root, 'm2-ro.img');
    writeFileSync(disk, Buffer.alloc(1024 * 1024));
    const roDisk = `\n    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/><source file='${disk}'/><target dev='vdb' bus='virtio'/><readonly/></disk>`;
    const g = await runGuest(A, 'm2', 128, roDisk);
    fillRandom(g.ram, 96 * MiB);
    const handle = await startMigration(cluster.client, {
      domain: 'm2',
      domainUuid: g.uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live'],
      bandwidthMiBps: 8,
    });
    const hb = await waitForPerform(handle);
    expect(hb.speedLimitMiBps).toBe(8);

    const during = domainOf(await cluster.op(A, { op: 'info', name: 'm2' }));
    expect(during).toMatchObject({ state: 'running', reason: 'migrating', pid: g.pid });
    const blk = await cluster.op(A, { op: 'blockstats', name: 'm2' });
    expect(blk).toMatchObject({ op: 'blockstats', stats: [expect.objectContaining({ device: 'vdb', wrBytes: 0 })] });

    await expect(startMigration(cluster.client, { domain: 'm2', domainUuid: g.uuid, sourceHost: A, destinationHost: C })).rejects.toBeInstanceOf(
      WorkflowExecutionAlreadyStartedError,
    );

    const signalled = Date.now();
    await handle.signal(setSpeedSignal, 16);
    await waitFor('query-migrate-parameters to show 16 MiB/s', async () => (await performHeartbeat(handle))?.speedLimitMiBps === 16, {
      timeoutMs: 5000,
      intervalMs: 50,
    });
    expect(Date.now() - signalled).toBeLessThan(3000);
    expect((await jobInfo(handle)).speedLimitMiBps).toBe(16);
    await handle.signal(setMaxDowntimeSignal, 1234);
    await waitFor('query-migrate-parameters to show 1234 ms', async () => (await performHeartbeat(handle))?.maxDowntimeMs === 1234, {
      timeoutMs: 5000,
      intervalMs: 50,
    });

    await handle.signal(cancelSignal);
    const failure = await failureOf(handle.result());
    expect(failure.type).toBe('OperationAborted');
    expect(failure.message).toMatch(/^perform:/);
    expect((await jobInfo(handle)).status).toBe('cancelled');

    expect(domainOf(await cluster.op(A, { op: 'info', name: 'm2' }))).toMatchObject({ state: 'running', pid: g.pid });
    expect(namesOf(await cluster.op(B, { op: 'list' }))).not.toContain('m2');
    expect(runDirOf(B)).toEqual([]);

    // Nothing was left held: the same migration now goes through, to the same destination.
    const again = await startMigration(cluster.client, { domain: 'm2', domainUuid: g.uuid, sourceHost: A, destinationHost: B, flags: ['live'] });
    expect((await again.result()).destination.state).toBe('running');
    await cluster.op(B, { op: 'destroy', name: 'm2' });
    await cluster.op(A, { op: 'undefine', name: 'm2' });
  });

  it('post-copy, then compressed with auto-converge of a paused guest, which stays paused', async () => {
    const g = await runGuest(A, 'm4', 96);
    fillRandom(g.ram, 64 * MiB);
    const before = hashRange(g.ram, 64 * MiB);
    // 64 MiB at 16 MiB/s: the switch lands in the first pass.
    const handle = await startMigration(cluster.client, {
      domain: 'm4',
      domainUuid: g.uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live', 'postcopy'],
      bandwidthMiBps: 16,
    });
    expect((await switchToPostcopy(handle)).postcopy).toMatch(/requested|active/);
    const there = await handle.result();
    expect(there.stats.postcopy).toBe(true);
    expect(there.destination.state).toBe('running');
    await cluster.op(B, { op: 'suspend', name: 'm4' });
    const back = await (
      await startMigration(cluster.client, {
        domain: 'm4',
        domainUuid: g.uuid,
        sourceHost: B,
        destinationHost: A,
        flags: ['live', 'compressed', 'auto-converge'],
      })
    ).result();
    expect(back.destination).toMatchObject({ state: 'paused', reason: 'user', host: A });
    expect(hashRange(back.destination.memoryBackingFile!, 64 * MiB)).toBe(before);
    await cluster.op(A, { op: 'destroy', name: 'm4' });
    await cluster.op(A, { op: 'undefine', name: 'm4' });
  });

  it('--parallel --parallel-connections 4 from the CLI: 5 connections (main + 4 multifd), the destination QEMU ran multifd with 4 channels, RAM identical; multifd is off again there (a save works)', async () => {
    const g = await runGuest(A, 'm5', 256);
    const fill = 192 * MiB;
    fillRandom(g.ram, fill);
    const before = hashRange(g.ram, fill);
    const dir = mkdtempSync(join(tmpdir(), 'vmf-mfd-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    let result: MigrateResult | undefined;
    // Only the connection openings (SYN without ACK) to B's migration ports: how many connections the stream took.
    const file = join(dir, 'syn.pcap');
    const syns = await capture(
      ['tcpdump', '-i', 'lo', '-U', '-w', file, 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst portrange 49168-49175'],
      file,
      async () => {
        const cli = await vmferry({ address: cluster.address, host: A }, 'migrate', 'm5', B, '--live', '--parallel', '--parallel-connections', '4', '--json');
        expect(cli.code, cli.stderr).toBe(0);
        result = JSON.parse(cli.stdout) as MigrateResult;
      },
    );
    expect(result).toMatchObject({ destination: { state: 'running', host: B }, parallelConnections: 4 });
    expect(new Set(tcpPorts(syns).map((p) => p.src)).size).toBe(5);
    expect(cluster.hosts.get(B)!.worker!.logs.filter((l) => l.msg === 'parallel migration received' && l.domain === 'm5')).toMatchObject([
      { multifd: true, channels: 4 },
    ]);
    const onB = domainOf(await cluster.op(B, { op: 'info', name: 'm5' }));
    expect(hashRange(onB.memoryBackingFile!, fill)).toBe(before);
    // QEMU refuses a save to one descriptor while multifd is on: Finish turned it off.
    const saved = await runJob<SaveResult>(cluster.client, 'save', g.uuid, { host: B, name: 'm5', path: join(dir, 'm5.save'), format: 'raw' });
    expect(saved).toMatchObject({ name: 'm5' });
    await cluster.op(A, { op: 'undefine', name: 'm5' });
  });

  it('offline: only the persistent definition moves', async () => {
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'm3', uuid }) });
    const handle = await startMigration(cluster.client, {
      domain: 'm3',
      domainUuid: uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['offline', 'persist-dest', 'undefine-source'],
    });
    const r = await handle.result();
    expect(r).toMatchObject({ protocol: 3, persistent: true, sourceUndefined: true, destination: { state: 'shutoff', persistent: true } });
    expect(namesOf(await cluster.op(A, { op: 'list' }))).not.toContain('m3');
    expect(existsSync(join(cluster.hosts.get(B)!.baseDir, 'state', 'domains', 'm3.xml'))).toBe(true);
    await cluster.op(B, { op: 'undefine', name: 'm3' });
  });
});
