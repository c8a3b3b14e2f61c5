// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The fault-injection switchboard itself (the points are exercised by the job tests).
import { describe, expect, it } from 'vitest';
import { parseFaults } from '../src/support/fault-points.js';

describe('fault points', () => {
  it('parses point=action lists and refuses anything else', () => {
    expect([...parseFaults('save.mid-stream=crash, migrate.finish=fail,x=hold')]).toEqual([
      ['save.mid-stream', 'crash'],
      ['migrate.finish', 'fail'],
      ['x', 'hold'],
    ]);
    expect(parseFaults(undefined).size).toBe(0);
    expect(() => parseFaults('save=explode')).toThrow(/bad VMFERRY_FAULTS/);
    expect(() => parseFaults('=crash')).toThrow(/bad VMFERRY_FAULTS/);
  });
});
