// The production confinement, on a real host worker with real QEMU: each guest's
// QEMU runs as its own unprivileged uid from a range (DAC driver), under QEMU's
// seccomp sandbox, in a cgroup v2 directory of its own that a kill -9 and restart
// of the worker leave alone. Root only (chown, cgroup writes), as the other e2e tests.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import { cgroup2Root, scopeName } from '../src/host/cgroups.js';
import { isProcessAlive } from '../src/support/proc.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { vmferry } from './helpers/vmferry-cli.js';

const cluster = new TestCluster();
const HOST = 'cf-a';
// Numeric ids nobody on this machine has: nothing to create in /etc/passwd, nothing to remove.
const UID_MIN = 3_210_000;
const UID_MAX = UID_MIN + 65_535;
const GID = 3_210_000;
const PARENT = `vmf-test-${process.pid}.slice`;
const CGROOT = cgroup2Root();

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

function statusField(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`no ${field} in /proc/${pid}/status`);
  return line.slice(field.length + 1).trim();
}

/** Opens `path` for reading as uid:GID with no supplementary groups (setpriv execs head directly, no shell). */
function openAs(uid: number, path: string): { ok: boolean; stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${GID}`, '--clear-groups', '--', 'head', '-c', '1', path], { encoding: 'utf8' });
  return { ok: r.status === 0, stderr: r.stderr };
}

function diskXml(path: string): string {
  return `
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${path}'/>
      <target dev='vda' bus='virtio'/>
    </disk>`;
}

let images: string;

beforeAll(async () => {
  await cluster.connect();
  // A confined QEMU must reach its files by name: every directory above them lets others search, not list.
  chmodSync(cluster.root, 0o711);
  images = join(cluster.root, 'images');
  mkdirSync(images, { mode: 0o711 });
  for (const n of ['cf1', 'cf2']) execFileSync('qemu-img', ['create', '-q', '-f', 'raw', join(images, `${n}.img`), '1M']);
  for (const n of ['cf1', 'cf2']) chmodSync(join(images, `${n}.img`), 0o600);
  const h = cluster.hostHandle(HOST, {
    VMFERRY_SECURITY_DRIVER: 'dac',
    VMFERRY_QEMU_UID_RANGE: `${UID_MIN}-${UID_MAX}`,
    VMFERRY_QEMU_GROUP: String(GID),
    VMFERRY_CGROUPS: 'cgroupfs',
    VMFERRY_CGROUP_PARENT: PARENT,
  });
  mkdirSync(h.baseDir, { recursive: true, mode: 0o711 });
  chmodSync(h.baseDir, 0o711);
  await Promise.all([cluster.startHost(HOST), cluster.startControl()]);
});

afterAll(async () => {
  await cluster.removeAllDomains([HOST]);
  await cluster.stop();
  if (CGROOT && existsSync(join(CGROOT, PARENT))) execFileSync('rmdir', [join(CGROOT, PARENT)]);
});

describe('confined guests (DAC uid per guest, seccomp, cgroup v2) on a real host worker', () => {
  it.skipIf(CGROOT === undefined)(
    'runs each QEMU as its own non-root uid under seccomp in its own cgroup; neither can open the other guest’s disk or RAM file; kill -9 and restart of the worker leave the cgroup and guest alone',
    async () => {
      const uuids = { cf1: '6c0f1e2a-0000-4000-8000-000000000001', cf2: '6c0f1e2a-0000-4000-8000-000000000002' };
      for (const n of ['cf1', 'cf2'] as const)
        await cluster.op(HOST, { op: 'define', xml: guestXml({ name: n, uuid: uuids[n], extraDevices: diskXml(join(images, `${n}.img`)) }) });
      const a = domainOf(await cluster.op(HOST, { op: 'start', name: 'cf1' }));
      const b = domainOf(await cluster.op(HOST, { op: 'start', name: 'cf2' }));

      const uidA = Number(statusField(a.pid!, 'Uid').split(/\s+/)[0]);
      const uidB = Number(statusField(b.pid!, 'Uid').split(/\s+/)[0]);
      for (const uid of [uidA, uidB]) (expect(uid).toBeGreaterThanOrEqual(UID_MIN), expect(uid).toBeLessThanOrEqual(UID_MAX));
      expect(uidA).not.toBe(uidB);
      // Real, effective, saved and filesystem uids alike: nothing to get root back with.
      expect(new Set(statusField(a.pid!, 'Uid').split(/\s+/))).toEqual(new Set([String(uidA)]));
      expect(statusField(a.pid!, 'Groups')).toBe('');
      expect(statusField(a.pid!, 'Seccomp')).toBe('2');
      expect(statusField(b.pid!, 'Seccomp')).toBe('2');

      // The DAC labels: each guest's disk and RAM file belong to its own uid, owner-only.
      const diskB = join(images, 'cf2.img');
      for (const [path, uid] of [
        [join(images, 'cf1.img'), uidA],
        [diskB, uidB],
        [a.memoryBackingFile!, uidA],
        [b.memoryBackingFile!, uidB],
      ] as const) {
        const st = statSync(path);
        expect({ path, uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }).toEqual({ path, uid, gid: GID, mode: 0o600 });
      }
      // Guest A's uid opens its own files and not guest B's (the directories on the way are searchable).
      expect(openAs(uidA, join(images, 'cf1.img'))).toMatchObject({ ok: true });
      expect(openAs(uidA, a.memoryBackingFile!)).toMatchObject({ ok: true });
      for (const p of [diskB, b.memoryBackingFile!]) {
        const r = openAs(uidA, p);
        expect(r.ok).toBe(false);
        expect(r.stderr).toMatch(/Permission denied/);
      }

      // Its own cgroup, named after the guest, holding QEMU's pid.
      const cgA = join(CGROOT!, PARENT, scopeName('cf1', uuids.cf1));
      expect(readFileSync(`/proc/${a.pid}/cgroup`, 'utf8')).toContain(`0::/${PARENT}/${scopeName('cf1', uuids.cf1)}\n`);
      expect(readFileSync(join(cgA, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(a.pid));

      const host = cluster.hosts.get(HOST)!;
      await host.worker!.kill9();
      expect(readFileSync(join(cgA, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(a.pid));
      await cluster.startHost(HOST);
      expect(readFileSync(join(cgA, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(a.pid));
      // The new worker found QEMU in the cgroup the first one made.
      expect(host.worker!.logs.find((l) => l.msg === 'reconnected to running QEMU' && l.domain === 'cf1')).toMatchObject({
        pid: a.pid,
        cgroup: `/${PARENT}/${scopeName('cf1', uuids.cf1)}`,
      });
      const after = domainOf(await cluster.op(HOST, { op: 'info', name: 'cf1' }));
      expect({ state: after.state, pid: after.pid }).toEqual({ state: 'running', pid: a.pid });

      // Destroy (by the restarted worker): QEMU gone, its cgroup removed, labels back to root's.
      await cluster.op(HOST, { op: 'destroy', name: 'cf1' });
      await cluster.op(HOST, { op: 'destroy', name: 'cf2' });
      expect(isProcessAlive(a.pid!)).toBe(false);
      expect(existsSync(cgA)).toBe(false);
      expect(existsSync(join(CGROOT!, PARENT, scopeName('cf2', uuids.cf2)))).toBe(false);
      for (const n of ['cf1', 'cf2']) {
        const st = statSync(join(images, `${n}.img`));
        expect({ n, uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }).toEqual({ n, uid: 0, gid: 0, mode: 0o600 });
      }
    },
    120_000,
  );

  it('host-shutdown managed-saves every active guest (confined) and a start restores it; with shutdown, a guest that ignores the power button is destroyed at the timeout', async () => {
    const cli = { address: cluster.address, host: HOST };
    for (const n of ['cf1', 'cf2']) await cluster.op(HOST, { op: 'start', name: n });
    const a = domainOf(await cluster.op(HOST, { op: 'info', name: 'cf1' }));
    // A marker in guest RAM (above what the idle firmware touches) that only a real restore brings back.
    const marker = randomBytes(4096);
    const fd = openSync(a.memoryBackingFile!, 'r+');
    writeSync(fd, marker, 0, marker.length, 32 * 1024 * 1024);
    closeSync(fd);

    const saved = await vmferry(cli, 'host-shutdown', '--on-shutdown', 'managedsave', '--parallel', '2', '--shutdown-timeout', '120');
    expect(saved.code, saved.stderr).toBe(0);
    expect(saved.stdout).toContain("Domain 'cf1': managedsaved");
    expect(saved.stdout).toContain("Domain 'cf2': managedsaved");
    expect(isProcessAlive(a.pid!)).toBe(false);
    const stateDir = join(cluster.hosts.get(HOST)!.baseDir, 'state');
    for (const n of ['cf1', 'cf2']) {
      expect(domainOf(await cluster.op(HOST, { op: 'info', name: n })).state).toBe('shutoff');
      expect(existsSync(join(stateDir, 'save', `${n}.save`))).toBe(true);
    }

    const started = await vmferry(cli, 'start', 'cf1');
    expect(started.stdout, started.stderr).toContain('restored from its managed save image');
    const back = domainOf(await cluster.op(HOST, { op: 'info', name: 'cf1' }));
    expect(back.state).toBe('running');
    const got = Buffer.alloc(4096);
    const rfd = openSync(back.memoryBackingFile!, 'r');
    readSync(rfd, got, 0, got.length, 32 * 1024 * 1024);
    closeSync(rfd);
    expect(got.equals(marker)).toBe(true);
    expect(existsSync(join(stateDir, 'save', 'cf1.save'))).toBe(false);

    // SeaBIOS with nothing to boot has no ACPI handler: the button is ignored, the timeout destroys.
    const stopped = await vmferry(cli, 'host-shutdown', '--on-shutdown', 'shutdown', '--shutdown-timeout', '2');
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain("Domain 'cf1': destroyed");
    expect(domainOf(await cluster.op(HOST, { op: 'info', name: 'cf1' })).state).toBe('shutoff');
    expect(isProcessAlive(back.pid!)).toBe(false);
  }, 120_000);
});
