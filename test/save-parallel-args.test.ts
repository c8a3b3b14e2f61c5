// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// How a save's --parallel-channels and --image-format combine (as libvirt 11 reads them), and what
// a host's QEMU must have for a sparse image: pure decisions, no QEMU. The end-to-end side is in
// save-restore.test.ts, save-fault-points.test.ts and libvirt-interop.test.ts.
import { describe, expect, it } from 'vitest';
import { ErrorType, isVmError } from '../src/common/errors.js';
import { checkParallelChannels, checkSaveFormat } from '../src/common/save-types.js';
import { missingForSparse } from '../src/common/save-needs.js';

function typeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    for (const t of Object.values(ErrorType)) if (isVmError(err, t)) return t;
    return 'untyped';
  }
}

describe('save format and parallel channels', () => {
  it('channels alone mean a sparse image; sparse alone has one channel; classic formats have none', () => {
    expect(checkSaveFormat(undefined, 4)).toEqual({ format: 'sparse', parallelChannels: 4 });
    expect(checkSaveFormat('sparse', undefined)).toEqual({ format: 'sparse', parallelChannels: 1 });
    expect(checkSaveFormat('sparse', 255)).toEqual({ format: 'sparse', parallelChannels: 255 });
    expect(checkSaveFormat(undefined, undefined)).toEqual({ format: 'raw' });
    expect(checkSaveFormat('zstd', undefined)).toEqual({ format: 'zstd' });
  });

  it('refuses channels with a classic format (ConfigUnsupported) and channel counts QEMU cannot run (OperationInvalid)', () => {
    for (const f of ['raw', 'gzip', 'zstd', 'xz'])
      expect(
        typeOf(() => checkSaveFormat(f, 2)),
        f,
      ).toBe(ErrorType.ConfigUnsupported);
    for (const n of [0, -1, 1.5, 256, '2', null])
      expect(
        typeOf(() => checkParallelChannels(n)),
        String(n),
      ).toBe(ErrorType.OperationInvalid);
    expect(typeOf(() => checkSaveFormat('lz77', undefined))).toBe(ErrorType.OperationInvalid);
  });

  it('names what a QEMU lacks for a sparse image, direct-io only for --bypass-cache', () => {
    const full = { migrationCapabilities: ['events', 'multifd', 'mapped-ram'], migrationParameters: ['multifd-channels', 'direct-io'] };
    expect(missingForSparse(full, true)).toEqual([]);
    // QEMU 7.2: multifd but no mapped-ram, no direct-io.
    const old = { migrationCapabilities: ['events', 'multifd'], migrationParameters: ['multifd-channels'] };
    expect(missingForSparse(old, false)).toEqual(["migration capability 'mapped-ram' (for the sparse image format)"]);
    expect(missingForSparse(old, true)).toEqual([
      "migration capability 'mapped-ram' (for the sparse image format)",
      "migration parameter 'direct-io' (for --bypass-cache with the sparse format)",
    ]);
  });
});
