// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The pieces of disk leases without QEMU or Temporal: which disks take which
// lease, the lockspace's flock leases and holder records (real util-linux
// flock on a temp directory), the cookie's lock state (round trip and hostile
// input), and the QEMU arguments that keep image locking on.
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isVmError } from '../src/common/errors.js';
import { parseDomainXml } from '../src/domain/index.js';
import { Lockspace } from '../src/host/leases/lockspace.js';
import { formatMigrationCookie, parseMigrationCookie } from '../src/migration/cookie.js';
import { LOCK_DRIVER, formatLockState, parseLockState } from '../src/migration/lock-state.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';
import { guestXml } from './helpers/guest-xml.js';

const dir = mkdtempSync(join(tmpdir(), 'vmf-lease-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const img = join(dir, 'a.img');
const other = join(dir, 'b.img');
writeFileSync(img, '');
writeFileSync(other, '');
symlinkSync(img, join(dir, 'a-link.img'));

const disk = (file: string, dev: string, extra = '', device = 'disk') =>
  `\n    <disk type='file' device='${device}'><driver name='qemu' type='raw'/><source file='${file}'/><target dev='${dev}' bus='virtio'/>${extra}</disk>`;

function def(name: string, disks: string) {
  return parseDomainXml(guestXml({ name, uuid: randomUUID(), extraDevices: disks }));
}

const taker = (d: { name: string; uuid: string }) => ({ domain: d.name, uuid: d.uuid });

function typeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isVmError(err) ? (err.type ?? undefined) : String(err);
  }
  return undefined;
}

const sha = (p: string) => createHash('sha256').update(p).digest('hex');

describe('which disks take a lease', () => {
  const ls = new Lockspace(join(dir, 'ls1'), { host: 'h1', hostUuid: randomUUID() });

  it('writable disks exclusive, shareable ones shared, read-only disks and cdroms none; one lease per file', () => {
    const d = def(
      'd1',
      disk(img, 'vda') +
        disk(join(dir, 'a-link.img'), 'vdb') +
        disk(other, 'vdc', '<shareable/>') +
        disk(join(dir, 'ro.img'), 'vdd', '<readonly/>') +
        disk(join(dir, 'cd.iso'), 'hdc', '', 'cdrom').replace("bus='virtio'", "bus='ide'"),
    );
    const leases = ls.leasesOf(d);
    // The symlink names the same file: the same lease, once.
    expect(leases.map((l) => [l.key, l.mode, l.target])).toEqual([
      [sha(img), 'exclusive', 'vda'],
      [sha(other), 'shared', 'vdc'],
    ]);
    expect(leases[0]!.path).toBe(join(dir, 'ls1', sha(img)));
  });

  it('two hosts over one directory share its identity', () => {
    const again = new Lockspace(join(dir, 'ls1'), { host: 'h2', hostUuid: randomUUID() });
    expect(ls.id()).toMatch(/^[0-9a-f]{32}$/);
    expect(again.id()).toBe(ls.id());
    expect(new Lockspace(join(dir, 'ls2'), { host: 'h1', hostUuid: randomUUID() }).id()).not.toBe(ls.id());
  });
});

describe('lockspace leases (real flock)', () => {
  const hostA = new Lockspace(join(dir, 'ls3'), { host: 'host-a', hostUuid: randomUUID() });
  const hostB = new Lockspace(join(dir, 'ls3'), { host: 'host-b', hostUuid: randomUUID() });

  it('an exclusive lease is refused to anyone else, naming its holder, until its descriptor closes', async () => {
    const d1 = def('d1', disk(img, 'vda'));
    const d2 = def('d2', disk(img, 'vdb'));
    const held = await hostA.acquire(hostA.leasesOf(d1), taker(d1), 0);
    const lease = hostB.leasesOf(d2)[0]!;
    expect(hostB.holder(lease)).toMatchObject({ host: 'host-a', domain: 'd1', uuid: d1.uuid, disk: img });
    expect(await hostB.isFree(lease)).toBe(false);
    const err = await hostB.acquire([lease], taker(d2), 200).catch((e: unknown) => e);
    expect(isVmError(err) && err.type).toBe('DiskLeaseHeld');
    expect((err as Error).message).toBe(`disk ${img} (vdb) of 'd2' is in use: its lease is held by domain 'd1' (${d1.uuid}) on host host-a`);
    for (const fd of held.values()) closeSync(fd);
    expect(await hostB.isFree(lease)).toBe(true);
    const mine = await hostB.acquire([lease], taker(d2), 0);
    expect(hostA.holder(lease)).toMatchObject({ host: 'host-b', domain: 'd2' });
    for (const fd of mine.values()) closeSync(fd);
  });

  it('shared leases coexist and keep an exclusive taker out; all or nothing', async () => {
    const s1 = def('s1', disk(other, 'vda', '<shareable/>'));
    const s2 = def('s2', disk(other, 'vda', '<shareable/>'));
    const w = def('w', disk(img, 'vda') + disk(other, 'vdb'));
    const a = await hostA.acquire(hostA.leasesOf(s1), taker(s1), 0);
    const b = await hostB.acquire(hostB.leasesOf(s2), taker(s2), 0);
    const err = await hostA.acquire(hostA.leasesOf(w), taker(w), 0).catch((e: unknown) => e);
    expect(isVmError(err) && err.type).toBe('DiskLeaseHeld');
    // The first disk's lease was taken, then let go when the second was refused.
    expect(await hostA.isFree(hostA.leasesOf(w)[0]!)).toBe(true);
    for (const fd of [...a.values(), ...b.values()]) closeSync(fd);
    expect(await hostA.isFree(hostA.leasesOf(w)[1]!)).toBe(true);
  });
});

describe('a planted lease file', () => {
  it('a symlink in place of a lease file is not followed: OperationFailed, nothing written through it', async () => {
    const ls = new Lockspace(join(dir, 'ls4'), { host: 'h1', hostUuid: randomUUID() });
    const d = def('p1', disk(join(dir, 'p.img'), 'vda'));
    const lease = ls.leasesOf(d)[0]!;
    const target = join(dir, 'victim');
    writeFileSync(target, 'untouched');
    symlinkSync(target, lease.path);
    const err = await ls.acquire([lease], taker(d), 0).catch((e: unknown) => e);
    expect(isVmError(err) && err.type).toBe('OperationFailed');
    expect(readFileSync(target, 'utf8')).toBe('untouched');
  });
});

describe('lock state in the cookie', () => {
  const NAME = 'web-01';
  const UUID = '6f1c2a4e-3b7d-4c55-9a0e-2d8f61b7c3a9';
  const HOST = '0b6e9d2c-71a4-4f3e-8c5d-93e2a1f07b64';
  const state = {
    lockspace: 'ab'.repeat(16),
    leases: [
      { key: sha('/a'), mode: 'exclusive' as const },
      { key: sha('/b'), mode: 'shared' as const },
    ],
  };

  it('round-trips through the v3 cookie, marked mandatory', () => {
    const lockState = formatLockState(state);
    expect(lockState).toEqual({ driver: LOCK_DRIVER, leases: `lockspace=${'ab'.repeat(16)} exclusive=${sha('/a')} shared=${sha('/b')}` });
    const xml = formatMigrationCookie({ name: NAME, uuid: UUID, hostname: 'a', hostuuid: HOST, features: ['lockstate'], mandatory: [], lockState });
    expect(xml).toContain("<feature name='lockstate'/>");
    const back = parseMigrationCookie(xml, { name: NAME, uuid: UUID });
    expect(parseLockState(back.lockState!)).toEqual(state);
  });

  it('refuses another lock manager (ConfigUnsupported) and malformed lease lists (OperationInvalid)', () => {
    expect(typeOf(() => parseLockState({ driver: 'sanlock', leases: '__LIBVIRT__DISKS__:1/lease:0:5' }))).toBe('ConfigUnsupported');
    const bad = (leases: string) => typeOf(() => parseLockState({ driver: LOCK_DRIVER, leases }));
    const id = `lockspace=${'ab'.repeat(16)}`;
    expect(bad('')).toBe('OperationInvalid');
    expect(bad(`exclusive=${sha('/a')}`)).toBe('OperationInvalid');
    expect(bad('lockspace=../../etc')).toBe('OperationInvalid');
    expect(bad(`${id} exclusive=../../etc/passwd`)).toBe('OperationInvalid');
    expect(bad(`${id} owner=${sha('/a')}`)).toBe('OperationInvalid');
    expect(bad(`${id} exclusive=${sha('/a')} shared=${sha('/a')}`)).toBe('OperationInvalid');
    expect(bad(`${id} ${Array.from({ length: 1025 }, (_, i) => `shared=${sha(String(i))}`).join(' ')}`)).toBe('OperationInvalid');
    expect(bad(id)).toBeUndefined();
  });
});

describe("QEMU's own image locking", () => {
  it('is asked for on every disk with a source; a shareable disk lets other writers in', () => {
    const a = buildQemuArgs(def('q1', disk(img, 'vda') + disk(other, 'vdb', '<shareable/>')), {
      qmpSocket: '/run/q.sock',
      memoryBackingFile: '/dev/shm/q1.ram',
    });
    const drives = a.filter((_, i) => a[i - 1] === '-drive');
    const devices = a.filter((_, i) => a[i - 1] === '-device' && (a[i] ?? '').includes('drive='));
    expect(drives).toEqual([`file=${img},if=none,id=drive-vda,format=raw,file.locking=on`, `file=${other},if=none,id=drive-vdb,format=raw,file.locking=on`]);
    expect(devices[0]).not.toContain('share-rw');
    expect(devices[1]).toContain(',share-rw=on');
  });
});
