// The operator's host hook (VMFERRY_HOST_HOOKS_DIR/qemu, libvirt's calling convention)
// around real QEMU through Temporal: the order of its calls on start, destroy, a
// live migration between two hosts (both hosts' logs) and a rolled-back one, a
// hook refusing prepare, which refuses the start before any QEMU exists, restore
// (refused, rewritten, ABI-checked) and reconnect when a worker restarts (a
// refusal kills that QEMU, as libvirt does).
// The hook is a small shell script the test writes: it appends its argv and a hash
// of its stdin to a log, keeps the last XML it got per operation, and exits 1 when a
// marker file for the operation exists; it prints a replacement file's content as
// its stdout (migrate's and restore's replacement XML). A marker for an operation
// and a domain (refuse-OP-DOMAIN) refuses that one only.
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../src/support/wait.js';
import { isProcessAlive } from '../src/support/proc.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, failureOf, namesOf, startMigration } from './helpers/migration.js';
import { runJob } from './helpers/save.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';

const cluster = new TestCluster();
// A's destination CPUs "fail to start" (fault point): a migration to A rolls back.
const A = 'hook-a';
const B = 'hook-b';

function hookDir(host: string): string {
  return join(cluster.root, `hooks-${host}`);
}

const HOOK = (dir: string) => `#!/bin/sh
xml="${dir}/last-$2.xml"
cat > "$xml"
sum=$(sha256sum < "$xml" | cut -c1-16)
echo "$1 $2 $3 $4 $sum" >> "${dir}/calls.log"
if [ -e "${dir}/replace-$2" ]; then
  cat "${dir}/replace-$2"
fi
if [ -e "${dir}/refuse-$2" ] || [ -e "${dir}/refuse-$2-$1" ]; then
  echo "refused by the test marker for $2" >&2
  echo "second line" >&2
  exit 1
fi
exit 0
`;

function writeHook(host: string): void {
  const dir = hookDir(host);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'qemu'), HOOK(dir));
  chmodSync(join(dir, 'qemu'), 0o755);
}

/** The hook's calls so far on a host, without the stdin hash: "DOMAIN OPERATION SUBOP -". */
function calls(host: string): string[] {
  const log = join(hookDir(host), 'calls.log');
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').slice(0, 4).join(' '));
}

function clearCalls(host: string): void {
  rmSync(join(hookDir(host), 'calls.log'), { force: true });
}

/** The XML the hook last got on stdin for an operation, and the hash the hook logged for it. */
function lastXml(host: string, op: string): { xml: string; loggedHashMatches: boolean } {
  const xml = readFileSync(join(hookDir(host), `last-${op}.xml`), 'utf8');
  const lines = readFileSync(join(hookDir(host), 'calls.log'), 'utf8')
    .split('\n')
    .filter(Boolean);
  const last = lines.filter((l) => l.split(' ')[1] === op).at(-1)!;
  const hash = createHash('sha256').update(xml).digest('hex').slice(0, 16);
  return { xml, loggedHashMatches: last.endsWith(` ${hash}`) };
}

const seq = (name: string, ops: string[]) => ops.map((op) => `${name} ${op} ${['stopped', 'release'].includes(op) ? 'end' : 'begin'} -`);

beforeAll(async () => {
  writeHook(A);
  writeHook(B);
  await cluster.connect();
  await Promise.all([
    cluster.startHost(A, {
      VMFERRY_HOST_HOOKS_DIR: hookDir(A),
      VMFERRY_HOST_MIGRATION_PORT_MIN: '49232',
      VMFERRY_HOST_MIGRATION_PORT_MAX: '49239',
      VMFERRY_FAULTS: 'migrate.finish=fail',
    }),
    cluster.startHost(B, { VMFERRY_HOST_HOOKS_DIR: hookDir(B), VMFERRY_HOST_MIGRATION_PORT_MIN: '49240', VMFERRY_HOST_MIGRATION_PORT_MAX: '49247' }),
    cluster.startControl(),
  ]);
});

afterAll(async () => {
  for (const h of [A, B]) for (const f of readdirSync(hookDir(h)).filter((f) => /^(refuse|replace)-/.test(f))) rmSync(join(hookDir(h), f));
  // A test that failed half-way may have left A's worker stopped: bring it back so its QEMUs are cleaned up.
  if (cluster.hosts.get(A)?.worker === undefined) await cluster.startHost(A);
  await cluster.removeAllDomains([A, B]);
  await cluster.stop();
});

describe('host hooks (libvirt calling convention)', () => {
  it('start and destroy call prepare, start, started, then stopped and release, each with the domain XML on stdin', async () => {
    clearCalls(A);
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'hk1', uuid }) });
    expect(calls(A)).toEqual([]);
    const started = domainOf(await cluster.op(A, { op: 'start', name: 'hk1' }));
    expect(started.state).toBe('running');
    expect(calls(A)).toEqual(seq('hk1', ['prepare', 'start', 'started']));
    const prep = lastXml(A, 'prepare');
    expect(prep.loggedHashMatches).toBe(true);
    expect(prep.xml).toContain(`<uuid>${uuid}</uuid>`);
    expect(prep.xml).toContain('<name>hk1</name>');

    // destroy returns once the hooks ran: no waiting needed.
    await cluster.op(A, { op: 'destroy', name: 'hk1' });
    expect(isProcessAlive(started.pid!)).toBe(false);
    expect(calls(A)).toEqual(seq('hk1', ['prepare', 'start', 'started', 'stopped', 'release']));
    expect(lastXml(A, 'release').xml).toContain(`<uuid>${uuid}</uuid>`);
    await cluster.op(A, { op: 'undefine', name: 'hk1' });
  });

  it('a hook refusing prepare refuses the start: typed error naming hook, operation and stderr, no QEMU, still shut off', async () => {
    clearCalls(A);
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'hk2' }) });
    writeFileSync(join(hookDir(A), 'refuse-prepare'), '');
    try {
      const failure = await failureOf(cluster.op(A, { op: 'start', name: 'hk2' }));
      expect(failure.type).toBe('OperationFailed');
      expect(failure.message).toContain(
        `hook ${join(hookDir(A), 'qemu')} refused prepare begin of domain 'hk2': exit status 1: refused by the test marker for prepare`,
      );
      expect(failure.message).not.toContain('second line');
    } finally {
      rmSync(join(hookDir(A), 'refuse-prepare'));
    }
    // prepare's refusal is followed by release (the hook's cleanup), never by start.
    expect(calls(A)).toEqual(seq('hk2', ['prepare', 'release']));
    const info = domainOf(await cluster.op(A, { op: 'info', name: 'hk2' }));
    expect(info.state).toBe('shutoff');
    expect(info.pid).toBeUndefined();
    const run = readdirSync(join(cluster.hosts.get(A)!.baseDir, 'run'));
    expect(run.filter((f) => f.startsWith('hk2'))).toEqual([]);
    // Nothing was left behind: the next start works.
    clearCalls(A);
    await cluster.op(A, { op: 'start', name: 'hk2' });
    expect(calls(A)).toEqual(seq('hk2', ['prepare', 'start', 'started']));
    await cluster.op(A, { op: 'destroy', name: 'hk2' });
    await cluster.op(A, { op: 'undefine', name: 'hk2' });
  });

  it('a migration calls migrate, prepare, start, started on the destination and stopped, release on the source; a rolled-back one undoes the destination', async () => {
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'hk3', uuid }) });
    const src = domainOf(await cluster.op(A, { op: 'start', name: 'hk3' }));
    clearCalls(A);
    clearCalls(B);
    const result = await (
      await startMigration(cluster.client, {
        domain: 'hk3',
        domainUuid: uuid,
        sourceHost: A,
        destinationHost: B,
        flags: ['live', 'persist-dest', 'undefine-source'],
      })
    ).result();
    expect(result.destination).toMatchObject({ state: 'running', host: B });
    expect(calls(B)).toEqual(seq('hk3', ['migrate', 'prepare', 'start', 'started']));
    expect(lastXml(B, 'migrate').xml).toContain(`<uuid>${uuid}</uuid>`);
    expect(lastXml(B, 'migrate').loggedHashMatches).toBe(true);
    expect(isProcessAlive(src.pid!)).toBe(false);
    await waitFor('the source hooks', () => calls(A).length >= 2, { timeoutMs: 10_000, intervalMs: 50 });
    expect(calls(A)).toEqual(seq('hk3', ['stopped', 'release']));

    // Back to A, whose destination CPUs fail to start (fault point): rolled back, B's guest keeps running.
    const onB = domainOf(await cluster.op(B, { op: 'info', name: 'hk3' }));
    clearCalls(A);
    clearCalls(B);
    const back = await startMigration(cluster.client, { domain: 'hk3', domainUuid: uuid, sourceHost: B, destinationHost: A, flags: ['live'] });
    const failure = await failureOf(back.result());
    expect(failure.type).toBe('OperationFailed');
    expect(calls(A)).toEqual(seq('hk3', ['migrate', 'prepare', 'start', 'started', 'stopped', 'release']));
    expect(calls(B)).toEqual([]);
    expect(namesOf(await cluster.op(A, { op: 'list' }))).toEqual([]);
    const still = domainOf(await cluster.op(B, { op: 'info', name: 'hk3' }));
    expect(still).toMatchObject({ state: 'running', pid: onB.pid });
    await cluster.op(B, { op: 'destroy', name: 'hk3' });
    await cluster.op(B, { op: 'undefine', name: 'hk3' });
  });

  it("the migrate hook's stdout replaces the incoming definition, and a replacement for another domain is refused", async () => {
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'hk4', uuid }) });
    const src = domainOf(await cluster.op(A, { op: 'start', name: 'hk4' }));
    const replace = join(hookDir(B), 'replace-migrate');
    try {
      // Another UUID: Prepare refuses it as it refuses such XML from a source; the guest stays on A.
      writeFileSync(replace, guestXml({ name: 'hk4', uuid: randomUUID() }));
      clearCalls(B);
      const bad = await failureOf(
        (await startMigration(cluster.client, { domain: 'hk4', domainUuid: uuid, sourceHost: A, destinationHost: B, flags: ['live'] })).result(),
      );
      expect(bad.message).toMatch(/has UUID .*, the migration is for/);
      expect(calls(B)).toEqual(seq('hk4', ['migrate']));
      expect(domainOf(await cluster.op(A, { op: 'info', name: 'hk4' }))).toMatchObject({ state: 'running', pid: src.pid });

      writeFileSync(replace, guestXml({ name: 'hk4', uuid }).replace('</name>', '</name>\n  <description>rewritten by the migrate hook</description>'));
      clearCalls(B);
      await (await startMigration(cluster.client, { domain: 'hk4', domainUuid: uuid, sourceHost: A, destinationHost: B, flags: ['live'] })).result();
      expect(calls(B)).toEqual(seq('hk4', ['migrate', 'prepare', 'start', 'started']));
      // What runs on B is the hook's definition, and prepare got it on stdin.
      expect(lastXml(B, 'prepare').xml).toContain('<description>rewritten by the migrate hook</description>');
      const live = (await cluster.op(B, { op: 'dumpxml', name: 'hk4' })) as { xml: string };
      expect(live.xml).toContain('<description>rewritten by the migrate hook</description>');
    } finally {
      rmSync(replace, { force: true });
    }
    await cluster.op(B, { op: 'destroy', name: 'hk4' });
    await cluster.op(A, { op: 'undefine', name: 'hk4' });
  });
  it('restore calls restore, then prepare, start, started; a refusing restore hook refuses it; its stdout replaces the definition, ABI-checked', async () => {
    const uuid = randomUUID();
    const xml = guestXml({ name: 'hk5', uuid });
    await cluster.op(A, { op: 'define', xml });
    await cluster.op(A, { op: 'start', name: 'hk5' });
    const images = join(cluster.root, 'images');
    mkdirSync(images, { recursive: true });
    const path = join(images, 'hk5.img');
    clearCalls(A);
    await runJob<SaveResult>(cluster.client, 'save', uuid, { host: A, name: 'hk5', path, format: 'raw' });
    await waitFor('the saved QEMU released', () => calls(A).length >= 2, { timeoutMs: 10_000, intervalMs: 50 });
    expect(calls(A)).toEqual(seq('hk5', ['stopped', 'release']));

    const refuse = join(hookDir(A), 'refuse-restore');
    const replace = join(hookDir(A), 'replace-restore');
    try {
      writeFileSync(refuse, '');
      clearCalls(A);
      const f = await failureOf(runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: A, path }));
      expect(f.type).toBe('OperationFailed');
      expect(f.message).toContain(`refused restore begin of domain 'hk5': exit status 1`);
      expect(calls(A)).toEqual(seq('hk5', ['restore']));
      expect(lastXml(A, 'restore').xml).toContain(`<uuid>${uuid}</uuid>`);
      expect(domainOf(await cluster.op(A, { op: 'info', name: 'hk5' })).state).toBe('shutoff');
      rmSync(refuse);

      // A replacement that changes the guest's ABI (its memory size) is refused as libvirt refuses it.
      writeFileSync(replace, guestXml({ name: 'hk5', uuid, memoryMiB: 128 }));
      clearCalls(A);
      const abi = await failureOf(runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: A, path }));
      expect(abi.type).toBe('ConfigUnsupported');
      expect(abi.message).toMatch(/does not match source/);
      expect(calls(A)).toEqual(seq('hk5', ['restore']));

      writeFileSync(replace, xml.replace('</name>', '</name>\n  <description>rewritten by the restore hook</description>'));
      clearCalls(A);
      const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: A, path });
      expect(restored.domain).toMatchObject({ state: 'running' });
      expect(calls(A)).toEqual(seq('hk5', ['restore', 'prepare', 'start', 'started']));
      expect(lastXml(A, 'prepare').xml).toContain('<description>rewritten by the restore hook</description>');
    } finally {
      rmSync(refuse, { force: true });
      rmSync(replace, { force: true });
    }
    await cluster.op(A, { op: 'destroy', name: 'hk5' });
    await cluster.op(A, { op: 'undefine', name: 'hk5' });
  });

  it('a restarted worker calls reconnect for each QEMU it reattaches; a refusal kills that QEMU, followed by stopped and release', async () => {
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'hk6' }) });
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'hk7' }) });
    const kept = domainOf(await cluster.op(A, { op: 'start', name: 'hk6' }));
    const refused = domainOf(await cluster.op(A, { op: 'start', name: 'hk7' }));
    const host = cluster.hosts.get(A)!;
    await host.worker!.stop();
    host.worker = undefined;
    // The worker let go of its QEMUs; they run on.
    expect(isProcessAlive(kept.pid!)).toBe(true);
    expect(isProcessAlive(refused.pid!)).toBe(true);
    writeFileSync(join(hookDir(A), 'refuse-reconnect-hk7'), '');
    clearCalls(A);
    try {
      await cluster.startHost(A);
      await waitFor('hk7 released', () => calls(A).includes('hk7 release end -'), { timeoutMs: 20_000, intervalMs: 50 });
    } finally {
      rmSync(join(hookDir(A), 'refuse-reconnect-hk7'));
    }
    expect(calls(A).filter((c) => c.startsWith('hk6 '))).toEqual(seq('hk6', ['reconnect']));
    expect(calls(A).filter((c) => c.startsWith('hk7 '))).toEqual(seq('hk7', ['reconnect', 'stopped', 'release']));
    expect(isProcessAlive(refused.pid!)).toBe(false);
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'hk7' })).state).toBe('shutoff');
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'hk6' }))).toMatchObject({ state: 'running', pid: kept.pid });
    await cluster.op(A, { op: 'destroy', name: 'hk6' });
    for (const n of ['hk6', 'hk7']) await cluster.op(A, { op: 'undefine', name: n });
  });
});
