// Migration faults and refusals on real host workers and real QEMU: a
// destination whose CPUs cannot start (test-only injection), a workflow
// terminated mid-way (the auto-destroy reapers), native cancellation, a
// destination worker that dies during Perform, and requests refused with typed
// errors before anything changes (unsafe disk, snapshot metadata, same host, ABI
// or name change in the destination XML, a cookie over 16 KiB, an unknown host).
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHostConfig } from '../src/host/host-config.js';
import { HostRuntime } from '../src/host/host-runtime.js';
import { createMigrationActivities } from '../src/activities/migration-activities.js';
import { portsFor } from '../src/host/migration/ports.js';
import { isProcessAlive } from '../src/support/proc.js';
import { isVmError } from '../src/common/errors.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, failureOf, namesOf, startMigration, waitForPerform } from './helpers/migration.js';

const cluster = new TestCluster();
const A = 'mf-a';
const B = 'mf-b';
/** Destination whose Finish cannot start CPUs. */
const X = 'mf-x';
/** Another worker with mf-a's host UUID: the same host under another name; as a source, its worker crashes once Perform has started the stream. */
const TWIN = 'mf-twin';
const HOST_A_UUID = randomUUID();
const MiB = 1024 * 1024;
const scratch = mkdtempSync(join(tmpdir(), 'vmf-mf-'));

const hostEnv = (min: number, extra: Record<string, string> = {}): Record<string, string> => ({
  VMFERRY_HOST_MIGRATION_PORT_MIN: String(min),
  VMFERRY_HOST_MIGRATION_PORT_MAX: String(min + 7),
  VMFERRY_AUTO_DESTROY_INTERVAL_MS: '500',
  ...extra,
});

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([
    cluster.startHost(A, hostEnv(49184, { VMFERRY_HOST_UUID: HOST_A_UUID })),
    cluster.startHost(B, hostEnv(49192)),
    cluster.startHost(X, hostEnv(49200, { VMFERRY_FAULTS: 'migrate.finish=fail' })),
    cluster.startHost(TWIN, hostEnv(49208, { VMFERRY_HOST_UUID: HOST_A_UUID, VMFERRY_FAULTS: 'migrate.perform=crash' })),
    cluster.startControl(),
  ]);
});

afterAll(async () => {
  await cluster.removeAllDomains([A, B, X, TWIN]);
  await cluster.stop();
  rmSync(scratch, { recursive: true, force: true });
});

async function runGuest(
  name: string,
  opts: { memoryMiB?: number; extraDevices?: string; description?: string; host?: string } = {},
): Promise<{ uuid: string; pid: number; ram: string }> {
  const host = opts.host ?? A;
  const uuid = randomUUID();
  let xml = guestXml({ name, uuid, memoryMiB: opts.memoryMiB ?? 64, extraDevices: opts.extraDevices });
  if (opts.description) xml = xml.replace('</uuid>', `</uuid>\n  <description>${opts.description}</description>`);
  await cluster.op(host, { op: 'define', xml });
  const started = domainOf(await cluster.op(host, { op: 'start', name }));
  return { uuid, pid: started.pid!, ram: started.memoryBackingFile! };
}

/** What a host still has in its run directory, and its job records (a migration's record lives in state/jobs). */
function runDirOf(host: string): string[] {
  const base = cluster.hosts.get(host)!.baseDir;
  return [...readdirSync(join(base, 'run')), ...jobRecordsOf(base).map((f) => `state/jobs/${f}`)];
}

function jobRecordsOf(baseDir: string): string[] {
  return existsSync(join(baseDir, 'state', 'jobs')) ? readdirSync(join(baseDir, 'state', 'jobs')) : [];
}

/** The source is untouched: same QEMU, running, not busy (a suspend/resume goes through). */
async function expectSourceRunning(name: string, pid: number): Promise<void> {
  expect(domainOf(await cluster.op(A, { op: 'info', name }))).toMatchObject({ state: 'running', pid });
  expect(domainOf(await cluster.op(A, { op: 'suspend', name })).state).toBe('paused');
  expect(domainOf(await cluster.op(A, { op: 'resume', name })).state).toBe('running');
}

describe('migration faults', () => {
  it('a destination whose CPUs fail to start is killed and the source resumed; the error names Finish', async () => {
    const g = await runGuest('f1');
    const handle = await startMigration(cluster.client, {
      domain: 'f1',
      domainUuid: g.uuid,
      sourceHost: A,
      destinationHost: X,
      flags: ['live', 'persist-dest'],
    });
    const failure = await failureOf(handle.result());
    expect(failure.type).toBe('OperationFailed');
    expect(failure.message).toMatch(/^finish: cannot start CPUs on the destination: test fault injected at migrate.finish/);
    expect(namesOf(await cluster.op(X, { op: 'list' }))).toEqual([]);
    expect(runDirOf(X)).toEqual([]);
    await expectSourceRunning('f1', g.pid);
    await cluster.op(A, { op: 'destroy', name: 'f1' });
    await cluster.op(A, { op: 'undefine', name: 'f1' });
  });

  it('a workflow terminated after Prepare: the reapers kill the incoming QEMU and undo the source', async () => {
    const g = await runGuest('f2', { memoryMiB: 96 });
    fillRandom(g.ram, 64 * MiB);
    const handle = await startMigration(cluster.client, {
      domain: 'f2',
      domainUuid: g.uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live'],
      bandwidthMiBps: 4,
    });
    await waitForPerform(handle);
    const incoming = domainOf(await cluster.op(B, { op: 'info', name: 'f2' }));
    expect(incoming.reason).toBe('incoming migration');
    // The source worker crashes (QEMU keeps streaming), then the workflow is terminated: nobody will Finish.
    await cluster.hosts.get(A)!.worker!.kill9();
    await handle.terminate('test: the workflow goes away without Finish');
    await waitFor('the reaper to kill the incoming QEMU', () => !isProcessAlive(incoming.pid!), { timeoutMs: 15_000, intervalMs: 100 });
    await waitFor('the destination to forget f2', async () => !namesOf(await cluster.op(B, { op: 'list' })).includes('f2'), {
      timeoutMs: 10_000,
      intervalMs: 200,
    });
    expect(runDirOf(B)).toEqual([]);
    // The restarted source worker finds its half of the dead job and undoes it.
    await cluster.startHost(A);
    await waitFor('the source reaper to end the job', () => !jobRecordsOf(cluster.hosts.get(A)!.baseDir).includes('f2.json'), {
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    await expectSourceRunning('f2', g.pid);

    // Native workflow cancellation is a cancel too.
    const second = await startMigration(cluster.client, {
      domain: 'f2',
      domainUuid: g.uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live'],
      bandwidthMiBps: 4,
    });
    await waitForPerform(second);
    await second.cancel();
    expect((await failureOf(second.result())).type).toBe('OperationAborted');
    await expectSourceRunning('f2', g.pid);
    expect(namesOf(await cluster.op(B, { op: 'list' }))).toEqual([]);
    await cluster.op(A, { op: 'destroy', name: 'f2' });
    await cluster.op(A, { op: 'undefine', name: 'f2' });
  });

  it('a destination whose worker dies during Perform cancels the migration; the source keeps running', async () => {
    const g = await runGuest('f4', { memoryMiB: 128 });
    fillRandom(g.ram, 96 * MiB);
    const handle = await startMigration(cluster.client, {
      domain: 'f4',
      domainUuid: g.uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live'],
      bandwidthMiBps: 4,
    });
    await waitForPerform(handle);
    await cluster.hosts.get(B)!.worker!.kill9();
    // The destination's watch stops heartbeating; Perform is cancelled and the source undone while B is still down.
    await waitFor('the source to be undone', async () => domainOf(await cluster.op(A, { op: 'info', name: 'f4' })).reason === 'migration-canceled', {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    await cluster.startHost(B);
    const failure = await failureOf(handle.result());
    expect(failure.type).toBe('OperationFailed');
    expect(failure.message).toMatch(/^perform: destination host 'mf-b' was lost/);
    await expectSourceRunning('f4', g.pid);
    expect(namesOf(await cluster.op(B, { op: 'list' }))).toEqual([]);
    expect(runDirOf(B)).toEqual([]);
    await cluster.op(A, { op: 'destroy', name: 'f4' });
    await cluster.op(A, { op: 'undefine', name: 'f4' });
  });

  it('a source worker that crashes mid-stream is restarted and the migration completes', async () => {
    const g = await runGuest('f5', { memoryMiB: 96, host: TWIN });
    fillRandom(g.ram, 64 * MiB);
    const before = hashRange(g.ram, 64 * MiB);
    const twin = cluster.hosts.get(TWIN)!;
    const crashed = twin.worker!.exited;
    const handle = await startMigration(cluster.client, {
      domain: 'f5',
      domainUuid: g.uuid,
      sourceHost: TWIN,
      destinationHost: B,
      flags: ['live', 'persist-dest', 'undefine-source'],
    });
    await crashed;
    delete twin.env.VMFERRY_FAULTS;
    await cluster.startHost(TWIN);
    const r = await handle.result();
    expect(r.destination).toMatchObject({ state: 'running', host: B });
    expect(isProcessAlive(g.pid)).toBe(false);
    const onB = domainOf(await cluster.op(B, { op: 'info', name: 'f5' }));
    expect(hashRange(onB.memoryBackingFile!, 64 * MiB)).toBe(before);
    expect(namesOf(await cluster.op(TWIN, { op: 'list' }))).toEqual([]);
    expect(runDirOf(TWIN)).toEqual([]);
    await cluster.op(B, { op: 'destroy', name: 'f5' });
    await cluster.op(B, { op: 'undefine', name: 'f5' });
  });

  it('refuses with typed errors and changes nothing: unsafe disk, same host, ABI change, rename without dname, oversized cookie, snapshots, unknown host', async () => {
    const disk = join(scratch, 'f3.img');
    closeSync(openSync(disk, 'w'));
    truncateSync(disk, MiB);
    const diskXml = `\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw' cache='writeback'/>\n      <source file='${disk}'/>\n      <target dev='hda' bus='ide'/>\n    </disk>`;
    const g = await runGuest('f3', { extraDevices: diskXml, description: 'x'.repeat(17 * 1024) });
    const base = { domain: 'f3', domainUuid: g.uuid, sourceHost: A, destinationHost: B };
    const refused = async (input: Parameters<typeof startMigration>[1], type: string, message: RegExp): Promise<void> => {
      const failure = await failureOf((await startMigration(cluster.client, input)).result());
      expect(failure.type, failure.message).toBe(type);
      expect(failure.message).toMatch(message);
    };

    await refused({ ...base, flags: ['live'] }, 'MigrateUnsafe', /disk hda uses cache mode 'writeback'/);
    await refused({ ...base, destinationHost: TWIN, flags: ['live', 'unsafe'] }, 'OperationInvalid', /same host/);
    const dumped = await cluster.op(A, { op: 'dumpxml', name: 'f3', migratable: true });
    const xml = 'xml' in dumped ? dumped.xml : '';
    await refused(
      { ...base, flags: ['live', 'unsafe'], destinationXml: xml.replace(/<vcpu([^>]*)>1</, '<vcpu$1>2<') },
      'ConfigUnsupported',
      /vCPU count 2 does not match source 1/,
    );
    await refused(
      { ...base, flags: ['live', 'unsafe'], destinationXml: xml.replace('<name>f3</name>', '<name>f3-renamed</name>') },
      'OperationInvalid',
      /name 'f3-renamed' does not match source 'f3'/,
    );
    // The persistent definition (17 KiB of description) cannot travel in a 16 KiB cookie.
    await refused({ ...base, flags: ['live', 'unsafe', 'persist-dest'] }, 'OperationInvalid', /over the 16384-byte limit/);
    const snapshots = join(cluster.hosts.get(A)!.baseDir, 'state', 'snapshots', 'f3');
    mkdirSync(snapshots, { recursive: true });
    writeFileSync(join(snapshots, 'before-upgrade.xml'), '<domainsnapshot/>');
    await refused({ ...base, flags: ['live', 'unsafe'] }, 'OperationInvalid', /with 1 snapshot/);
    rmSync(join(cluster.hosts.get(A)!.baseDir, 'state', 'snapshots'), { recursive: true, force: true });
    await refused({ ...base, destinationHost: 'mf-nowhere', flags: ['live', 'unsafe'] }, 'OperationFailed', /no worker polls task queue host\/mf-nowhere/);

    await expectSourceRunning('f3', g.pid);
    for (const h of [B, TWIN]) expect(namesOf(await cluster.op(h, { op: 'list' }))).toEqual([]);

    // Accepted with unsafe, and renamed through dname with a matching destination XML.
    const ok = await startMigration(cluster.client, {
      ...base,
      flags: ['live', 'unsafe'],
      dname: 'f3-renamed',
      destinationXml: xml.replace('<name>f3</name>', '<name>f3-renamed</name>'),
    });
    expect((await ok.result()).destination).toMatchObject({ name: 'f3-renamed', state: 'running', host: B });
    expect(isProcessAlive(g.pid)).toBe(false);
    await cluster.op(B, { op: 'destroy', name: 'f3-renamed' });
    await cluster.op(A, { op: 'undefine', name: 'f3' });
  });

  it('Prepare refuses a hostile cookie before anything starts', async () => {
    const base = mkdtempSync(join(tmpdir(), 'vmf-prep-'));
    const rt = new HostRuntime(
      loadHostConfig({ VMFERRY_HOST_NAME: 'mf-local', VMFERRY_HOST_BASE_DIR: base, VMFERRY_HOST_MEMORY_DIR: join(base, 'mem') }),
      pino({ level: 'silent' }),
    );
    try {
      const acts = createMigrationActivities(rt);
      const uuid = randomUUID();
      const args = {
        jobId: 'job-1',
        workflowId: 'wf',
        runId: 'run',
        domain: 'h1',
        uuid,
        xml: guestXml({ name: 'h1', uuid }),
        flags: [],
        sourceHostUuid: randomUUID(),
        protocol: 3 as const,
      };
      for (const [cookie, type] of [
        [`<qemu-migration><name>h1</name>${' '.repeat(17 * 1024)}</qemu-migration>`, 'XmlError'],
        ['<qemu-migration><name>h1</name>', 'XmlError'],
        [
          `<qemu-migration><name>other</name><uuid>${uuid}</uuid><hostname>x</hostname><hostuuid>${randomUUID()}</hostuuid></qemu-migration>`,
          'OperationInvalid',
        ],
      ] as const) {
        const err = await acts.migratePrepare({ ...args, cookie }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isVmError(err, type), String(err)).toBe(true);
      }
      expect(rt.list()).toEqual([]);
      expect(portsFor(rt).owned().size).toBe(0);
      expect(readdirSync(rt.config.runDir)).toEqual([]);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
