// Live migration: vmferry's `migrate` workflow against raw QEMU driven over QMP,
// interleaved (raw, vmferry, raw, vmferry, ...) in one run so both see the same
// machine state; prints the ratio of medians. Each side ping-pongs one guest
// between two QEMUs over tcp loopback, its RAM (above 16 MiB) refilled with
// random bytes before every run.
//   raw:     spawn the destination with -incoming defer, migrate-incoming, migrate, wait, cont: until it runs
//   vmferry: workflow start to workflow result (Begin ... Confirm, source killed)
// Usage: node --import tsx bench/migrate.ts [--pairs N] [--mib M]   (BENCH_PROFILE=1 prints each run's step timeline)
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { parseDomainXml } from '../src/activities/domain/index.js';
import { isProcessAlive, terminate } from '../src/activities/host/proc.js';
import { buildQemuArgs } from '../src/activities/qemu/command-line.js';
import { launchQemu } from '../src/activities/qemu/launch.js';
import type { QmpClient, QmpEvent } from '../src/activities/qemu/qmp-client.js';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainOperationResult } from '../src/common/domain-types.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import type { MigrateInput, MigrateResult } from '../src/common/migration-types.js';
import { startDevServer } from '../src/local/dev-server.js';
import { freePort } from '../src/local/free-port.js';
import { findTemporalCli } from '../src/local/temporal-cli.js';
import { startWorkerProcess, type WorkerProcess } from '../src/local/worker-process.js';
import { workflowsPath } from '../src/workers/workflows-path.js';
import { fillRandom } from '../test/helpers/guest-memory.js';
import { guestXml } from '../test/helpers/guest-xml.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(process.argv[i + 1]);
};
const PAIRS = arg('pairs', 5);
const MIB = arg('mib', 256);
const FILL = (MIB - 16) * 1024 * 1024;
const say = (s: string): void => console.log(`[bench] ${s}`);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const evMs = (ev: QmpEvent): number => ev.timestamp.seconds * 1000 + ev.timestamp.microseconds / 1000;

const root = mkdtempSync(join(tmpdir(), 'vmf-bench-'));
const shm = join('/dev/shm', `vmf-bench-${process.pid}`);
mkdirSync(shm, { recursive: true });
const workers: WorkerProcess[] = [];
const cli = findTemporalCli();
if (!cli) throw new Error('no temporal CLI: run npm run setup');
const server = await startDevServer({ cliPath: cli, stateDir: join(root, 'temporal'), port: await freePort(), headless: true });

// ---- raw QEMU ------------------------------------------------------------
interface RawQemu {
  pid: number;
  qmp: QmpClient;
  ram: string;
}
const rawDef = parseDomainXml(guestXml({ name: 'rawguest', memoryMiB: MIB }));
let rawSeq = 0;
async function rawSpawn(incoming: boolean): Promise<RawQemu> {
  const n = rawSeq++;
  const ram = join(shm, `raw-${n}.ram`);
  const qmpSocket = join(root, `raw-${n}.qmp`);
  const args = buildQemuArgs(rawDef, { qmpSocket, memoryBackingFile: ram, extra: incoming ? ['-incoming', 'defer'] : [] });
  const { pid, qmp } = await launchQemu({ binary: 'qemu-system-x86_64', args, qmpSocket, logFile: join(root, `raw-${n}.log`) });
  return { pid, qmp, ram };
}
async function rawKill(q: RawQemu): Promise<void> {
  await terminate(q.pid);
  await q.qmp.close();
  rmSync(q.ram, { force: true });
}

let rawSource = await rawSpawn(false);
await rawSource.qmp.execute('cont');
let rawPort = 49400;
async function rawRun(): Promise<{ wallMs: number; downtimeMs: number }> {
  fillRandom(rawSource.ram, FILL);
  const t0 = performance.now();
  const dest = await rawSpawn(true);
  const port = rawPort++;
  await dest.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  await dest.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
  const src = rawSource.qmp;
  await src.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  // QEMU's default is 32 MiB/s; libvirt (and vmferry) migrate unlimited.
  await src.execute('migrate-set-parameters', { 'max-bandwidth': Number.MAX_SAFE_INTEGER });
  const stopped = src.waitForEvent('STOP', { timeoutMs: 120_000 });
  const done = dest.qmp.waitForEvent('MIGRATION', { timeoutMs: 120_000, predicate: (e) => e.data?.status === 'completed' || e.data?.status === 'failed' });
  await src.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
  const ev = await done;
  if (ev.data?.status !== 'completed') throw new Error('raw migration failed');
  const resumed = dest.qmp.waitForEvent('RESUME', { timeoutMs: 10_000 });
  await dest.qmp.execute('cont');
  const wallMs = performance.now() - t0;
  const downtimeMs = evMs(await resumed) - evMs(await stopped);
  await rawKill(rawSource);
  rawSource = dest;
  return { wallMs, downtimeMs };
}

// ---- vmferry ---------------------------------------------------------------
const { code } = await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: new DefaultLogger('WARN') });
const bundlePath = join(root, 'bundle.js');
(await import('node:fs')).writeFileSync(bundlePath, code);
const hostEnv = (name: string, portMin: number): Record<string, string> => ({
  VMFERRY_HOST_NAME: name,
  VMFERRY_HOST_BASE_DIR: join(root, name),
  VMFERRY_HOST_MEMORY_DIR: join(shm, name),
  VMFERRY_HOST_MIGRATION_PORT_MIN: String(portMin),
  VMFERRY_HOST_MIGRATION_PORT_MAX: String(portMin + 7),
  TEMPORAL_ADDRESS: server.address,
  VMFERRY_LOG_LEVEL: 'warn',
});
workers.push(
  ...(await Promise.all([
    startWorkerProcess('host', hostEnv('bench-a', 49500), 'host worker ready'),
    startWorkerProcess('host', hostEnv('bench-b', 49510), 'host worker ready'),
    startWorkerProcess('control', { TEMPORAL_ADDRESS: server.address, VMFERRY_WORKFLOW_BUNDLE: bundlePath }, 'control worker ready'),
  ])),
);
const client = new Client({ connection: await Connection.connect({ address: server.address }) });
async function op(host: string, operation: Record<string, unknown>): Promise<DomainOperationResult> {
  return await client.workflow.execute('domainOperation', { taskQueue: CONTROL_TASK_QUEUE, workflowId: `bench-op-${randomUUID()}`, args: [{ host, operation }] });
}
const uuid = randomUUID();
const GUEST = 'benchguest';
await op('bench-a', { op: 'define', xml: guestXml({ name: GUEST, uuid, memoryMiB: MIB }) });
let vmHost = 'bench-a';
let vmRam = ((await op('bench-a', { op: 'start', name: GUEST })) as { domain: { memoryBackingFile: string } }).domain.memoryBackingFile;

interface VmRun {
  wallMs: number;
  qemuMs: number;
  downtimeMs: number;
  qemuDowntimeMs: number;
  events: number;
}
async function vmRun(): Promise<VmRun> {
  fillRandom(vmRam, FILL);
  const to = vmHost === 'bench-a' ? 'bench-b' : 'bench-a';
  const input: MigrateInput = { domain: GUEST, domainUuid: uuid, sourceHost: vmHost, destinationHost: to, flags: ['live', 'persist-dest', 'undefine-source'] };
  const t0 = performance.now();
  const handle = await client.workflow.start<(i: MigrateInput) => Promise<MigrateResult>>('migrate', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(uuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
  });
  const r = await handle.result();
  const wallMs = performance.now() - t0;
  const history = (await handle.fetchHistory()).events ?? [];
  const events = history.length;
  if (process.env.BENCH_PROFILE) printTimeline(history);
  vmHost = to;
  vmRam = r.destination.memoryBackingFile!;
  return { wallMs, qemuMs: r.stats.totalTimeMs ?? 0, downtimeMs: r.measuredDowntimeMs ?? NaN, qemuDowntimeMs: r.stats.downtimeMs ?? NaN, events };
}

type HistoryEvent = NonNullable<Awaited<ReturnType<ReturnType<typeof client.workflow.getHandle>['fetchHistory']>>['events']>[number];
const ACTIVITY_EVENTS: Record<number, string> = { 10: 'scheduled', 11: 'started', 12: 'completed', 13: 'failed', 14: 'timed out', 15: 'cancel requested', 16: 'cancelled' };
/** BENCH_PROFILE=1: when each activity was scheduled, started and closed, ms from the first event. */
function printTimeline(history: HistoryEvent[]): void {
  const at = (e: HistoryEvent): number => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  const t0 = at(history[0]!);
  const names = new Map<string, string>();
  for (const e of history) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) names.set(String(e.eventId), scheduled.activityType?.name ?? '?');
    const ref =
      e.activityTaskStartedEventAttributes?.scheduledEventId ??
      e.activityTaskCompletedEventAttributes?.scheduledEventId ??
      e.activityTaskFailedEventAttributes?.scheduledEventId ??
      e.activityTaskCanceledEventAttributes?.scheduledEventId;
    const name = scheduled ? scheduled.activityType?.name : ref ? names.get(String(ref)) : undefined;
    if (name) console.log(`  ${String(Math.round(at(e) - t0)).padStart(5)} ms  ${(ACTIVITY_EVENTS[Number(e.eventType)] ?? String(e.eventType)).padEnd(16)} ${name}`);
  }
}

try {
  say(`${MIB} MiB guest, ${Math.round(FILL / 1048576)} MiB random RAM, ${PAIRS} pairs, interleaved raw/vmferry; warming up`);
  await rawRun();
  await vmRun();
  const raw: { wallMs: number; downtimeMs: number }[] = [];
  const vm: VmRun[] = [];
  for (let i = 0; i < PAIRS; i++) {
    raw.push(await rawRun());
    vm.push(await vmRun());
    say(`pair ${i + 1}: raw ${raw[i]!.wallMs.toFixed(0)} ms, vmferry ${vm[i]!.wallMs.toFixed(0)} ms (QEMU ${vm[i]!.qemuMs} ms, ${vm[i]!.events} history events)`);
  }
  const rawMed = median(raw.map((r) => r.wallMs));
  const vmMed = median(vm.map((r) => r.wallMs));
  say(`raw QEMU median:             ${rawMed.toFixed(0)} ms`);
  say(`vmferry median:              ${vmMed.toFixed(0)} ms`);
  say(`ratio vmferry/raw (medians): ${(vmMed / rawMed).toFixed(2)}`);
  say(`fixed overhead (wall - QEMU total-time), median: ${median(vm.map((r) => r.wallMs - r.qemuMs)).toFixed(0)} ms`);
  say(`downtime STOP->RESUME, median: raw ${median(raw.map((r) => r.downtimeMs)).toFixed(0)} ms, vmferry ${median(vm.map((r) => r.downtimeMs)).toFixed(0)} ms (QEMU's own figure ${median(vm.map((r) => r.qemuDowntimeMs)).toFixed(0)} ms)`);
  say(`workflow history events, median: ${median(vm.map((r) => r.events))}`);
} finally {
  await op(vmHost, { op: 'destroy', name: GUEST }).catch(() => undefined);
  await op(vmHost, { op: 'undefine', name: GUEST }).catch(() => undefined);
  await rawKill(rawSource).catch(() => undefined);
  await Promise.all(workers.map((w) => w.stop()));
  await server.stop();
  for (const q of [rawSource]) if (isProcessAlive(q.pid)) process.kill(q.pid, 'SIGKILL');
  rmSync(root, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
}
process.exit(0);
