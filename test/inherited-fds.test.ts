// A child of the host worker must not inherit the worker's QMP connections
// (usocket's sockets are not close-on-exec): a helper or QEMU outliving a killed
// worker would otherwise hold another domain's monitor and lock the restarted
// worker out of it.
import { readdirSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../src/qemu/qmp-client.js';
import { spawnHelper } from '../src/saveimage/compressor.js';
import { which } from '../src/support/which.js';
import { startBareQemu, type BareQemu } from './helpers/qemu-process.js';

const sockets = (pid: number | 'self'): Map<string, string> => {
  const out = new Map<string, string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith('socket:')) out.set(fd, target);
    } catch {
      // closed while listed
    }
  }
  return out;
};

let qemu: BareQemu;
let qmp: QmpClient;

beforeAll(async () => {
  qemu = await startBareQemu();
  qmp = await QmpClient.connect(qemu.qmpPath);
});

afterAll(async () => {
  await qmp?.close();
  await qemu?.stop();
});

describe('descriptors a child inherits', () => {
  it('a helper spawned while a QMP connection is open does not get that connection', async () => {
    const ours = [...sockets('self').values()];
    const helper = spawnHelper({ program: 'sleep', path: which('sleep')!, args: ['30'] }, 'ignore', 'ignore');
    try {
      const theirs = [...sockets(helper.pid).values()];
      expect(ours.length).toBeGreaterThan(0);
      expect(theirs.filter((s) => ours.includes(s))).toEqual([]);
      // The worker's own connection is untouched.
      expect(await qmp.execute('query-status')).toMatchObject({ status: 'prelaunch' });
    } finally {
      helper.kill();
      await helper.exited;
    }
  });
});
