// vmferry migrate --timeout: a live migration that cannot converge (a guest
// dirtying 16 MiB continuously, a 16 MiB/s limit, so QEMU never sees the rest fit
// in its 300 ms downtime) has its guest suspended on the source when the timeout
// passes; it then completes and the guest runs on the destination.
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrateResult } from '../src/common/migration-types.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { writeDirtyingKernel } from './helpers/dirtying-kernel.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf } from './helpers/migration.js';
import { jsonOf, vmferry } from './helpers/vmferry-cli.js';

const cluster = new TestCluster();
const A = 'cl-t-a';
const B = 'cl-t-b';
const MiB = 1024 * 1024;
const COUNTER = 16 * MiB;

/** The guest's pass counter (the first dirtied word), read through its RAM file. */
function passes(ramFile: string): number {
  const fd = openSync(ramFile, 'r');
  try {
    const b = Buffer.alloc(4);
    readSync(fd, b, 0, 4, COUNTER);
    return b.readUInt32LE(0);
  } finally {
    closeSync(fd);
  }
}

async function waitForPasses(ramFile: string): Promise<void> {
  const first = passes(ramFile);
  await waitFor('the guest to keep dirtying its memory', () => passes(ramFile) > first + 10, { timeoutMs: 10_000, intervalMs: 20 });
}

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([cluster.startHost(A), cluster.startHost(B), cluster.startControl()]);
});

afterAll(async () => {
  await cluster.removeAllDomains([A, B]);
  await cluster.stop();
});

describe('migrate --timeout', () => {
  it('suspends a non-converging guest on the source after the timeout; the migration completes and the guest runs on the destination', async () => {
    const kernel = join(cluster.root, 'dirty.bin');
    writeDirtyingKernel(kernel, COUNTER, COUNTER + 16 * MiB);
    const xml = guestXml({ name: 'cl-t1', memoryMiB: 64 }).replace("<boot dev='hd'/>", `<kernel>${kernel}</kernel>`);
    await cluster.op(A, { op: 'define', xml });
    const src = domainOf(await cluster.op(A, { op: 'start', name: 'cl-t1' }));
    await waitForPasses(src.memoryBackingFile!);

    const t0 = Date.now();
    const r = await vmferry({ address: cluster.address, host: A }, 'migrate', 'cl-t1', B, '--live', '--bandwidth', '16', '--timeout', '2', '--json');
    const elapsed = Date.now() - t0;
    expect(r.code, r.stderr).toBe(0);
    const result = jsonOf<MigrateResult>(r);
    const s = result.stats;
    console.log(
      `migrate --timeout 2: ${elapsed} ms end to end (CLI included), QEMU total ${s.totalTimeMs} ms, downtime ${s.downtimeMs} ms, ${((s.transferredBytes ?? 0) / MiB).toFixed(1)} MiB sent`,
    );

    // The timer, not convergence, stopped the guest: at least 2 s into the stream, and the STOP QEMU
    // reported is the one the timer caused (the final switch-over found the guest stopped already).
    expect(s.timeoutSuspendedAtMs).toBeDefined();
    expect(s.totalTimeMs!).toBeGreaterThanOrEqual(2000);
    expect(s.timeoutSuspendedAtMs! - t0).toBeGreaterThanOrEqual(2000);
    expect(Math.abs(s.sourceStoppedAtMs! - s.timeoutSuspendedAtMs!)).toBeLessThan(500);
    // It completes soon after: what was left of 16 MiB at 16 MiB/s, plus the switch-over.
    expect(s.totalTimeMs!).toBeLessThan(6000);
    expect(s.timeoutSuspendedAtMs! - t0).toBeLessThan(10_000);
    expect(r.stderr).not.toMatch(/error/);

    expect(result).toMatchObject({ destinationHost: B, destination: { state: 'running' } });
    const dst = domainOf(await cluster.op(B, { op: 'info', name: 'cl-t1' }));
    expect(dst.state).toBe('running');
    await waitForPasses(dst.memoryBackingFile!);
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'cl-t1' })).state).toBe('shutoff');
  });
});
