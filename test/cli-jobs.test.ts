// The job verbs of the vmferry command, run as real processes against real host
// workers and QEMU: save / restore / save-image-*, managedsave and start from it,
// dump, migrate between two hosts, and control of a running migration
// (domjobinfo, migrate-set/get speed and downtime, jobs, domjobabort).
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo } from '../src/common/domain-types.js';
import type { CoreDumpResult } from '../src/common/dump-types.js';
import { jobWorkflowId, type JobInfo } from '../src/common/job-types.js';
import type { MigrateResult } from '../src/common/migration-types.js';
import type { ManagedSaveState, RestoreResult, SaveResult } from '../src/common/save-types.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { WorkerWatch } from './helpers/worker-watch.js';
import { domainOf, namesOf, performHeartbeat } from './helpers/migration.js';
import { jsonOf, startVmferry, vmferry as run, type CliResult } from './helpers/vmferry-cli.js';

const cluster = new TestCluster();
const A = 'cj-a';
const B = 'cj-b';
const MiB = 1024 * 1024;
let images: string;
let watch: WorkerWatch;

const onA = (...args: string[]): Promise<CliResult> => run({ address: cluster.address, host: A }, ...args);
const onB = (...args: string[]): Promise<CliResult> => run({ address: cluster.address, host: B }, ...args);

async function info(host: string, name: string): Promise<DomainInfo> {
  return domainOf(await cluster.op(host, { op: 'info', name }));
}

/**
 * A guest with random RAM. `paused`: suspended before the fill, so its RAM stays
 * exactly as hashed (firmware still starting up may write to it otherwise).
 */
async function runGuest(name: string, memoryMiB: number, fill: number, paused = false): Promise<{ uuid: string; hash: string; pid: number }> {
  const uuid = randomUUID();
  await cluster.op(A, { op: 'define', xml: guestXml({ name, uuid, memoryMiB }) });
  const dom = domainOf(await cluster.op(A, { op: 'start', name, paused }));
  fillRandom(dom.memoryBackingFile!, fill);
  return { uuid, hash: hashRange(dom.memoryBackingFile!, fill), pid: dom.pid! };
}

async function removeGuest(host: string, name: string): Promise<void> {
  const d = await info(host, name);
  if (d.state !== 'shutoff') await cluster.op(host, { op: 'destroy', name });
  if (d.persistent) await cluster.op(host, { op: 'undefine', name });
}

function magic(path: string, length: number): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, 0);
    return buf.toString('latin1');
  } finally {
    closeSync(fd);
  }
}

beforeAll(async () => {
  await cluster.connect();
  const ports = (min: number): Record<string, string> => ({ VMFERRY_HOST_MIGRATION_PORT_MIN: String(min), VMFERRY_HOST_MIGRATION_PORT_MAX: String(min + 7) });
  await Promise.all([cluster.startHost(A, ports(49216)), cluster.startHost(B, ports(49224)), cluster.startControl()]);
  watch = new WorkerWatch(cluster, [A, B]);
  images = join(cluster.root, 'images');
  mkdirSync(images);
});

afterAll(async () => {
  await watch.reviveForCleanup();
  await cluster.removeAllDomains([A, B]);
  await cluster.stop();
});

describe('vmferry job verbs', () => {
  it('save, save-image-dumpxml / save-image-define, restore --paused: RAM comes back byte for byte', async () => {
    const g = await runGuest('cj-s', 64, 32 * MiB, true);
    const img = join(images, 'cj-s.img');

    const saved = await onA('save', 'cj-s', img, '--format', 'gzip', '--json');
    expect(saved.code, saved.stderr).toBe(0);
    expect(jsonOf<SaveResult>(saved)).toMatchObject({ name: 'cj-s', uuid: g.uuid, path: img, format: 'gzip' });
    expect(magic(img, 16)).toBe('LibvirtQemudSave');
    expect(await info(A, 'cj-s')).toMatchObject({ state: 'shutoff' });

    const dumped = await onA('save-image-dumpxml', img);
    expect(dumped.code).toBe(0);
    expect(dumped.stdout).toContain('<name>cj-s</name>');
    const edited = join(images, 'edited.xml');
    writeFileSync(edited, dumped.stdout.replace('</name>', '</name>\n  <description>edited by the CLI test</description>'));
    const defined = await onA('save-image-define', img, edited);
    expect(defined.code, defined.stderr).toBe(0);
    expect(defined.stdout).toMatch(/updated/);
    expect((await onA('save-image-dumpxml', img)).stdout).toContain('edited by the CLI test');

    // Saved paused, restored paused unless told otherwise: --paused makes it explicit.
    const restored = await onA('restore', img, '--paused', '--json');
    expect(restored.code, restored.stderr).toBe(0);
    const r = jsonOf<RestoreResult>(restored);
    expect(r.domain).toMatchObject({ name: 'cj-s', uuid: g.uuid, state: 'paused' });
    expect(hashRange(r.domain.memoryBackingFile!, 32 * MiB)).toBe(g.hash);

    // Never two copies: a second restore of a running domain is invalid input.
    const twice = await onA('restore', img, '--json');
    expect(twice.code).toBe(2);
    expect(jsonOf<{ error: { type: string } }>(twice).error.type).toBe('OperationInvalid');
    const both = await onA('restore', img, '--running', '--paused');
    expect(both.code).toBe(2);

    await removeGuest(A, 'cj-s');
    rmSync(img);
    rmSync(edited);
  });

  it('managedsave, start from the managed image, managedsave-remove, start afresh, dump --memory-only', async () => {
    const g = await runGuest('cj-m', 64, 32 * MiB, true);
    const saved = await onA('managedsave', 'cj-m', '--json');
    expect(saved.code, saved.stderr).toBe(0);
    const image = jsonOf<SaveResult>(saved).path;
    expect(existsSync(image)).toBe(true);
    expect(await info(A, 'cj-m')).toMatchObject({ state: 'shutoff' });

    const started = await onA('start', 'cj-m', '--json');
    expect(started.code, started.stderr).toBe(0);
    const dom = jsonOf<DomainInfo & { restoredFromManagedSave: boolean }>(started);
    // Saved while paused, so it comes back paused, as libvirt does.
    expect(dom).toMatchObject({ state: 'paused', restoredFromManagedSave: true });
    expect(hashRange(dom.memoryBackingFile!, 32 * MiB)).toBe(g.hash);
    expect(existsSync(image)).toBe(false);
    expect((await onA('resume', 'cj-m')).code).toBe(0);

    const again = await onA('managedsave', 'cj-m');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/Domain 'cj-m' state saved/);
    const removed = await onA('managedsave-remove', 'cj-m', '--json');
    expect(jsonOf<ManagedSaveState>(removed)).toMatchObject({ removed: true, exists: false });
    expect(existsSync(image)).toBe(false);
    expect((await onA('managedsave-remove', 'cj-m')).stdout).toMatch(/has no managed save image/);

    const fresh = await onA('start', 'cj-m', '--json');
    expect(jsonOf<{ restoredFromManagedSave: boolean; state: string }>(fresh)).toMatchObject({ state: 'running', restoredFromManagedSave: false });

    const core = join(images, 'cj-m.core');
    const notMemoryOnly = await onA('dump', 'cj-m', core);
    expect(notMemoryOnly.code).toBe(2);
    expect(notMemoryOnly.stderr).toMatch(/ConfigUnsupported: .*--memory-only/);
    const dumped = await onA('dump', 'cj-m', core, '--memory-only', '--json');
    expect(dumped.code, dumped.stderr).toBe(0);
    expect(jsonOf<CoreDumpResult>(dumped)).toMatchObject({ path: core, format: 'elf', domainState: 'running' });
    expect(magic(core, 4)).toBe('\x7fELF');
    expect(await info(A, 'cj-m')).toMatchObject({ state: 'running' });

    await removeGuest(A, 'cj-m');
    rmSync(core);
  });

  it('migrate --live --persistent --undefinesource to the other host; --tunnelled is refused as unsupported, --timeout without --live as invalid', async () => {
    const g = await runGuest('cj-g', 64, 16 * MiB);
    const tunnelled = await onA('migrate', 'cj-g', B, '--live', '--tunnelled', '--json');
    expect(tunnelled.code).toBe(2);
    expect(jsonOf<{ error: { type: string } }>(tunnelled).error.type).toBe('ConfigUnsupported');
    const timeout = await onA('migrate', 'cj-g', B, '--timeout', '5');
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toMatch(/--timeout needs --live/);
    expect(await info(A, 'cj-g')).toMatchObject({ state: 'running', pid: g.pid });

    const migrated = await onA('migrate', 'cj-g', B, '--live', '--persistent', '--undefinesource', '--json');
    expect(migrated.code, migrated.stderr).toBe(0);
    const r = jsonOf<MigrateResult>(migrated);
    expect(r).toMatchObject({ domain: 'cj-g', uuid: g.uuid, protocol: 3, persistent: true, sourceUndefined: true, destination: { host: B, state: 'running' } });
    expect(namesOf(await cluster.op(A, { op: 'list' }))).not.toContain('cj-g');
    expect(await info(B, 'cj-g')).toMatchObject({ state: 'running', persistent: true });
    await removeGuest(B, 'cj-g');
  });

  it("job verbs on a host touch only that host's domain of the name: a same-named domain elsewhere keeps its job", async () => {
    const g = await runGuest('cj-n', 64, 16 * MiB);
    await cluster.op(B, { op: 'define', xml: guestXml({ name: 'cj-n', uuid: randomUUID(), memoryMiB: 64 }) });
    const dumpPath = join(images, 'cj-n.core');
    const dump = startVmferry({ address: cluster.address, host: A }, ['dump', 'cj-n', dumpPath, '--memory-only', '--live', '--bandwidth', '1', '--json']);
    await waitFor(
      'the dump to run on host A',
      async () => {
        const r = await onA('domjobinfo', 'cj-n', '--json');
        return r.code === 0 && jsonOf<JobInfo>(r).jobType === 'coreDump';
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );

    const [abortB, speedB, infoB] = await Promise.all([onB('domjobabort', 'cj-n', '--json'), onB('migrate-setspeed', 'cj-n', '64'), onB('domjobinfo', 'cj-n')]);
    expect(abortB.code).toBe(2);
    expect(jsonOf<{ error: { type: string; message: string } }>(abortB).error).toMatchObject({
      type: 'OperationInvalid',
      message: "no job is active on domain 'cj-n' on host 'cj-b'",
    });
    expect(speedB.code).toBe(2);
    expect(infoB.stdout).toMatch(/Job type:\s+None/);
    const handle = cluster.client.workflow.getHandle(jobWorkflowId(g.uuid));
    expect((await handle.describe()).status.name).toBe('RUNNING');

    // Without a host, the name alone is ambiguous only when two domains of it have jobs; here one has.
    const abortA = await onA('domjobabort', 'cj-n');
    expect(abortA.code, abortA.stderr).toBe(0);
    const ended = await watch.race(dump.done);
    expect(ended.code, ended.stderr).toBe(3);
    expect(existsSync(dumpPath)).toBe(false);
    await removeGuest(A, 'cj-n');
    await cluster.op(B, { op: 'undefine', name: 'cj-n' });
  });

  it('controls a running migration: domjobinfo, a second job refused, migrate-set/get speed and max downtime, jobs, domjobabort', async () => {
    const g = await runGuest('cj-r', 192, 176 * MiB);
    const migration = startVmferry({ address: cluster.address, host: A }, ['migrate', 'cj-r', B, '--live', '--bandwidth', '8', '--json']);
    const perform = await waitFor(
      'domjobinfo to show the migration streaming',
      async () => {
        const r = await onA('domjobinfo', 'cj-r', '--json');
        const j = r.code === 0 ? jsonOf<JobInfo & { workflowId: string }>(r) : undefined;
        return j?.phase === 'perform' && (j.dataProcessedBytes ?? 0) > 0 ? j : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(perform).toMatchObject({ jobType: 'migrateOut', status: 'running', speedLimitMiBps: 8, workflowId: jobWorkflowId(g.uuid) });
    expect(perform.percent).toBeLessThan(100);

    const [busy, speed, human] = await Promise.all([
      onA('save', 'cj-r', join(images, 'never.img'), '--json'),
      onA('migrate-getspeed', 'cj-r'),
      onA('domjobinfo', 'cj-r'),
    ]);
    expect(busy.code).toBe(2);
    expect(jsonOf<{ error: { type: string; message: string } }>(busy).error).toMatchObject({
      type: 'DomainBusy',
      message: expect.stringMatching(/migrateOut/),
    });
    expect(speed.stdout.trim()).toBe('8');
    expect(human.stdout).toMatch(/Job type:\s+migrateOut/);
    expect(human.stdout).toMatch(/Data processed:\s+\d/);

    const [setSpeed, setDowntime, badSpeed] = await Promise.all([
      onA('migrate-setspeed', 'cj-r', '4'),
      onA('migrate-setmaxdowntime', 'cj-r', '1234'),
      onA('migrate-setspeed', 'cj-r', '-1'),
    ]);
    expect(setSpeed.code, setSpeed.stderr).toBe(0);
    expect(setDowntime.code, setDowntime.stderr).toBe(0);
    expect(badSpeed.code).toBe(2);
    const handle = cluster.client.workflow.getHandle(jobWorkflowId(g.uuid));
    // QEMU itself reports the new limit (the Perform step reads query-migrate-parameters).
    await waitFor('QEMU to apply 4 MiB/s', async () => (await performHeartbeat(handle))?.speedLimitMiBps === 4, { timeoutMs: 5000, intervalMs: 100 });
    const [getSpeed, getDowntime, jobs] = await Promise.all([
      onA('migrate-getspeed', 'cj-r', '--json'),
      onA('migrate-getmaxdowntime', 'cj-r'),
      onA('jobs', '--running', '--json'),
    ]);
    expect(jsonOf<{ speedMiBps: number }>(getSpeed).speedMiBps).toBe(4);
    expect(getDowntime.stdout.trim()).toBe('1234');
    expect(jsonOf<Record<string, unknown>[]>(jobs)).toContainEqual(
      expect.objectContaining({ workflowId: jobWorkflowId(g.uuid), domain: 'cj-r', jobType: 'migrateOut', source: A, destination: B, status: 'RUNNING' }),
    );

    const abort = await onA('domjobabort', 'cj-r');
    expect(abort.code, abort.stderr).toBe(0);
    const ended = await watch.race(migration.done);
    expect(ended.code, ended.stderr).toBe(3);
    expect(jsonOf<{ error: { type: string } }>(ended).error.type).toBe('OperationAborted');

    expect(await info(A, 'cj-r')).toMatchObject({ state: 'running', pid: g.pid });
    expect(namesOf(await cluster.op(B, { op: 'list' }))).not.toContain('cj-r');
    expect(readdirSync(join(cluster.hosts.get(B)!.baseDir, 'run'))).toEqual([]);
    expect((await onA('domjobinfo', 'cj-r')).stdout).toMatch(/Job type:\s+None/);
    // The listing reads visibility, which learns of the end a moment later.
    const completed = await waitFor(
      'the aborted job among the completed ones',
      async () => {
        const [c, l] = await Promise.all([onA('domjobinfo', 'cj-r', '--completed', '--json'), onA('jobs', '--domain', 'cj-r', '--host', B)]);
        return jsonOf<JobInfo>(c).jobType === 'migrateOut' && /FAILED/.test(l.stdout) ? { info: jsonOf<JobInfo>(c), listing: l.stdout } : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    expect(completed.info).toMatchObject({ status: 'cancelled', error: { type: 'OperationAborted' } });
    expect(completed.listing).toMatch(/cj-r\s+migrateOut\s+\S+\s+FAILED\s+cj-a -> cj-b/);
    await removeGuest(A, 'cj-r');
  });
});
