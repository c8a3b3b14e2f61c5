// CPU models across hosts, through Temporal with real QEMU (TCG): a host-model
// guest is started as the custom CPU that stands for its host (its live XML
// says so, its persistent XML keeps host-model), and that CPU is what the
// image holds and the destination runs: the CPU identity the guest sees
// (vendor, family, model, stepping, model-id of its vCPU) is the same before
// and after a save/restore and a migration. A destination whose QEMU cannot
// run that CPU is refused at Prepare with nothing changed on either side. That
// destination is real, not a fake: its host worker runs this machine's
// qemu-system-i386, which has no long mode, so its probe lists `lm` and
// `syscall` among every x86-64 model's unavailable features.
//
// The same host also lacks what a migration needs of its QEMU (host capabilities,
// README "QEMU capabilities"): its worker hides the versioned machine type `pc`
// stands for (pc-i440fx-X.Y, the type the guests run), post-copy and multifd from its
// probe (the test-only VMFERRY_HOST_QEMU_HIDE), so a migration there is refused at
// Prepare naming what it lacks, and `vmferry capabilities` shows how the two hosts differ.
//
// The vCPU is read over the guest's own QMP socket, which takes one client:
// the host worker is stopped for the read (QEMU keeps running, as on any
// worker restart) and started again, reattaching to the guest.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { parseDomainXml } from '../src/domain/index.js';
import { QmpClient } from '../src/qemu/qmp-client.js';
import { readSaveHeader } from '../src/saveimage/header.js';
import { isProcessAlive } from '../src/support/proc.js';
import { which } from '../src/support/which.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, failureOf, namesOf, startMigration } from './helpers/migration.js';
import { runJob } from './helpers/save.js';
import { vmferry } from './helpers/vmferry-cli.js';
import type { HostQemuInfo } from '../src/common/domain-types.js';
import { inventoryQuery, inventoryWorkflowId } from '../src/common/inventory-types.js';

const cluster = new TestCluster();
const A = 'cpu-a';
const B = 'cpu-b';
/** Runs qemu-system-i386: no x86-64 CPU model can run there. */
const I386 = 'cpu-i386';
const HOST_MODEL = "<cpu mode='host-model'><model fallback='allow'/></cpu>";

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([
    cluster.startHost(A, { VMFERRY_HOST_MIGRATION_PORT_MIN: '49250', VMFERRY_HOST_MIGRATION_PORT_MAX: '49257' }),
    cluster.startHost(B, { VMFERRY_HOST_MIGRATION_PORT_MIN: '49258', VMFERRY_HOST_MIGRATION_PORT_MAX: '49265' }),
    cluster.startHost(I386, {
      VMFERRY_QEMU_BINARY: which('qemu-system-i386')!,
      VMFERRY_HOST_QEMU_HIDE: 'machine:pc,capability:postcopy-ram,capability:multifd',
      VMFERRY_HOST_MIGRATION_PORT_MIN: '49266',
      VMFERRY_HOST_MIGRATION_PORT_MAX: '49273',
    }),
    cluster.startControl(),
  ]);
});

afterAll(async () => {
  await cluster.removeAllDomains([A, B, I386]);
  await cluster.stop();
});

function hostModelGuest(name: string, uuid: string): string {
  return guestXml({ name, uuid, memoryMiB: 64 }).replace("  <clock offset='utc'/>", `  ${HOST_MODEL}\n  <clock offset='utc'/>`);
}

async function dumpxml(host: string, name: string, inactive = false): Promise<string> {
  const r = await cluster.op(host, { op: 'dumpxml', name, inactive });
  if (!('xml' in r)) throw new Error('no xml');
  return r.xml;
}

/** What a host's worker last reported of its QEMU (its inventory, which `vmferry capabilities` prints). */
async function reportedQemu(host: string): Promise<HostQemuInfo> {
  const view = await cluster.client.workflow.getHandle(inventoryWorkflowId(host)).query(inventoryQuery);
  expect(view?.hostInfo.qemu).toBeDefined();
  return view!.hostInfo.qemu!;
}

/** The versioned type `pc` stands for on A's QEMU: what a guest defined as `pc` runs and migrates as. */
async function versionedPc(): Promise<string> {
  const pc = (await reportedQemu(A)).machineAliases.pc;
  expect(pc).toMatch(/^pc-i440fx-\d+\.\d+$/);
  return pc!;
}

const escaped = (s: string): string => s.replace(/[.()]/g, '\\$&');

const IDENTITY = ['vendor', 'family', 'model', 'stepping', 'model-id'] as const;

/** The CPU identity the guest sees, read from its first vCPU while the host's worker is stopped. */
async function cpuIdentity(host: string, name: string): Promise<Record<string, unknown>> {
  const { qmpSocket } = domainOf(await cluster.op(host, { op: 'info', name }));
  const h = cluster.hosts.get(host)!;
  await h.worker!.stop();
  try {
    const qmp = await QmpClient.connect(qmpSocket!, { timeoutMs: 5000 });
    try {
      const path = (await qmp.execute<{ 'qom-path': string }[]>('query-cpus-fast'))[0]!['qom-path'];
      const out: Record<string, unknown> = {};
      for (const p of IDENTITY) out[p] = await qmp.execute('qom-get', { path, property: p });
      return out;
    } finally {
      await qmp.close();
    }
  } finally {
    await cluster.startHost(host);
  }
}

/** The live CPU of a freshly started host-model guest: expanded, with the persistent definition left as host-model. */
async function startedCpu(host: string, name: string) {
  const live = parseDomainXml(await dumpxml(host, name)).cpu!;
  expect(live).toMatchObject({ mode: 'custom', match: 'exact', check: 'partial', model: expect.any(String), fallback: 'forbid' });
  expect(live.features?.some((f) => f.policy === 'require' && f.name === 'avx2')).toBe(true);
  expect(parseDomainXml(await dumpxml(host, name, true)).cpu).toEqual({ mode: 'host-model', fallback: 'allow' });
  return live;
}

describe('host-model CPUs start as the concrete CPU that stands for the host, and leave as it', () => {
  it('save: the image holds the live CPU; restore runs it and the guest sees the same CPU identity', async () => {
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: hostModelGuest('hm-save', uuid) });
    await cluster.op(A, { op: 'start', name: 'hm-save' });
    const liveCpu = await startedCpu(A, 'hm-save');
    const before = await cpuIdentity(A, 'hm-save');
    const images = join(cluster.root, 'images');
    mkdirSync(images, { recursive: true });
    const path = join(images, 'hm-save.img');
    await runJob<SaveResult>(cluster.client, 'save', uuid, { host: A, name: 'hm-save', path, format: 'raw' });
    expect(parseDomainXml((await readSaveHeader(path)).domainXml).cpu).toEqual(liveCpu);
    await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: A, path });
    expect(parseDomainXml(await dumpxml(A, 'hm-save')).cpu).toEqual(liveCpu);
    // The persistent definition keeps host-model, as libvirt's does.
    expect(parseDomainXml(await dumpxml(A, 'hm-save', true)).cpu?.mode).toBe('host-model');
    expect(await cpuIdentity(A, 'hm-save')).toEqual(before);
    await cluster.op(A, { op: 'destroy', name: 'hm-save' });
    await cluster.op(A, { op: 'undefine', name: 'hm-save' });
  });

  it('migration: the destination runs the live CPU and the guest sees the same CPU identity; a destination that cannot run it is refused at Prepare, nothing changed', async () => {
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: hostModelGuest('hm-mig', uuid) });
    await cluster.op(A, { op: 'start', name: 'hm-mig' });
    const liveCpu = await startedCpu(A, 'hm-mig');
    const before = await cpuIdentity(A, 'hm-mig');
    const started = domainOf(await cluster.op(A, { op: 'info', name: 'hm-mig' }));

    const refused = await failureOf(
      (await startMigration(cluster.client, { domain: 'hm-mig', domainUuid: uuid, sourceHost: A, destinationHost: I386, flags: ['live'] })).result(),
    );
    expect(refused.type, refused.message).toBe('ConfigUnsupported');
    expect(refused.message).toMatch(/CPU model '[^']+' of domain 'hm-mig' cannot run on this host's QEMU .*qemu-system-i386.*unavailable features .*lm/);
    // Source untouched and still running; nothing on the destination: no domain, no QEMU, no file, no job record.
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'hm-mig' }))).toMatchObject({ state: 'running', pid: started.pid });
    expect(isProcessAlive(started.pid!)).toBe(true);
    expect(namesOf(await cluster.op(I386, { op: 'list' }))).toEqual([]);
    const base = cluster.hosts.get(I386)!.baseDir;
    expect(readdirSync(join(base, 'run')).filter((f) => f.startsWith('hm-mig'))).toEqual([]);
    const jobsDir = join(base, 'state', 'jobs');
    expect(existsSync(jobsDir) ? readdirSync(jobsDir) : []).toEqual([]);
    const memoryDir = cluster.hosts.get(I386)!.memoryDir;
    expect(existsSync(memoryDir) ? readdirSync(memoryDir) : []).toEqual([]);

    // The destination XML given is the persistent one: its host-model means the CPU the guest runs.
    const destinationXml = await dumpxml(A, 'hm-mig', true);
    const migration = await startMigration(cluster.client, {
      domain: 'hm-mig',
      domainUuid: uuid,
      sourceHost: A,
      destinationHost: B,
      flags: ['live'],
      destinationXml,
    });
    const result = await migration.result();
    expect(result.destination).toMatchObject({ state: 'running', host: B });
    expect(parseDomainXml(await dumpxml(B, 'hm-mig')).cpu).toEqual(liveCpu);
    // Defined as `pc`, it arrives pinned to the versioned type it ran as on A.
    expect(parseDomainXml(await dumpxml(A, 'hm-mig', true)).os.machine).toBe('pc');
    expect(parseDomainXml(await dumpxml(B, 'hm-mig')).os.machine).toBe(await versionedPc());
    expect(await cpuIdentity(B, 'hm-mig')).toEqual(before);
    await cluster.op(B, { op: 'destroy', name: 'hm-mig' });
  });

  it("a destination lacking the guest's machine type, post-copy and multifd (hidden from its probe by the test knob VMFERRY_HOST_QEMU_HIDE): refused at Prepare naming them, nothing changed; capabilities shows each host's QEMU", async () => {
    const pc = await versionedPc();
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'mt-mig', uuid, memoryMiB: 64 }) });
    await cluster.op(A, { op: 'start', name: 'mt-mig' });
    const started = domainOf(await cluster.op(A, { op: 'info', name: 'mt-mig' }));
    const refused = await failureOf(
      (
        await startMigration(cluster.client, { domain: 'mt-mig', domainUuid: uuid, sourceHost: A, destinationHost: I386, flags: ['live', 'postcopy'] })
      ).result(),
    );
    expect(refused.type, refused.message).toBe('ConfigUnsupported');
    expect(refused.message).toMatch(
      new RegExp(
        `destination host '${I386}' cannot take part in this migration: its QEMU [0-9.]+ \\(\\S*qemu-system-i386\\) ` +
          `lacks machine type '${escaped(pc)}', migration capability 'postcopy-ram' \\(for 'postcopy'\\)$`,
      ),
    );
    // A parallel migration needs multifd at both ends: the same refusal names it.
    const parallel = await failureOf(
      (
        await startMigration(cluster.client, { domain: 'mt-mig', domainUuid: uuid, sourceHost: A, destinationHost: I386, flags: ['live', 'parallel'] })
      ).result(),
    );
    expect(parallel.type, parallel.message).toBe('ConfigUnsupported');
    expect(parallel.message).toMatch(/lacks machine type '.*', migration capability 'multifd' \(for 'parallel' \(multifd\)\)$/);
    // The source guest runs on untouched, with no job left; nothing on the destination: no domain, QEMU, file or job record.
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'mt-mig' }))).toMatchObject({ state: 'running', pid: started.pid });
    expect(isProcessAlive(started.pid!)).toBe(true);
    expect(readdirSync(join(cluster.hosts.get(A)!.baseDir, 'state', 'jobs')).filter((f) => f.startsWith('mt-mig'))).toEqual([]);
    expect(namesOf(await cluster.op(I386, { op: 'list' }))).toEqual([]);
    const base = cluster.hosts.get(I386)!.baseDir;
    expect(readdirSync(join(base, 'run')).filter((f) => f.startsWith('mt-mig'))).toEqual([]);
    const jobsDir = join(base, 'state', 'jobs');
    expect(existsSync(jobsDir) ? readdirSync(jobsDir) : []).toEqual([]);

    // What the operator sees: A has the type and post-copy, the other host has neither.
    const text = await vmferry({ address: cluster.address, host: A }, 'capabilities');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^  ${escaped(pc)} \\(alias pc, default\\)$`, 'm'));
    expect(text.stdout).toMatch(/^Migration capabilities: .*\bpostcopy-ram\b/m);
    expect(text.stdout).toMatch(/^Migration parameters: .*\bmax-bandwidth\b/m);
    expect(text.stdout).toMatch(/^Commands: .*\bnbd-server-start\b/m);
    const before = await reportedQemu(I386);
    expect(before.binary).toMatch(/qemu-system-i386$/);
    expect(before.machines).not.toContain(pc);
    expect(before.machineAliases.pc).toBeUndefined();
    expect(before.migrationCapabilities).not.toContain('postcopy-ram');
    expect(before.migrationCapabilities).not.toContain('multifd');
    expect(before.migrationCapabilities).toContain('xbzrle');
    // A restarted worker reads its probe from the state directory: the same probe (same time), no new QEMU run.
    const firstPid = cluster.hosts.get(I386)!.worker!.pid;
    await cluster.hosts.get(I386)!.worker!.stop();
    const restarted = await cluster.startHost(I386);
    expect(restarted.worker!.pid).not.toBe(firstPid);
    // The new worker's own report (it reports before it takes tasks), not the old one's.
    expect((await cluster.client.workflow.getHandle(inventoryWorkflowId(I386)).query(inventoryQuery))?.workerPid).toBe(restarted.worker!.pid);
    const after = await reportedQemu(I386);
    expect(after).toEqual(before);
    await cluster.op(A, { op: 'destroy', name: 'mt-mig' });
    await cluster.op(A, { op: 'undefine', name: 'mt-mig' });
  });
});
