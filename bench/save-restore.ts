// Save to file and restore: vmferry's `save` / `restore` workflows against raw
// QEMU driven over QMP, interleaved (raw, vmferry, raw, vmferry, ...) in one run
// so both see the same machine state; prints the ratio of medians per format.
// The guest's RAM above 16 MiB is refilled with random bytes before every save.
//   raw save:      stop, unlimited bandwidth, `migrate fd:` into a pipe read by `cat > file` (or `zstd -c > file`),
//                  until the helper has exited. This is QEMU's `exec:cat > file` without the shell (the
//                  project allows none, and QEMU runs exactly that pipeline): no fsync, no header.
//   raw restore:   spawn QEMU with -incoming defer, `cat file` (or `zstd -dc`) into a pipe, `migrate-incoming fd:`,
//                  cont: until it runs (QEMU's start-up included on both sides).
//   vmferry:       workflow start to workflow result. The save includes what raw omits on purpose: the
//                  libvirt header, fsync before the image is marked complete, and stopping QEMU.
// Then cancel latencies of an xz save (slow enough to be mid-stream): cancel signal to the job's end, and
// the same with the compressor stopped (SIGSTOP) so QEMU is blocked writing into a full pipe.
// Usage: node --import tsx bench/save-restore.ts [--pairs N] [--mib M]
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { parseDomainXml } from '../src/activities/domain/index.js';
import { terminate } from '../src/activities/host/proc.js';
import { buildQemuArgs } from '../src/activities/qemu/command-line.js';
import { launchQemu } from '../src/activities/qemu/launch.js';
import type { QmpClient } from '../src/activities/qemu/qmp-client.js';
import { readSaveHeader } from '../src/activities/saveimage/header.js';
import { openPipe } from '../src/activities/saveimage/os-pipe.js';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import { cancelSignal } from '../src/common/job-messages.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { jobInfoWithProgress } from '../src/cli/job-lookup.js';
import { startDevServer } from '../src/local/dev-server.js';
import { freePort } from '../src/local/free-port.js';
import { findTemporalCli } from '../src/local/temporal-cli.js';
import { waitFor } from '../src/local/wait.js';
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
const FORMATS = ['raw', 'zstd'] as const;
type Format = (typeof FORMATS)[number];
const say = (s: string): void => console.log(`[bench] ${s}`);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const root = mkdtempSync(join(tmpdir(), 'vmf-bench-save-'));
const shm = join('/dev/shm', `vmf-bench-save-${process.pid}`);
mkdirSync(shm, { recursive: true });
const images = join(root, 'images');
mkdirSync(images);
const cli = findTemporalCli();
if (!cli) throw new Error('no temporal CLI: run npm run setup');
const server = await startDevServer({ cliPath: cli, stateDir: join(root, 'temporal'), port: await freePort(), headless: true });
const workers: WorkerProcess[] = [];

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
function helper(argv: string[], stdin: number, stdout: number): Promise<number | null> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: [stdin, stdout, 'inherit'] });
  return new Promise((resolve) => child.once('close', (code) => resolve(code)));
}
const terminal = (qmp: QmpClient): Promise<string> =>
  qmp.waitForEvent('MIGRATION', { timeoutMs: 300_000, predicate: (e) => ['completed', 'failed', 'cancelled'].includes(String(e.data?.status)) }).then((e) => String(e.data?.status));

async function rawSave(format: Format, file: string): Promise<number> {
  const q = await rawSpawn(false);
  await q.qmp.execute('cont');
  fillRandom(q.ram, FILL);
  const t0 = performance.now();
  await q.qmp.execute('stop');
  await q.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  await q.qmp.execute('migrate-set-parameters', { 'max-bandwidth': Number.MAX_SAFE_INTEGER });
  const out = openSync(file, 'w', 0o600);
  const pipe = openPipe(root);
  const exited = helper(format === 'raw' ? ['cat'] : ['zstd', '-c'], pipe.readFd, out);
  closeSync(pipe.readFd);
  closeSync(out);
  await q.qmp.execute('getfd', { fdname: 'm' }, { fds: [pipe.writeFd] });
  closeSync(pipe.writeFd);
  const done = terminal(q.qmp);
  await q.qmp.execute('migrate', { uri: 'fd:m' });
  if ((await done) !== 'completed' || (await exited) !== 0) throw new Error('raw save failed');
  const ms = performance.now() - t0;
  await rawKill(q);
  return ms;
}

async function rawRestore(format: Format, file: string): Promise<number> {
  const t0 = performance.now();
  const q = await rawSpawn(true);
  await q.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  const inp = openSync(file, 'r');
  const pipe = openPipe(root);
  const exited = helper(format === 'raw' ? ['cat'] : ['zstd', '-dc'], inp, pipe.writeFd);
  closeSync(inp);
  closeSync(pipe.writeFd);
  await q.qmp.execute('getfd', { fdname: 'm' }, { fds: [pipe.readFd] });
  closeSync(pipe.readFd);
  const done = terminal(q.qmp);
  await q.qmp.execute('migrate-incoming', { uri: 'fd:m' });
  if ((await done) !== 'completed' || (await exited) !== 0) throw new Error('raw restore failed');
  await q.qmp.execute('cont');
  const ms = performance.now() - t0;
  await rawKill(q);
  return ms;
}

// ---- vmferry ---------------------------------------------------------------
const { code } = await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: new DefaultLogger('WARN') });
const bundlePath = join(root, 'bundle.js');
writeFileSync(bundlePath, code);
const HOST = 'bench-s';
const hostBase = join(root, HOST);
const [hostWorker, controlWorker] = await Promise.all([
    startWorkerProcess('host', { VMFERRY_HOST_NAME: HOST, VMFERRY_HOST_BASE_DIR: hostBase, VMFERRY_HOST_MEMORY_DIR: join(shm, HOST), TEMPORAL_ADDRESS: server.address, VMFERRY_LOG_LEVEL: 'warn' }, 'host worker ready'),
  startWorkerProcess('control', { TEMPORAL_ADDRESS: server.address, VMFERRY_WORKFLOW_BUNDLE: bundlePath }, 'control worker ready'),
]);
workers.push(hostWorker, controlWorker);
const client = new Client({ connection: await Connection.connect({ address: server.address }) });
async function op(operation: Record<string, unknown>): Promise<DomainOperationResult> {
  return await client.workflow.execute('domainOperation', { taskQueue: CONTROL_TASK_QUEUE, workflowId: `bench-op-${randomUUID()}`, args: [{ host: HOST, operation }] });
}
const uuid = randomUUID();
const GUEST = 'benchguest';
await op({ op: 'define', xml: guestXml({ name: GUEST, uuid, memoryMiB: MIB }) });
const startJob = (workflow: string, input: unknown) =>
  client.workflow.start(workflow, { taskQueue: CONTROL_TASK_QUEUE, workflowId: jobWorkflowId(uuid), workflowIdConflictPolicy: 'FAIL', workflowIdReusePolicy: 'ALLOW_DUPLICATE', args: [input] });

async function vmStartFilled(): Promise<void> {
  const dom = (await op({ op: 'start', name: GUEST })) as { domain: DomainInfo };
  fillRandom(dom.domain.memoryBackingFile!, FILL);
}
/** With BENCH_PROFILE set: when each history event happened, relative to the workflow's start. */
async function profile(handle: Awaited<ReturnType<typeof startJob>>, startedAt: number): Promise<void> {
  if (!process.env.BENCH_PROFILE) return;
  const hist = (await handle.fetchHistory()).events ?? [];
  const ms = (e: (typeof hist)[number]): number => Number(e.eventTime!.seconds) * 1000 + (e.eventTime!.nanos ?? 0) / 1e6;
  const names = new Map<string, string>();
  const lines = hist.map((e) => {
    const a = e.activityTaskScheduledEventAttributes;
    if (a) names.set(String(e.eventId), a.activityType?.name ?? '?');
    const sched = e.activityTaskStartedEventAttributes?.scheduledEventId ?? e.activityTaskCompletedEventAttributes?.scheduledEventId;
    return `${Math.round(ms(e) - startedAt)} ${String(e.eventType).replace('EVENT_TYPE_', '')} ${a ? a.activityType?.name : sched ? names.get(String(sched)) : ''}`;
  });
  console.log(lines.join('\n'));
}
async function vmSave(format: Format, path: string): Promise<number> {
  await vmStartFilled();
  const t0 = performance.now();
  const wall0 = Date.now();
  const handle = await startJob('save', { host: HOST, name: GUEST, path, format, overwrite: true });
  await (handle.result() as Promise<SaveResult>);
  const ms = performance.now() - t0;
  await profile(handle, wall0);
  return ms;
}
async function vmRestore(path: string): Promise<number> {
  const t0 = performance.now();
  const wall0 = Date.now();
  const handle = await startJob('restore', { host: HOST, path });
  await (handle.result() as Promise<RestoreResult>);
  const ms = performance.now() - t0;
  await profile(handle, wall0);
  await op({ op: 'destroy', name: GUEST });
  return ms;
}

/** ms from the cancel signal to the host's "stream stopped" log line, per vmCancel run. */
const qemuAckMs: number[] = [];

/** Cancel of a mid-stream xz save: ms from the signal to the job's end; `stall` SIGSTOPs the compressor first. */
async function vmCancel(stall: boolean): Promise<number> {
  await vmStartFilled();
  const path = join(images, 'cancel.img');
  const handle = await startJob('save', { host: HOST, name: GUEST, path, format: 'xz', overwrite: true });
  await waitFor('the save to stream', async () => ((await jobInfoWithProgress(client, handle)).dataProcessedBytes ?? 0) > 0, { timeoutMs: 30_000, intervalMs: 50 });
  if (stall) {
    // The job record names the compressor the host worker started.
    const rec = JSON.parse(readFileSync(join(hostBase, 'state', 'jobs', `${GUEST}.json`), 'utf8')) as { helpers: { pid: number }[] };
    process.kill(rec.helpers[0]!.pid, 'SIGSTOP');
    // Let QEMU fill the pipe and block in write(): its byte count stops moving across heartbeats (1 s apart).
    let last = -1;
    await waitFor('QEMU to block on the full pipe', async () => {
      const now = (await jobInfoWithProgress(client, handle)).dataProcessedBytes ?? 0;
      const still = now === last;
      last = now;
      return still;
    }, { timeoutMs: 20_000, intervalMs: 1500 });
  }
  const t0 = performance.now();
  const sentAt = Date.now();
  await handle.signal(cancelSignal);
  const err = await handle.result().then(() => undefined, (e: unknown) => e);
  const ms = performance.now() - t0;
  // The host logs when QEMU's stream has stopped (same machine, same clock).
  const logged = hostWorker.logs.find((l) => l.msg === 'save stream stopped' && typeof l.time === 'number' && l.time >= sentAt);
  if (logged) qemuAckMs.push((logged.time as number) - sentAt);
  if (!(err instanceof WorkflowFailedError) || (err.cause as { type?: string } | undefined)?.type !== 'OperationAborted') throw new Error(`cancel did not abort: ${String(err)}`);
  const state = ((await op({ op: 'info', name: GUEST })) as { domain: DomainInfo }).domain.state;
  if (state !== 'running') throw new Error(`guest is ${state} after the cancel`);
  await op({ op: 'destroy', name: GUEST });
  return ms;
}

try {
  say(`${MIB} MiB guest, ${Math.round(FILL / 1048576)} MiB random RAM, ${PAIRS} pairs per format, interleaved raw QEMU / vmferry`);
  for (const format of FORMATS) {
    const rawFile = join(images, `raw.${format}`);
    const vmFile = join(images, `vmferry.${format}`);
    // Warm-up pair: first QEMU start, first workflow of each type.
    await rawSave(format, rawFile);
    await rawRestore(format, rawFile);
    await vmSave(format, vmFile);
    await vmRestore(vmFile);
    const r = { save: [] as number[], restore: [] as number[] };
    const v = { save: [] as number[], restore: [] as number[] };
    for (let i = 0; i < PAIRS; i++) {
      r.save.push(await rawSave(format, rawFile));
      v.save.push(await vmSave(format, vmFile));
      r.restore.push(await rawRestore(format, rawFile));
      v.restore.push(await vmRestore(vmFile));
      say(`${format} pair ${i + 1}: save raw ${r.save[i]!.toFixed(0)} / vmferry ${v.save[i]!.toFixed(0)} ms; restore raw ${r.restore[i]!.toFixed(0)} / vmferry ${v.restore[i]!.toFixed(0)} ms`);
    }
    const line = (what: 'save' | 'restore'): string =>
      `${format} ${what}: raw QEMU median ${median(r[what]).toFixed(0)} ms, vmferry median ${median(v[what]).toFixed(0)} ms, ratio ${(median(v[what]) / median(r[what])).toFixed(2)}`;
    say(line('save'));
    say(line('restore'));
    say(`${format} image size: raw QEMU ${(statSync(rawFile).size / 1048576).toFixed(1)} MiB, vmferry ${(statSync(vmFile).size / 1048576).toFixed(1)} MiB (of which header and XML area ${((await readSaveHeader(vmFile)).streamOffset / 1024).toFixed(0)} KiB)`);
    rmSync(rawFile);
    rmSync(vmFile);
  }
  const cancels = [await vmCancel(false), await vmCancel(false), await vmCancel(false)];
  const acks = qemuAckMs.splice(0);
  say(`cancel of a streaming xz save, median of 3: signal to QEMU's stream stopped ${median(acks).toFixed(0)} ms; to the job's end (image removed, guest resumed) ${median(cancels).toFixed(0)} ms`);
  const stalled = [await vmCancel(true), await vmCancel(true), await vmCancel(true)];
  say(`same with the compressor stalled (SIGSTOP): signal to stream stopped ${median(qemuAckMs).toFixed(0)} ms; to the job's end ${median(stalled).toFixed(0)} ms`);
} finally {
  await op({ op: 'destroy', name: GUEST }).catch(() => undefined);
  await op({ op: 'undefine', name: GUEST }).catch(() => undefined);
  await Promise.all(workers.map((w) => w.stop()));
  await server.stop();
  rmSync(root, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
}
process.exit(0);
