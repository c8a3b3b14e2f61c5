// The storage bench's baseline: libvirt's NBD path done by hand over QMP between two
// QEMUs the bench starts in the two host namespaces, with the parameters vmferry uses by
// default (unlimited bandwidth, QEMU's downtime limit, events + pause-before-switchover,
// mirror sync=full at unlimited speed). No vmferry code runs the migration: only the
// QMP client and the command line vmferry builds for the same definition (so both run
// the same guest). Timed like a vmferry job: from creating the destination image to
// the destination running and the source gone.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { QmpEvent } from '../src/qemu/qmp-client.js';
import type { BenchEnv, RawQemu } from './common.js';

const run = promisify(execFile);

export interface RawSide {
  /** Namespace the QEMU runs in, and its address on the migration link. */
  ns: string;
  addr: string;
}

export interface RawGuest {
  q: RawQemu;
  side: RawSide;
  image: string;
}

export interface RawOutcome {
  guest: RawGuest;
  ms: number;
  /** Source STOP to destination RESUME, from QEMU's own event timestamps (one clock: one machine). */
  downtimeMs: number;
  /** ms from the start: destination serving its export, mirror ready, memory stream completed. */
  phases: { prepared: number; mirrorReady: number; streamCompleted: number };
}

const DRIVE = 'drive-vda';
const NBD_NODE = 'bench-nbd-vda';
const at = (e: QmpEvent): number => e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;

export interface RawMigrateSpec {
  env: BenchEnv;
  src: RawGuest;
  dest: RawSide;
  destImage: string;
  /** The destination's command line for an image path (with -incoming defer), and its QMP socket. */
  commandLine: (image: string, qmpSocket: string) => string[];
  qmpSocket: string;
  sizeBytes: number;
  clusterBytes: number;
  migrationPort: number;
  nbdPort: number;
}

export async function rawStorageMigrate(s: RawMigrateSpec): Promise<RawOutcome> {
  const { env, src } = s;
  const t0 = Date.now();
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${s.clusterBytes}`, s.destImage, String(s.sizeBytes)]);
  const dq = await env.rawLaunch(s.commandLine(s.destImage, s.qmpSocket), s.qmpSocket, ['ip', 'netns', 'exec', s.dest.ns]);
  const dest: RawGuest = { q: dq, side: s.dest, image: s.destImage };
  const events = { capabilities: [{ capability: 'events', state: true }] };
  // Destination: the incoming stream, then the NBD server exporting the new image writable.
  await dq.qmp.execute('migrate-set-capabilities', events);
  await dq.qmp.execute('migrate-incoming', { uri: `tcp:${s.dest.addr}:${s.migrationPort}` });
  const blocks = await dq.qmp.execute<{ device?: string; inserted?: { 'node-name'?: string } }[]>('query-block');
  const node = blocks.find((b) => b.device === DRIVE)?.inserted?.['node-name'];
  if (!node) throw new Error(`the destination QEMU has no ${DRIVE}`);
  await dq.qmp.execute('nbd-server-start', { addr: { type: 'inet', data: { host: s.dest.addr, port: String(s.nbdPort) } } });
  await dq.qmp.execute('block-export-add', { type: 'nbd', id: DRIVE, 'node-name': node, name: DRIVE, writable: true });
  const prepared = Date.now() - t0;

  // Source: mirror the disk into the export until it is ready.
  const ready = src.q.qmp.waitForEvent('BLOCK_JOB_READY', { timeoutMs: 600_000, predicate: (e) => e.data?.device === DRIVE });
  await src.q.qmp.execute('blockdev-add', {
    driver: 'nbd',
    'node-name': NBD_NODE,
    server: { type: 'inet', host: s.dest.addr, port: String(s.nbdPort) },
    export: DRIVE,
  });
  await src.q.qmp.execute('blockdev-mirror', { 'job-id': DRIVE, device: DRIVE, target: NBD_NODE, sync: 'full', speed: 0 });
  await ready;
  const mirrorReady = Date.now() - t0;

  // RAM, paused before the switchover; the mirror completes there, then the device state goes.
  const stopped = src.q.qmp.waitForEvent('STOP', { timeoutMs: 600_000 });
  const resumed = dq.qmp.waitForEvent('RESUME', { timeoutMs: 600_000 });
  const done = dq.qmp.waitForEvent('MIGRATION', { timeoutMs: 600_000, predicate: (e) => e.data?.status === 'completed' || e.data?.status === 'failed' });
  const preSwitchover = src.q.qmp.waitForEvent('MIGRATION', {
    timeoutMs: 600_000,
    predicate: (e) => e.data?.status === 'pre-switchover' || e.data?.status === 'failed',
  });
  await src.q.qmp.execute('migrate-set-capabilities', { capabilities: [...events.capabilities, { capability: 'pause-before-switchover', state: true }] });
  await src.q.qmp.execute('migrate-set-parameters', { 'max-bandwidth': Number.MAX_SAFE_INTEGER });
  await src.q.qmp.execute('migrate', { uri: `tcp:${s.dest.addr}:${s.migrationPort}` });
  if ((await preSwitchover).data?.status !== 'pre-switchover') throw new Error('raw migration failed before the switchover');
  const completed = src.q.qmp.waitForEvent('BLOCK_JOB_COMPLETED', { timeoutMs: 60_000, predicate: (e) => e.data?.device === DRIVE });
  // A ready mirror cancelled without force completes: the target holds every write (libvirt's way).
  await src.q.qmp.execute('block-job-cancel', { device: DRIVE });
  const c = await completed;
  if (c.data?.error) throw new Error(`the mirror failed at the switchover: ${String(c.data.error)}`);
  await src.q.qmp.execute('migrate-continue', { state: 'pre-switchover' });
  if ((await done).data?.status !== 'completed') throw new Error('raw migration failed');
  const streamCompleted = Date.now() - t0;
  await dq.qmp.execute('nbd-server-stop');
  await dq.qmp.execute('cont');
  const downtimeMs = at(await resumed) - at(await stopped);
  await env.rawKill(src.q);
  return { guest: dest, ms: Date.now() - t0, downtimeMs, phases: { prepared, mirrorReady, streamCompleted } };
}
