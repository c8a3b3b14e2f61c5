// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Storage migration's request rules (libvirt's): copy-storage-all and -inc exclude each other,
// migrate-disks needs one of them and names disks by target (through the tunnel too), and what is
// not built (with post-copy, over protocol v2) is refused as ConfigUnsupported; the CLI maps virsh's
// --copy-storage-all / --copy-storage-inc / --migrate-disks onto them. No QEMU or Temporal needed.
import { describe, expect, it } from 'vitest';
import { ErrorType, isVmError } from '../src/common/errors.js';
import { copiesStorage, validateMigrateInput, type MigrateInput } from '../src/common/migration-types.js';
import { flagsOf, migrateDisksOf } from '../src/cli/commands/migrate.js';
import { UsageError } from '../src/cli/exit-codes.js';

const BASE: MigrateInput = { domain: 'g', sourceHost: 'host-a', destinationHost: 'host-b' };

function refused(input: Partial<MigrateInput>, type: string, message: RegExp): void {
  let caught: unknown;
  try {
    validateMigrateInput({ ...BASE, ...input });
  } catch (err) {
    caught = err;
  }
  expect(isVmError(caught), String(caught)).toBe(true);
  expect((caught as { type: string }).type).toBe(type);
  expect((caught as Error).message).toMatch(message);
}

describe('storage migration input', () => {
  it('accepts copy-storage-all or -inc, with or without migrate-disks', () => {
    expect(validateMigrateInput({ ...BASE, flags: ['live', 'copy-storage-all'] })).toEqual(['live', 'copy-storage-all']);
    expect(validateMigrateInput({ ...BASE, flags: ['live', 'copy-storage-inc', 'tls'], migrateDisks: ['vda', 'sdb'] })).toContain('copy-storage-inc');
    // Through the workers' tunnel as well (migrate-tunnel.test.ts moves a disk that way).
    expect(validateMigrateInput({ ...BASE, flags: ['live', 'tunnelled', 'copy-storage-all'] })).toEqual(['live', 'tunnelled', 'copy-storage-all']);
    expect(copiesStorage(['copy-storage-inc'])).toBe(true);
    expect(copiesStorage(['live', 'tls'])).toBe(false);
  });

  it('refuses what libvirt refuses, as OperationInvalid', () => {
    refused({ flags: ['copy-storage-all', 'copy-storage-inc'] }, ErrorType.OperationInvalid, /mutually exclusive/);
    refused({ flags: ['live'], migrateDisks: ['vda'] }, ErrorType.OperationInvalid, /needs 'copy-storage-all' or 'copy-storage-inc'/);
    refused({ flags: ['copy-storage-all'], migrateDisks: [] }, ErrorType.OperationInvalid, /list of 1\.\./);
    refused({ flags: ['copy-storage-all'], migrateDisks: ['vda', 'vda'] }, ErrorType.OperationInvalid, /names a disk twice/);
    refused({ flags: ['copy-storage-all'], migrateDisks: ['../etc'] }, ErrorType.OperationInvalid, /not a disk target name/);
    refused({ flags: ['copy-storage-all'], migrateDisks: [7 as unknown as string] }, ErrorType.OperationInvalid, /not a disk target name/);
    refused({ flags: ['copy-storage-all', 'offline', 'persist-dest'] }, ErrorType.OperationInvalid, /offline migration moves no disk data/);
  });

  it('refuses combinations that are not built as ConfigUnsupported', () => {
    refused({ flags: ['live', 'copy-storage-inc', 'postcopy'] }, ErrorType.ConfigUnsupported, /postcopy/);
    refused({ flags: ['live', 'tunnelled', 'copy-storage-all', 'postcopy'] }, ErrorType.ConfigUnsupported, /postcopy/);
    refused({ flags: ['copy-storage-all'], maxProtocol: 2 }, ErrorType.ConfigUnsupported, /protocol v3/);
    refused({ flags: ['tunnelled', 'copy-storage-all'], maxProtocol: 2 }, ErrorType.ConfigUnsupported, /protocol v3/);
  });

  it('the CLI maps virsh option names onto the flags and the disk list', () => {
    expect(flagsOf({ live: true, 'copy-storage-all': true })).toEqual(['live', 'copy-storage-all']);
    expect(flagsOf({ 'copy-storage-inc': true })).toEqual(['copy-storage-inc']);
    expect(migrateDisksOf('vda,vdb')).toEqual(['vda', 'vdb']);
    expect(migrateDisksOf(undefined)).toBeUndefined();
    expect(() => migrateDisksOf('vda,,vdb')).toThrow(UsageError);
    expect(() => migrateDisksOf(true)).toThrow(UsageError);
  });
});
