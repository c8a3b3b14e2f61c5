// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Parallel migration's request rules (virsh migrate --parallel [--parallel-connections N], QEMU's
// multifd): the count needs the flag and QEMU's range; what multifd cannot carry (post-copy,
// XBZRLE, also a policy's cache, the tunnel's handed-over descriptor) is ConfigUnsupported with
// the reason; both ends need the multifd capability, and a probe without it is refused naming
// it; the capability is written in full (off for a migration without the flag). The CLI maps
// virsh's names. No QEMU or Temporal needed: migrate.test.ts and migrate-tunnel.test.ts run it.
import { describe, expect, it } from 'vitest';
import { ErrorType, isVmError } from '../src/common/errors.js';
import { validateMigrateInput, type MigrateInput } from '../src/common/migration-types.js';
import { migrationNeeds } from '../src/common/migration-needs.js';
import { checkParallel, DEFAULT_PARALLEL_CONNECTIONS } from '../src/common/parallel-migration.js';
import { PROBED_COMMANDS, type QemuMigrationCapabilities } from '../src/common/qemu-capabilities.js';
import { checkMigrationEnd } from '../src/host/host-capabilities.js';
import { destinationCapabilities, sourceCapabilities } from '../src/qemu/migration-params.js';
import type { QemuProbe } from '../src/qemu/probe.js';
import { flagsOf } from '../src/cli/commands/migrate.js';
import { wholeNumber } from '../src/cli/args.js';
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

function probe(capabilities: string[]): QemuProbe {
  return {
    binary: '/usr/bin/qemu-system-x86_64',
    mtimeMs: 1,
    version: '10.0.2',
    package: 'test',
    machines: [{ name: 'pc-i440fx-10.0', alias: 'pc', isDefault: true }],
    migration: {
      migrationCapabilities: capabilities,
      migrationParameters: ['max-bandwidth', 'multifd-channels'],
      commands: Object.fromEntries(PROBED_COMMANDS.map((c) => [c, true])) as QemuMigrationCapabilities['commands'],
    },
    accels: {},
    probedAtMs: 0,
    durationMs: 0,
  };
}

describe('parallel migration input', () => {
  it('accepts --parallel in clear and with --tls, with or without a count (2, QEMU default, when none)', () => {
    expect(validateMigrateInput({ ...BASE, flags: ['live', 'parallel'] })).toEqual(['live', 'parallel']);
    expect(validateMigrateInput({ ...BASE, flags: ['live', 'tls', 'parallel'], parallelConnections: 4 })).toEqual(['live', 'tls', 'parallel']);
    expect(checkParallel(undefined, ['live', 'parallel'])).toBe(DEFAULT_PARALLEL_CONNECTIONS);
    expect(checkParallel(255, ['parallel'])).toBe(255);
    expect(checkParallel(undefined, ['live'])).toBeUndefined();
    // With what multifd runs beside: auto-converge, a storage copy, a non-live stream, a policy without an XBZRLE cache.
    expect(validateMigrateInput({ ...BASE, flags: ['live', 'parallel', 'auto-converge', 'copy-storage-all'] })).toContain('parallel');
    expect(validateMigrateInput({ ...BASE, flags: ['parallel'], parallelConnections: 1 })).toEqual(['parallel']);
    expect(validateMigrateInput({ ...BASE, flags: ['live', 'parallel'], policy: 'minimal-downtime' })).toContain('auto-converge');
  });

  it('a count needs the flag and QEMU range (1..255), as OperationInvalid; offline has no stream', () => {
    refused({ flags: ['live'], parallelConnections: 4 }, ErrorType.OperationInvalid, /needs 'parallel'/);
    for (const bad of [0, 256, 2.5, -1, '4' as unknown as number]) {
      refused(
        { flags: ['live', 'parallel'], parallelConnections: bad },
        ErrorType.OperationInvalid,
        /parallelConnections must be a whole number from 1 to 255/,
      );
    }
    refused({ flags: ['offline', 'persist-dest', 'parallel'] }, ErrorType.OperationInvalid, /'parallel' and 'offline' are mutually exclusive/);
  });

  it('what multifd cannot carry is ConfigUnsupported, with the reason', () => {
    refused({ flags: ['live', 'parallel', 'postcopy'] }, ErrorType.ConfigUnsupported, /Postcopy is not yet compatible with multifd/);
    refused({ flags: ['live', 'parallel', 'compressed'] }, ErrorType.ConfigUnsupported, /Multifd is not compatible with xbzrle/);
    // A policy's XBZRLE cache turns 'compressed' on, so it is refused the same way.
    refused({ flags: ['live', 'parallel'], policy: 'suspend-workload' }, ErrorType.ConfigUnsupported, /xbzrle/);
    // The tunnel hands QEMU one descriptor; QEMU 10.0.2's answers are quoted (measured: see the message).
    refused(
      { flags: ['live', 'tunnelled', 'parallel'], parallelConnections: 4 },
      ErrorType.ConfigUnsupported,
      /Migration requires multi-channel URIs \(e\.g\. tcp\).*Channel list has more than one main entry.*use --parallel with --tls/,
    );
  });

  it('both ends need multifd; a probe without it is refused naming it; capabilities are written in full', () => {
    for (const end of ['source', 'destination'] as const) {
      expect(migrationNeeds(['live', 'parallel'], end).capabilities.map((c) => c.name)).toEqual(['events', 'multifd']);
      expect(migrationNeeds(['live'], end).capabilities.map((c) => c.name)).not.toContain('multifd');
      expect(() => checkMigrationEnd('mf-a', end, probe(['events', 'multifd']), ['live', 'parallel'], 'pc')).not.toThrow();
      let caught: unknown;
      try {
        checkMigrationEnd('mf-b', end, probe(['events']), ['live', 'parallel'], 'pc');
      } catch (err) {
        caught = err;
      }
      expect((caught as { type?: string }).type).toBe(ErrorType.ConfigUnsupported);
      expect((caught as Error).message).toBe(
        `${end} host 'mf-b' cannot take part in this migration: its QEMU 10.0.2 (/usr/bin/qemu-system-x86_64) lacks migration capability 'multifd' (for 'parallel' (multifd))`,
      );
    }
    expect(sourceCapabilities(['live', 'parallel']).multifd).toBe(true);
    expect(destinationCapabilities(['live', 'parallel']).multifd).toBe(true);
    // An earlier parallel migration's multifd must not stay on in a QEMU for the next stream.
    expect(sourceCapabilities(['live'])).toHaveProperty('multifd', false);
    expect(destinationCapabilities(['live', 'tls'])).toHaveProperty('multifd', false);
  });

  it("the CLI takes virsh's --parallel and --parallel-connections", () => {
    expect(flagsOf({ live: true, parallel: true, tls: true })).toEqual(['live', 'tls', 'parallel']);
    expect(wholeNumber('4', '--parallel-connections')).toBe(4);
    expect(() => wholeNumber('four', '--parallel-connections')).toThrow(UsageError);
  });
});
