// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Which disks a storage migration copies and which storage counts as shared (libvirt's rules),
// and Begin's refusal of a local disk that would be left behind. Pure logic on parsed domain
// definitions and this machine's file systems; no QEMU or Temporal.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorType, isVmError } from '../src/common/errors.js';
import type { MigrateFlag } from '../src/common/migration-types.js';
import { parseDomainXml } from '../src/domain/index.js';
import { checkDiskSafety } from '../src/migration/checks.js';
import { isSharedStorage, planStorageCopy } from '../src/migration/storage-plan.js';
import { checkIncomingImages } from '../src/host/migration/storage-destination.js';

const dir = mkdtempSync(join(tmpdir(), 'vmf-plan-'));
const shared = join(dir, 'san');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function disk(target: string, extra: { path?: string; format?: string; readonly?: boolean; shareable?: boolean; device?: string; type?: string } = {}): string {
  const device = extra.device ?? 'disk';
  const type = extra.type ?? 'file';
  const source = extra.path === undefined ? '' : type === 'block' ? `<source dev='${extra.path}'/>` : `<source file='${extra.path}'/>`;
  return `<disk type='${type}' device='${device}'><driver name='qemu' type='${extra.format ?? 'qcow2'}' cache='none'/>${source}<target dev='${target}' bus='${device === 'cdrom' ? 'ide' : 'virtio'}'/>${extra.readonly ? '<readonly/>' : ''}${extra.shareable ? '<shareable/>' : ''}</disk>`;
}

function def(disks: string[]) {
  return parseDomainXml(
    `<domain type='qemu'><name>g</name><uuid>6f1c2a4e-3b7d-4c55-9a0e-2d8f61b7c3a9</uuid><memory unit='MiB'>64</memory><os><type arch='x86_64' machine='pc'>hvm</type></os><devices>${disks.join('')}</devices></domain>`,
  );
}

function refusal(fn: () => unknown): { type: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (isVmError(err)) return { type: err.type ?? '', message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

const DOMAIN = def([
  disk('vda', { path: join(dir, 'local.qcow2') }),
  disk('vdb', { path: join(shared, 'on-san.qcow2') }),
  disk('vdc', { path: join(dir, 'ro.qcow2'), readonly: true }),
  disk('vdd', { path: join(dir, 'shared-between-guests.raw'), format: 'raw', shareable: true }),
  disk('hdc', { device: 'cdrom', format: 'raw', readonly: true }),
]);

describe('storage plan', () => {
  it('counts a configured directory (and below it) as shared, and a local temp directory as not', () => {
    expect(isSharedStorage(join(shared, 'x', 'y.qcow2'), [shared])).toBe(true);
    expect(isSharedStorage(shared, [shared])).toBe(true);
    expect(isSharedStorage(`${shared}-other/y.qcow2`, [shared])).toBe(false);
    expect(isSharedStorage(join(dir, 'local.qcow2'), [shared])).toBe(false);
  });

  it('copies the writable local disks only: not shared, read-only, shareable or empty ones', () => {
    const all = planStorageCopy(DOMAIN, ['live', 'copy-storage-all'], undefined, [shared]);
    expect(all).toMatchObject({ sync: 'full' });
    expect(all!.disks.map((d) => d.target.dev)).toEqual(['vda']);
    expect(planStorageCopy(DOMAIN, ['live', 'copy-storage-inc'], undefined, [shared])!.sync).toBe('top');
    expect(planStorageCopy(DOMAIN, ['live'], undefined, [shared])).toBeUndefined();
    // --migrate-disks picks exactly the disks named, even one on shared storage.
    expect(planStorageCopy(DOMAIN, ['copy-storage-all'], ['vdb', 'vda'], [shared])!.disks.map((d) => d.target.dev)).toEqual(['vdb', 'vda']);
  });

  it('refuses a --migrate-disks name the domain lacks, a disk with nothing to copy, and what is not built', () => {
    expect(refusal(() => planStorageCopy(DOMAIN, ['copy-storage-all'], ['vdz'], []))).toMatchObject({
      type: ErrorType.OperationInvalid,
      message: expect.stringMatching(/no disk with target 'vdz'/),
    });
    expect(refusal(() => planStorageCopy(DOMAIN, ['copy-storage-all'], ['vdc'], []))).toMatchObject({
      type: ErrorType.OperationInvalid,
      message: expect.stringMatching(/read-only/),
    });
    expect(refusal(() => planStorageCopy(DOMAIN, ['copy-storage-all'], ['hdc'], []))).toMatchObject({ type: ErrorType.OperationInvalid });
    const raw = def([disk('vda', { path: join(dir, 'a.raw'), format: 'raw' })]);
    expect(planStorageCopy(raw, ['copy-storage-all'], undefined, [])!.disks).toHaveLength(1);
    expect(refusal(() => planStorageCopy(raw, ['copy-storage-inc'], undefined, []))).toMatchObject({
      type: ErrorType.ConfigUnsupported,
      message: expect.stringMatching(/backing file/),
    });
    const block = def([disk('vda', { path: '/dev/vmf-nonexistent', type: 'block', format: 'raw' })]);
    expect(refusal(() => planStorageCopy(block, ['copy-storage-all'], undefined, []))).toMatchObject({
      type: ErrorType.ConfigUnsupported,
      message: expect.stringMatching(/block disk/),
    });
  });

  it("refuses a local writable disk that is not copied, as libvirt's 'migration without shared storage is unsafe'", () => {
    const flags: MigrateFlag[] = ['live'];
    const r = refusal(() => checkDiskSafety(DOMAIN, flags, { sharedStoragePaths: [shared] }));
    expect(r.type).toBe(ErrorType.MigrateUnsafe);
    expect(r.message).toMatch(/migration without shared storage is unsafe: disk vda \(.*local\.qcow2\)/);
    expect(r.message).not.toMatch(/\b(vdb|vdc|vdd|hdc) \(/);
    // Copied, or declared shared, or overridden with 'unsafe': accepted.
    expect(() => checkDiskSafety(DOMAIN, flags, { sharedStoragePaths: [shared], copied: new Set(['vda']) })).not.toThrow();
    expect(() => checkDiskSafety(DOMAIN, flags, { sharedStoragePaths: [shared, dir] })).not.toThrow();
    expect(() => checkDiskSafety(DOMAIN, ['live', 'unsafe'], { sharedStoragePaths: [] })).not.toThrow();
    // Where the host's shared storage is not known (a destination's Prepare), only the cache rule applies.
    expect(() => checkDiskSafety(DOMAIN, flags)).not.toThrow();
  });
});

describe("the destination's checks before it creates images", () => {
  const vm = (path: string, format = 'qcow2') => def([disk('vda', { path, format })]);

  it('refuses an existing image, a missing directory, a missing backing file, and too little room; accepts a free path', () => {
    const free = join(dir, 'new.qcow2');
    expect(checkIncomingImages(vm(free), { disks: [{ target: 'vda', capacityBytes: 1 << 20, allocationBytes: 1 << 16 }] })).toMatchObject([
      { target: 'vda', path: free, format: 'qcow2' },
    ]);
    writeFileSync(join(dir, 'there.qcow2'), '');
    expect(refusal(() => checkIncomingImages(vm(join(dir, 'there.qcow2')), { disks: [{ target: 'vda', capacityBytes: 1 }] }))).toMatchObject({
      type: ErrorType.OperationInvalid,
      message: expect.stringMatching(/already exists/),
    });
    expect(refusal(() => checkIncomingImages(vm(join(dir, 'nodir', 'x.qcow2')), { disks: [{ target: 'vda', capacityBytes: 1 }] }))).toMatchObject({
      type: ErrorType.OperationInvalid,
      message: expect.stringMatching(/does not exist/),
    });
    expect(
      refusal(() => checkIncomingImages(vm(free), { disks: [{ target: 'vda', capacityBytes: 1, backingFile: 'base-missing.qcow2', backingFormat: 'qcow2' }] })),
    ).toMatchObject({ type: ErrorType.OperationInvalid, message: expect.stringMatching(/needs the backing file .*base-missing\.qcow2/) });
    // An exabyte of data: no file system here has that room.
    expect(refusal(() => checkIncomingImages(vm(free), { disks: [{ target: 'vda', capacityBytes: 2 ** 60, allocationBytes: 2 ** 60 }] }))).toMatchObject({
      type: ErrorType.OperationFailed,
      message: expect.stringMatching(/not enough free space for disk 'vda'/),
    });
    expect(refusal(() => checkIncomingImages(vm(free), { disks: [{ target: 'vdq', capacityBytes: 1 }] }))).toMatchObject({
      type: ErrorType.OperationInvalid,
      message: expect.stringMatching(/does not have/),
    });
  });
});
