// QmpClient against a real QEMU 7.2 (TCG, no guest), one QEMU per test.
import { describe, it, expect, afterEach } from 'vitest';
import { closeSync, openSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient, type QmpEvent } from '../src/qemu/qmp-client.js';
import { ErrorType, isVmError } from '../src/common/errors.js';
import { startBareQemu, withDeadline, type BareQemu } from './helpers/qemu-process.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(): Promise<{ qemu: BareQemu; qmp: QmpClient }> {
  const qemu = await startBareQemu();
  cleanups.push(() => qemu.stop());
  const qmp = await QmpClient.connect(qemu.qmpPath);
  cleanups.push(() => qmp.close());
  return { qemu, qmp };
}

function resumeProcess(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    /* already gone */
  }
}

/** Resolves with the rejection reason; fails the test if `p` resolves. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (err: unknown) => err,
  );
}

function expectVmError(err: unknown, type: ErrorType): asserts err is Error & { type: string; details?: unknown[] } {
  expect(isVmError(err, type), `expected ${type}, got ${String(err)}`).toBe(true);
}

describe('QmpClient (real QEMU)', { timeout: 30_000 }, () => {
  it('connects, reads the greeting version and runs query-status', async () => {
    const { qmp } = await setup();
    // Any QEMU the project runs on (7.2 to 10.x): the greeting's version is read, whichever it is.
    expect(qmp.version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(typeof qmp.version.package).toBe('string');
    const status = await qmp.execute<{ status: string; running: boolean }>('query-status');
    expect(status.status).toBe('prelaunch');
    expect(status.running).toBe(false);
    expect(qmp.isClosed).toBe(false);
  });

  it('matches 50 concurrent commands by id, and reassembles a reply spread over many reads', async () => {
    const { qmp } = await setup();
    const kinds = ['query-status', 'query-name', 'query-version'] as const;
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const cmd = kinds[i % kinds.length]!;
        return { cmd, reply: await qmp.execute<Record<string, unknown>>(cmd) };
      }),
    );
    for (const { cmd, reply } of results) {
      if (cmd === 'query-status') expect(reply.status).toBe('prelaunch');
      if (cmd === 'query-name') expect(reply).toEqual({});
      if (cmd === 'query-version') expect((reply.qemu as { major: number }).major).toBe(qmp.version.qemu.major);
    }
    // query-qmp-schema is a reply of a few hundred KiB: it arrives in many chunks.
    const schema = await qmp.execute<{ name: string; 'meta-type': string }[]>('query-qmp-schema');
    expect(schema.length).toBeGreaterThan(500);
    expect(schema.some((e) => e.name === 'query-status' && e['meta-type'] === 'command')).toBe(true);
    expect(await qmp.execute<{ status: string }>('query-status')).toMatchObject({ status: 'prelaunch' });
  });

  it('delivers RESUME after cont and STOP after stop', async () => {
    const { qmp } = await setup();
    const seen: QmpEvent[] = [];
    const unsubscribe = qmp.onEvent((ev) => seen.push(ev));

    const resumed = qmp.waitForEvent('RESUME', { timeoutMs: 10_000 });
    await qmp.execute('cont');
    const resume = await resumed;
    expect(resume.event).toBe('RESUME');
    expect(resume.timestamp.seconds).toBeGreaterThan(0);
    expect(await qmp.execute<{ status: string }>('query-status')).toMatchObject({ status: 'running' });

    const stopped = qmp.waitForEvent('STOP', { timeoutMs: 10_000 });
    await qmp.execute('stop');
    await stopped;
    expect((await qmp.execute<{ status: string }>('query-status')).status).toBe('paused');

    unsubscribe();
    const names = seen.map((e) => e.event);
    expect(names.indexOf('RESUME')).toBeGreaterThanOrEqual(0);
    expect(names.indexOf('STOP')).toBeGreaterThan(names.indexOf('RESUME'));

    // The predicate filters, the deadline rejects with QmpTimeout, an abort rejects too.
    const never = qmp.waitForEvent('RESUME', { timeoutMs: 150, predicate: () => false });
    await qmp.execute('cont'); // a RESUME arrives, and the predicate turns it down
    expectVmError(await rejection(never), ErrorType.QmpTimeout);
    const ac = new AbortController();
    const aborted = qmp.waitForEvent('SHUTDOWN', { signal: ac.signal });
    ac.abort();
    expectVmError(await rejection(aborted), ErrorType.OperationAborted);
  });

  it('passes HMP commands through', async () => {
    const { qmp } = await setup();
    const text = await qmp.hmp('info status');
    expect(text).toMatch(/paused|running/);
  });

  it('rejects an unknown command with QmpError carrying the class', async () => {
    const { qmp } = await setup();
    const err = await rejection(qmp.execute('no-such-command'));
    expectVmError(err, ErrorType.QmpError);
    expect(err.message).toContain('CommandNotFound');
    expect(err.details?.[0]).toMatchObject({ class: 'CommandNotFound', command: 'no-such-command' });
    // The connection is still fine afterwards.
    expect(await qmp.execute<{ status: string }>('query-status')).toMatchObject({ status: 'prelaunch' });
  });

  it('times out a command QEMU cannot answer, then drops the late reply', async () => {
    const { qemu, qmp } = await setup();
    cleanups.push(() => resumeProcess(qemu.pid)); // SIGKILL works on a stopped process anyway
    process.kill(qemu.pid, 'SIGSTOP');
    const t0 = Date.now();
    const err = await rejection(qmp.execute('query-status', undefined, { timeoutMs: 200 }));
    expectVmError(err, ErrorType.QmpTimeout);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    process.kill(qemu.pid, 'SIGCONT');
    // QEMU now answers the timed-out query-status first; had that reply been matched to the next
    // command, query-version would get a status object.
    const version = await qmp.execute<{ qemu: { major: number } }>('query-version');
    expect(version.qemu.major).toBe(qmp.version.qemu.major);
    expect(await qmp.execute<{ status: string }>('query-status')).toMatchObject({ status: 'prelaunch' });
    expect(qmp.isClosed).toBe(false);
  });

  it('reports QemuGone to pending and later calls when QEMU dies', async () => {
    const { qemu, qmp } = await setup();
    const event = qmp.waitForEvent('RESUME');
    process.kill(qemu.pid, 'SIGSTOP');
    const pending = qmp.execute('query-status'); // unanswerable: QEMU is stopped
    const eventErr = rejection(event);
    const pendingErr = rejection(pending);
    process.kill(qemu.pid, 'SIGKILL');

    expectVmError(await withDeadline(eventErr, 10_000, 'waitForEvent did not settle'), ErrorType.QemuGone);
    expectVmError(await withDeadline(pendingErr, 10_000, 'execute did not settle'), ErrorType.QemuGone);
    const closedWith = await withDeadline(qmp.closed, 10_000, 'closed did not settle');
    expectVmError(closedWith, ErrorType.QemuGone);
    expect(qmp.isClosed).toBe(true);
    expectVmError(await rejection(qmp.execute('query-status')), ErrorType.QemuGone);
    expectVmError(await rejection(qmp.waitForEvent('STOP')), ErrorType.QemuGone);
    expect((await qemu.exited).signal).toBe('SIGKILL');
  });

  it('close() is local, idempotent and fails pending commands with QemuGone', async () => {
    const { qemu, qmp } = await setup();
    cleanups.push(() => resumeProcess(qemu.pid));
    process.kill(qemu.pid, 'SIGSTOP');
    const pending = rejection(qmp.execute('query-status'));
    await qmp.close();
    await qmp.close();
    expectVmError(await pending, ErrorType.QemuGone);
    expectVmError(await qmp.closed, ErrorType.QemuGone);
    process.kill(qemu.pid, 'SIGCONT');
    // QEMU takes a new client once it notices the old one left.
    const again = await QmpClient.connect(qemu.qmpPath);
    cleanups.push(() => again.close());
    expect((await again.execute<{ status: string }>('query-status')).status).toBe('prelaunch');
  });

  it('fails connect with QemuGone when nothing listens and QmpTimeout when QEMU hangs', async () => {
    const qemu = await startBareQemu();
    cleanups.push(() => qemu.stop());
    expectVmError(await rejection(QmpClient.connect(join(qemu.dir, 'nope.sock'))), ErrorType.QemuGone);
    cleanups.push(() => resumeProcess(qemu.pid));
    process.kill(qemu.pid, 'SIGSTOP');
    expectVmError(await rejection(QmpClient.connect(qemu.qmpPath, { timeoutMs: 300 })), ErrorType.QmpTimeout);
  });

  it('hands QEMU a descriptor with getfd over SCM_RIGHTS', async () => {
    const { qemu, qmp } = await setup();
    const file = join(qemu.dir, 'handed-over');
    writeFileSync(file, 'x');
    const fd = openSync(file, 'r');
    cleanups.push(() => closeSync(fd));
    const qemuHolds = (): boolean =>
      readdirSync(`/proc/${qemu.pid}/fd`).some((n) => {
        try {
          return readlinkSync(`/proc/${qemu.pid}/fd/${n}`) === file;
        } catch {
          return false;
        }
      });
    expect(qemuHolds()).toBe(false);

    expect(await qmp.execute('getfd', { fdname: 'f1' }, { fds: [fd] })).toEqual({});
    expect(qemuHolds()).toBe(true);
    expect(await qmp.execute('closefd', { fdname: 'f1' })).toEqual({});
    expect(qemuHolds()).toBe(false);

    const err = await rejection(qmp.execute('closefd', { fdname: 'f1' }));
    expectVmError(err, ErrorType.QmpError);
    expect(err.message).toContain('f1');
    // A closed descriptor is refused before it can break the connection.
    const closedFd = openSync(file, 'r');
    closeSync(closedFd);
    expectVmError(await rejection(qmp.execute('getfd', { fdname: 'f2' }, { fds: [closedFd] })), ErrorType.OperationInvalid);
    expect(await qmp.execute<{ status: string }>('query-status')).toMatchObject({ status: 'prelaunch' });
  });
});
