// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The incoming-migration port range, probed with real binds on 127.0.0.1.
import { describe, it, expect, afterEach } from 'vitest';
import { createServer, type Server } from 'node:net';
import { PortAllocator, canBind } from '../src/migration/port-allocator.js';
import { ErrorType, isVmError } from '../src/common/errors.js';

const HOST = '127.0.0.1';
const SIZE = 4;

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host: HOST, port }, () => {
      servers.push(s);
      resolve(s);
    });
  });
}

/** A private range of SIZE ports from 45000 up whose every port binds on 127.0.0.1 right now. */
async function freeRange(): Promise<{ min: number; max: number }> {
  for (let min = 45000; min < 46000; min += SIZE) {
    let ok = true;
    for (let p = min; p < min + SIZE && ok; p++) ok = await canBind(p, HOST);
    if (ok) return { min, max: min + SIZE - 1 };
  }
  throw new Error('no free 4-port range in 45000-45999 on 127.0.0.1');
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (err: unknown) => err,
  );
}

describe('PortAllocator', () => {
  it('hands out the lowest free port, in order', async () => {
    const { min, max } = await freeRange();
    const pa = new PortAllocator(min, max, { bindHost: HOST });
    expect(await pa.acquire('job-a')).toBe(min);
    expect(await pa.acquire('job-b')).toBe(min + 1);
    expect(await pa.acquire('job-c')).toBe(min + 2);
    expect(pa.owned()).toEqual(
      new Map([
        [min, 'job-a'],
        [min + 1, 'job-b'],
        [min + 2, 'job-c'],
      ]),
    );
  });

  it('is idempotent per owner, also for concurrent retries', async () => {
    const { min, max } = await freeRange();
    const pa = new PortAllocator(min, max, { bindHost: HOST });
    const [a, b] = await Promise.all([pa.acquire('job-a'), pa.acquire('job-a')]);
    expect(a).toBe(min);
    expect(b).toBe(min);
    expect(await pa.acquire('job-a')).toBe(min);
    expect(pa.owned().size).toBe(1);
    // Concurrent acquires by different owners never share a port.
    const ports = await Promise.all(['x', 'y', 'z'].map((o) => pa.acquire(o)));
    expect(new Set([a, ...ports]).size).toBe(SIZE);
  });

  it('gives a released port out again; releasing twice is harmless', async () => {
    const { min, max } = await freeRange();
    const pa = new PortAllocator(min, max, { bindHost: HOST });
    await pa.acquire('job-a');
    const b = await pa.acquire('job-b');
    await pa.acquire('job-c');
    pa.release(b);
    pa.release(b);
    expect(pa.owned().has(b)).toBe(false);
    expect(await pa.acquire('job-d')).toBe(b);
    expect(pa.releaseOwner('job-a')).toBe(min);
    expect(pa.releaseOwner('job-a')).toBeUndefined();
    expect(await pa.acquire('job-e')).toBe(min);
  });

  it('skips a port another program listens on', async () => {
    const { min, max } = await freeRange();
    await listen(min);
    await listen(min + 2);
    const pa = new PortAllocator(min, max, { bindHost: HOST });
    expect(await pa.acquire('job-a')).toBe(min + 1);
    expect(await pa.acquire('job-b')).toBe(min + 3);
    const err = await rejection(pa.acquire('job-c'));
    expect(isVmError(err, ErrorType.OperationFailed), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/2 held by jobs here, 2 in use by other programs/);
  });

  it('fails with OperationFailed when the range is exhausted, and recovers after a release', async () => {
    const { min, max } = await freeRange();
    const pa = new PortAllocator(min, max, { bindHost: HOST });
    for (let i = 0; i < SIZE; i++) await pa.acquire(`job-${i}`);
    const err = await rejection(pa.acquire('job-late'));
    expect(isVmError(err, ErrorType.OperationFailed), String(err)).toBe(true);
    expect((err as Error).message).toContain(`no free migration port in ${min}-${max} for job-late`);
    expect(pa.owned().size).toBe(SIZE);
    pa.release(min + 1);
    expect(await pa.acquire('job-late')).toBe(min + 1);
  });

  it('the default probe (0.0.0.0 and ::) also sees a listener on 127.0.0.1', async () => {
    const { min, max } = await freeRange();
    await listen(min);
    expect(await canBind(min)).toBe(false);
    expect(await canBind(min + 1)).toBe(true);
    const pa = new PortAllocator(min, max);
    expect(await pa.acquire('job-a')).toBe(min + 1);
  });

  it('uses the isFree hook when given and validates its range', async () => {
    const probed: number[] = [];
    const pa = new PortAllocator(100, 103, {
      isFree: (p) => {
        probed.push(p);
        return Promise.resolve(p % 2 === 1);
      },
    });
    expect(await pa.acquire('a')).toBe(101);
    expect(await pa.acquire('b')).toBe(103);
    expect(probed).toEqual([100, 101, 100, 102, 103]);
    for (const [lo, hi] of [
      [0, 10],
      [10, 9],
      [1, 65536],
      [1.5, 3],
    ]) {
      expect(() => new PortAllocator(lo as number, hi as number)).toThrowError(/invalid migration port range/);
    }
    await expect(pa.acquire('')).rejects.toThrowError(/owner/);
  });
});
