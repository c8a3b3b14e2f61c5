// Save to file and restore: vmferry's `save` / `restore` workflows against raw
// QEMU driven over QMP, interleaved (raw, vmferry, raw, vmferry, ...) in one run
// so both see the same machine state; prints the ratio of medians per format.
// The guest's RAM above 16 MiB is refilled with random bytes before every save.
//   raw save:      stop, unlimited bandwidth, `migrate fd:` on the image file's own descriptor (QEMU's best
//                  classic mechanism: no copying process; for zstd a pipe read by `zstd -c > file`), until
//                  completed (and the helper has exited): no fsync, no header.
//   raw restore:   spawn QEMU with -incoming defer, `migrate-incoming fd:` on the image's descriptor (zstd: `zstd -dc`
//                  into a pipe), cont: until it runs (QEMU's start-up included on both sides).
//   (The parallel, mapped-ram formats are compared with raw QEMU's mapped-ram in bench/save-parallel.ts.)
//   vmferry:       workflow start to workflow result. The save includes what raw omits on purpose: the
//                  libvirt header, fsync before the image is marked complete, and stopping QEMU.
// Then cancel latencies of an xz save (slow enough to be mid-stream): from sending the cancel signal to
// QEMU's answer to the host's migrate_cancel (its log line), and to the job's end; then the same with the
// compressor stopped (SIGSTOP) so QEMU is blocked writing into a full pipe (the worker kills the stalled
// consumer before it cancels, which is what lets QEMU's write fail and the cancel complete).
// At the end a summary gives each figure issue 3 asks for against its target.
// Usage: node --import tsx bench/save-restore.ts [--pairs N] [--mib M] [--formats raw,zstd]
//   (the run: npm run bench -- save-restore --mib 1024; BENCH_PROFILE=1 prints each job's step timeline)
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { QmpClient } from '../src/qemu/qmp-client.js';
import { readSaveHeader } from '../src/saveimage/header.js';
import { openPipe } from '../src/saveimage/os-pipe.js';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo } from '../src/common/domain-types.js';
import { cancelSignal } from '../src/common/job-messages.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { jobInfoWithProgress } from '../src/cli/job-lookup.js';
import { waitFor } from '../src/support/wait.js';
import { fillRandom } from '../test/helpers/guest-memory.js';
import { guestXml } from '../test/helpers/guest-xml.js';
import { arg, BenchEnv, median, printTimeline, say } from './common.js';

const PAIRS = arg('pairs', 5);
const MIB = arg('mib', 256);
const FILL = (MIB - 16) * 1024 * 1024;
const ALL_FORMATS = ['raw', 'zstd'] as const;
type Format = (typeof ALL_FORMATS)[number];
const formatsArg = process.argv.indexOf('--formats');
const FORMATS: Format[] =
  formatsArg === -1
    ? [...ALL_FORMATS]
    : (process.argv[formatsArg + 1] ?? '').split(',').filter((f): f is Format => (ALL_FORMATS as readonly string[]).includes(f));
if (FORMATS.length === 0) throw new Error(`--formats takes a comma-separated list of ${ALL_FORMATS.join(', ')}`);

const env = await BenchEnv.create('vmf-bench-save');
const root = env.root;
const images = join(root, 'images');
mkdirSync(images);

// ---- raw QEMU ------------------------------------------------------------
const rawSpawn = (incoming: boolean) => env.rawSpawn(MIB, incoming);
const rawKill = (q: Awaited<ReturnType<typeof rawSpawn>>) => env.rawKill(q);
function helper(argv: string[], stdin: number, stdout: number): Promise<number | null> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: [stdin, stdout, 'inherit'] });
  return new Promise((resolve) => child.once('close', (code) => resolve(code)));
}
const terminal = (qmp: QmpClient): Promise<string> =>
  qmp
    .waitForEvent('MIGRATION', { timeoutMs: 300_000, predicate: (e) => ['completed', 'failed', 'cancelled'].includes(String(e.data?.status)) })
    .then((e) => String(e.data?.status));

async function rawSave(format: Format, file: string): Promise<number> {
  const q = await rawSpawn(false);
  await q.qmp.execute('cont');
  fillRandom(q.ram, FILL);
  const t0 = performance.now();
  await q.qmp.execute('stop');
  await q.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  await q.qmp.execute('migrate-set-parameters', { 'max-bandwidth': Number.MAX_SAFE_INTEGER });
  const out = openSync(file, 'w', 0o600);
  // raw: QEMU's best classic mechanism, the image's own descriptor (no copying process); zstd: through the compressor.
  let exited: Promise<number | null> = Promise.resolve(0);
  if (format === 'raw') {
    await q.qmp.execute('getfd', { fdname: 'm' }, { fds: [out] });
    closeSync(out);
  } else {
    const pipe = openPipe(root);
    exited = helper(['zstd', '-c'], pipe.readFd, out);
    closeSync(pipe.readFd);
    closeSync(out);
    await q.qmp.execute('getfd', { fdname: 'm' }, { fds: [pipe.writeFd] });
    closeSync(pipe.writeFd);
  }
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
  let exited: Promise<number | null> = Promise.resolve(0);
  if (format === 'raw') {
    await q.qmp.execute('getfd', { fdname: 'm' }, { fds: [inp] });
    closeSync(inp);
  } else {
    const pipe = openPipe(root);
    exited = helper(['zstd', '-dc'], inp, pipe.writeFd);
    closeSync(inp);
    closeSync(pipe.writeFd);
    await q.qmp.execute('getfd', { fdname: 'm' }, { fds: [pipe.readFd] });
    closeSync(pipe.readFd);
  }
  const done = terminal(q.qmp);
  await q.qmp.execute('migrate-incoming', { uri: 'fd:m' });
  if ((await done) !== 'completed' || (await exited) !== 0) throw new Error('raw restore failed');
  await q.qmp.execute('cont');
  const ms = performance.now() - t0;
  await rawKill(q);
  return ms;
}

// ---- vmferry ---------------------------------------------------------------
const HOST = 'bench-s';
const hostBase = join(root, HOST);
const [hostWorker] = await Promise.all([env.startHost(HOST), env.startControl()]);
const client = env.client;
const op = (operation: Record<string, unknown>) => env.op(HOST, operation);
const uuid = randomUUID();
const GUEST = 'benchguest';
await op({ op: 'define', xml: guestXml({ name: GUEST, uuid, memoryMiB: MIB }) });
const startJob = (workflow: string, input: unknown) =>
  client.workflow.start(workflow, {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(uuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
  });

async function vmStartFilled(): Promise<void> {
  const dom = (await op({ op: 'start', name: GUEST })) as { domain: DomainInfo };
  fillRandom(dom.domain.memoryBackingFile!, FILL);
}
async function vmSave(format: Format, path: string): Promise<number> {
  await vmStartFilled();
  const t0 = performance.now();
  const handle = await startJob('save', { host: HOST, name: GUEST, path, format, overwrite: true });
  await (handle.result() as Promise<SaveResult>);
  const ms = performance.now() - t0;
  await printTimeline(handle);
  return ms;
}
async function vmRestore(path: string): Promise<number> {
  const t0 = performance.now();
  const handle = await startJob('restore', { host: HOST, path });
  await (handle.result() as Promise<RestoreResult>);
  const ms = performance.now() - t0;
  await printTimeline(handle);
  await op({ op: 'destroy', name: GUEST });
  return ms;
}

/** ms from sending the cancel signal to QEMU's answer to the host's migrate_cancel, per vmCancel run. */
const qemuAckMs: number[] = [];
/** The part of it after the server recorded the signal (history event time to the same log line). */
const serverAckMs: number[] = [];

/** Cancel of a mid-stream xz save: ms from the signal to the job's end; `stall` SIGSTOPs the compressor first. */
async function vmCancel(stall: boolean): Promise<number> {
  await vmStartFilled();
  const path = join(images, 'cancel.img');
  const handle = await startJob('save', { host: HOST, name: GUEST, path, format: 'xz', overwrite: true });
  await waitFor('the save to stream', async () => ((await jobInfoWithProgress(client, handle)).dataProcessedBytes ?? 0) > 0, {
    timeoutMs: 30_000,
    intervalMs: 50,
  });
  if (stall) {
    // The job record names the compressor the host worker started.
    const rec = JSON.parse(readFileSync(join(hostBase, 'state', 'jobs', `${GUEST}.json`), 'utf8')) as { helpers: { pid: number }[] };
    process.kill(rec.helpers[0]!.pid, 'SIGSTOP');
    // Let QEMU fill the pipe and block in write(): its byte count stops moving across heartbeats (1 s apart).
    let last = -1;
    await waitFor(
      'QEMU to block on the full pipe',
      async () => {
        const now = (await jobInfoWithProgress(client, handle)).dataProcessedBytes ?? 0;
        const still = now === last;
        last = now;
        return still;
      },
      { timeoutMs: 20_000, intervalMs: 1500 },
    );
  }
  const t0 = performance.now();
  const sentAt = Date.now();
  await handle.signal(cancelSignal);
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  const ms = performance.now() - t0;
  await printTimeline(handle);
  // The host logs when QEMU answered migrate_cancel (same machine, same clock).
  const logged = hostWorker.logs.find((l) => l.msg === 'QEMU acknowledged the abort' && typeof l.time === 'number' && l.time >= sentAt);
  if (logged) {
    qemuAckMs.push((logged.time as number) - sentAt);
    const signalled = ((await handle.fetchHistory()).events ?? []).find((e) => e.workflowExecutionSignaledEventAttributes?.signalName === cancelSignal.name);
    const at = signalled?.eventTime;
    if (at) serverAckMs.push((logged.time as number) - (Number(at.seconds ?? 0) * 1000 + (at.nanos ?? 0) / 1e6));
  } else say('warning: no "QEMU acknowledged the abort" line from the host for this cancel');
  if (!(err instanceof WorkflowFailedError) || (err.cause as { type?: string } | undefined)?.type !== 'OperationAborted')
    throw new Error(`cancel did not abort: ${String(err)}`);
  const state = ((await op({ op: 'info', name: GUEST })) as { domain: DomainInfo }).domain.state;
  if (state !== 'running') throw new Error(`guest is ${state} after the cancel`);
  await op({ op: 'destroy', name: GUEST });
  return ms;
}

interface FormatFigures {
  ratio: { save: number; restore: number };
  median: { rawSave: number; vmSave: number; rawRestore: number; vmRestore: number };
  sizeMiB: { raw: number; vmferry: number; headerKiB: number };
}
const figures = new Map<Format, FormatFigures>();
const mib = (bytes: number): number => bytes / 1048576;

try {
  say(`${MIB} MiB guest, ${Math.round(FILL / 1048576)} MiB random RAM, ${PAIRS} pairs per format (${FORMATS.join(', ')}), interleaved raw QEMU / vmferry`);
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
      say(
        `${format} pair ${i + 1}: save raw ${r.save[i]!.toFixed(0)} / vmferry ${v.save[i]!.toFixed(0)} ms; restore raw ${r.restore[i]!.toFixed(0)} / vmferry ${v.restore[i]!.toFixed(0)} ms`,
      );
    }
    const f: FormatFigures = {
      median: { rawSave: median(r.save), vmSave: median(v.save), rawRestore: median(r.restore), vmRestore: median(v.restore) },
      ratio: { save: median(v.save) / median(r.save), restore: median(v.restore) / median(r.restore) },
      sizeMiB: { raw: mib(statSync(rawFile).size), vmferry: mib(statSync(vmFile).size), headerKiB: (await readSaveHeader(vmFile)).streamOffset / 1024 },
    };
    figures.set(format, f);
    say(`${format} save: raw QEMU median ${f.median.rawSave.toFixed(0)} ms, vmferry median ${f.median.vmSave.toFixed(0)} ms, ratio ${f.ratio.save.toFixed(2)}`);
    say(
      `${format} restore: raw QEMU median ${f.median.rawRestore.toFixed(0)} ms, vmferry median ${f.median.vmRestore.toFixed(0)} ms, ratio ${f.ratio.restore.toFixed(2)}`,
    );
    say(
      `${format} image size: raw QEMU ${f.sizeMiB.raw.toFixed(1)} MiB, vmferry ${f.sizeMiB.vmferry.toFixed(1)} MiB (of which header and XML area ${f.sizeMiB.headerKiB.toFixed(0)} KiB)`,
    );
    rmSync(rawFile);
    rmSync(vmFile);
  }
  const cancels = [await vmCancel(false), await vmCancel(false), await vmCancel(false)];
  const acks = qemuAckMs.splice(0);
  const serverAcks = serverAckMs.splice(0);
  say(
    `cancel of a streaming xz save, median of 3: signal to QEMU's acknowledgement ${median(acks).toFixed(0)} ms (${median(serverAcks).toFixed(0)} ms of it after the server recorded the signal); to the job's end (image removed, guest resumed) ${median(cancels).toFixed(0)} ms`,
  );
  const stalled = [await vmCancel(true), await vmCancel(true), await vmCancel(true)];
  const stalledAcks = qemuAckMs.splice(0);
  const stalledServerAcks = serverAckMs.splice(0);
  say(
    `same with the compressor stalled (SIGSTOP; the worker kills it before migrate_cancel): signal to QEMU's acknowledgement ${median(stalledAcks).toFixed(0)} ms (${median(stalledServerAcks).toFixed(0)} ms after the server recorded it); to the job's end ${median(stalled).toFixed(0)} ms`,
  );

  const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  say(`summary: ${MIB} MiB guest, medians of ${PAIRS} interleaved pairs`);
  for (const [format, f] of figures) {
    say(`  ${format.padEnd(4)} save    vmferry/raw QEMU ${f.ratio.save.toFixed(2)} (target <= 1.05: ${verdict(f.ratio.save <= 1.05)})`);
    say(`  ${format.padEnd(4)} restore vmferry/raw QEMU ${f.ratio.restore.toFixed(2)} (target <= 1.05: ${verdict(f.ratio.restore <= 1.05)})`);
    say(`  ${format.padEnd(4)} image   ${f.sizeMiB.vmferry.toFixed(1)} MiB (raw QEMU's ${f.sizeMiB.raw.toFixed(1)} MiB)`);
  }
  say(
    `  cancel signal -> QEMU acknowledged (migrate_cancel answered): ${median(acks).toFixed(0)} ms (target < 100 ms: ${verdict(median(acks) < 100)}); from the server's signal event: ${median(serverAcks).toFixed(0)} ms`,
  );
  say(`  cancel with the compressor stalled, signal -> job ended: ${median(stalled).toFixed(0)} ms (target < 1000 ms: ${verdict(median(stalled) < 1000)})`);
} finally {
  await op({ op: 'destroy', name: GUEST }).catch(() => undefined);
  await op({ op: 'undefine', name: GUEST }).catch(() => undefined);
  await env.stop();
}
process.exit(0);
