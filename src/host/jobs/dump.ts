// The core dump job, behind the dump activities. QMP dump-guest-memory (memory
// only, no paging) into a pipe the worker copies to a temporary file, published
// under the user's path only when complete. Its job record says which
// temporary file is the job's while it runs.
//
// Cancellation: QEMU 7.2 has no dump-cancel (its only cancel commands are for
// migration and block/generic jobs, and a dump is neither). Killing QEMU is out:
// the guest must survive. What works is breaking the output: the worker closes
// the pipe's read end, QEMU's next write fails with EPIPE, it ends the dump with
// DUMP_COMPLETED {status: failed} within milliseconds and resumes the vCPUs it
// stopped. The activity waits for that event, removes the partial file and
// reports OperationAborted. A worker that dies mid-dump breaks the pipe the same
// way, so no dump outlives its worker.
import type { Context } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { CoreDumpFormat, DumpBeginResult, DumpPerformResult } from '../../common/dump-types.js';
import { ErrorType, vmError } from '../../common/errors.js';
import { invalidSpeed } from '../../common/job-messages.js';
import type { JobHeartbeat, JobProgress } from '../../common/job-types.js';
import type { QmpEvent } from '../../qemu/qmp-client.js';
import type { SecurityContext, SecurityDriver } from '../../security/index.js';
import { DumpPipe } from '../dump-pipe.js';
import { checkDumpTarget, openDumpTemp, publishDump, removeDumpTemp, tempDumpPath } from '../dump-target.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';

const POLL_MS = 250;
/** After the pipe is broken QEMU fails at its next write; this long without DUMP_COMPLETED means it is stuck. */
const ABORT_DEADLINE_MS = 60_000;

interface DumpStatus {
  status: 'none' | 'active' | 'completed' | 'failed';
  completed: number;
  total: number;
}

export interface DumpPerformOptions {
  path: string;
  format: CoreDumpFormat;
  live?: boolean;
  wasRunning: boolean;
  bandwidthMiBps?: number;
}

export interface DumpEndOptions {
  path: string;
  live?: boolean;
  wasRunning: boolean;
}

function progressOf(q: DumpStatus | undefined): JobProgress {
  if (!q || !q.total) return {};
  return {
    dataTotalBytes: q.total,
    dataProcessedBytes: q.completed,
    dataRemainingBytes: q.total - q.completed,
    percent: Math.floor((q.completed / q.total) * 100),
  };
}

/** The guest was paused by this job (not by the user or QEMU): give it back. */
async function resumeIfPausedForDump(dom: RunningDomain | undefined, opts: DumpEndOptions): Promise<boolean> {
  if (!dom || dom.qmp.isClosed || opts.live || !opts.wasRunning) return false;
  if (dom.state !== 'paused' || dom.reason !== 'dump') return false;
  await dom.qmp.execute('cont');
  dom.setState('running', 'unpaused');
  return true;
}

/** A dump left running by an earlier attempt (its worker died, so its pipe is broken) ends on its own. */
async function waitForIdleDump(dom: RunningDomain): Promise<void> {
  const deadline = Date.now() + ABORT_DEADLINE_MS;
  for (;;) {
    const q = await dom.qmp.execute<DumpStatus>('query-dump');
    if (q.status !== 'active') return;
    if (Date.now() > deadline) throw vmError(ErrorType.DomainBusy, `a dump of '${dom.name}' is still running in QEMU`, { domain: dom.name });
    await dom.qmp.waitForEvent('DUMP_COMPLETED', { timeoutMs: POLL_MS * 4 }).catch(() => undefined);
  }
}

export function dumpJobs(rt: HostRuntime, security: SecurityDriver = rt.security) {
  /** Running dumps by job, so setSpeed reaches the copy loop. */
  const pipes = new Map<string, DumpPipe>();

  return {
    /** Checks everything, changes nothing but taking the job. */
    async dumpBegin(name: string, jobId: string, opts: { uuid: string; path: string; format?: CoreDumpFormat }): Promise<DumpBeginResult> {
      const dom = rt.requireRunning(name);
      if (dom.uuid.toLowerCase() !== opts.uuid.toLowerCase()) {
        throw vmError(ErrorType.DomainNotFound, `domain '${name}' on host ${rt.config.name} has uuid ${dom.uuid}, not ${opts.uuid}`, { domain: name });
      }
      checkDumpTarget(opts.path, rt.config.saveDirs);
      const format = opts.format ?? 'elf';
      const caps = await dom.qmp.execute<{ formats: string[] }>('query-dump-guest-memory-capability');
      if (!caps.formats.includes(format)) {
        throw vmError(ErrorType.ConfigUnsupported, `this QEMU cannot write ${format} dumps (it has ${caps.formats.join(', ')})`, {
          format,
          formats: caps.formats,
        });
      }
      const existing = rt.locks.job(name);
      if (existing?.id !== jobId) {
        const q = await dom.qmp.execute<DumpStatus>('query-dump');
        if (q.status === 'active') throw vmError(ErrorType.DomainBusy, `domain '${name}' is already being dumped`, { domain: name });
      }
      rt.locks.beginJob(name, jobId, 'coreDump', 'begin');
      return { jobId, wasRunning: dom.state === 'running' || (dom.state === 'paused' && dom.reason === 'dump'), format, formats: caps.formats };
    },

    async dumpPerform(name: string, jobId: string, opts: DumpPerformOptions, ctx: Context): Promise<DumpPerformResult> {
      const dom = rt.requireRunning(name);
      const job = rt.locks.beginJob(name, jobId, 'coreDump', 'dumping');
      const path = checkDumpTarget(opts.path, rt.config.saveDirs);
      const tmp = tempDumpPath(path, jobId);
      rt.jobs.write({ kind: 'dump', jobId, name, uuid: dom.uuid, path, tempPath: tmp, live: opts.live === true, wasRunning: opts.wasRunning, updatedAtMs: 0 });
      const sec: SecurityContext = { domain: name, uuid: dom.uuid };
      const log = rt.log.child({ domain: name, job: jobId, phase: 'dumping' });
      await waitForIdleDump(dom);

      const started = Date.now();
      const file = await openDumpTemp(tmp);
      let pipe: DumpPipe | undefined;
      let labelled = false;
      let aborted = false;
      const restoreLabel = async (): Promise<void> => {
        if (!labelled || !pipe) return;
        labelled = false;
        await security.restoreFd(pipe.readFd, sec);
      };
      /** The label comes off while the worker still has a descriptor on the pipe; then every read end closes. */
      const breakPipe = async (): Promise<void> => {
        await restoreLabel().catch((err: unknown) => log.warn({ err }, 'restoring the pipe label failed'));
        pipe?.abort();
      };
      let failure: unknown;
      const stopWaiting = new AbortController();
      try {
        pipe = await DumpPipe.open(rt.config.runDir);
        pipes.set(jobId, pipe);
        pipe.setSpeed(opts.bandwidthMiBps ?? 0);
        await security.labelFd(pipe.writeFd!, sec);
        labelled = true;
        if (!opts.live && dom.state === 'running') {
          await dom.qmp.execute('stop');
          dom.setState('paused', 'dump');
        }
        const copy = pipe.copyTo(file).catch(async (err: unknown) => {
          // The disk refused (ENOSPC, EIO): stop reading so QEMU fails instead of blocking on a full pipe.
          await breakPipe();
          throw vmError(ErrorType.OperationFailed, `writing the dump to ${tmp} failed: ${String((err as Error).message ?? err)}`, { domain: name, path });
        });
        copy.catch(() => undefined); // awaited below; this only keeps an early throw from leaving it unhandled
        let ended: QmpEvent | undefined;
        let gone: unknown;
        const completed = dom.qmp.waitForEvent('DUMP_COMPLETED', { signal: stopWaiting.signal }).then(
          (ev) => {
            ended = ev;
          },
          (err: unknown) => {
            gone = err;
          },
        );
        const fdname = `vmferry-dump-${createHash('sha256').update(jobId).digest('hex').slice(0, 12)}`;
        await dom.qmp.execute('getfd', { fdname }, { fds: [pipe.writeFd!] });
        pipe.closeWriteEnd(); // QEMU holds its own copy; ours would keep the reader from ever seeing EOF
        try {
          await dom.qmp.execute('dump-guest-memory', { paging: false, protocol: `fd:${fdname}`, detach: true, format: opts.format });
        } catch (err) {
          await dom.qmp.execute('closefd', { fdname }).catch(() => undefined); // QEMU takes the fd only once the dump starts
          await breakPipe();
          await copy;
          throw err;
        }
        log.info({ format: opts.format, live: opts.live === true }, 'dump started');

        const wake = new Promise<void>((resolve) => ctx.cancellationSignal.addEventListener('abort', () => resolve(), { once: true }));
        let abortedAt = 0;
        let last: DumpStatus | undefined;
        while (!ended && gone === undefined) {
          if (!aborted && (ctx.cancellationSignal.aborted || job.abortRequested)) {
            aborted = true;
            abortedAt = Date.now();
            log.info({ copiedBytes: pipe.copied }, 'dump cancelled: breaking its pipe');
            await breakPipe();
          }
          if (aborted && Date.now() - abortedAt > ABORT_DEADLINE_MS) {
            throw vmError(ErrorType.OperationFailed, `QEMU did not end the dump of '${name}' within ${ABORT_DEADLINE_MS} ms of its output closing`, {
              domain: name,
            });
          }
          last = (await dom.qmp.execute<DumpStatus>('query-dump').catch(() => undefined)) ?? last;
          job.progress = progressOf(last);
          const beat: JobHeartbeat = { phase: aborted ? 'aborting' : 'dumping', progress: job.progress };
          ctx.heartbeat(beat);
          await Promise.race([completed, wake, delay(POLL_MS)]);
        }
        if (gone !== undefined) throw gone;
        const sizeBytes = await copy;
        const result = (ended?.data?.result ?? {}) as Partial<DumpStatus>;
        if (aborted) throw vmError(ErrorType.OperationAborted, `core dump of '${name}' aborted after ${pipe.copied} bytes`, { domain: name });
        if (result.status !== 'completed') {
          const why = typeof ended?.data?.error === 'string' ? ended.data.error : `status ${String(result.status)}`;
          throw vmError(ErrorType.OperationFailed, `QEMU could not dump '${name}': ${why}`, { domain: name });
        }
        await file.sync();
        job.progress = progressOf({ status: 'completed', completed: result.total ?? 0, total: result.total ?? 0 });
        ctx.heartbeat({ phase: 'dumped', progress: job.progress } satisfies JobHeartbeat);
        log.info({ sizeBytes, ms: Date.now() - started }, 'dump written');
        return { sizeBytes, dataTotalBytes: result.total ?? 0, durationMs: Date.now() - started };
      } catch (err) {
        failure = err;
        throw err;
      } finally {
        stopWaiting.abort();
        pipes.delete(jobId);
        await file.close().catch(() => undefined);
        const afterErrors: unknown[] = [];
        await restoreLabel().catch((err: unknown) => afterErrors.push(err));
        pipe?.close();
        if (failure !== undefined) removeDumpTemp(tmp);
        await resumeIfPausedForDump(dom, opts).catch((err: unknown) => afterErrors.push(err));
        if (afterErrors.length) {
          log.warn({ errors: afterErrors.map(String) }, 'cleanup after the dump step failed');
          // Reported, not substituted: a step that itself failed keeps its own error.
          if (failure === undefined) throw afterErrors[0];
        }
      }
    },

    /** setSpeed while dumping: the copy loop paces itself, and QEMU waits on the pipe. */
    async dumpSetSpeed(name: string, jobId: string, mibps: number): Promise<{ applied: boolean }> {
      const why = invalidSpeed(mibps);
      if (why) throw vmError(ErrorType.OperationInvalid, why);
      if (rt.locks.job(name)?.id !== jobId) throw vmError(ErrorType.OperationInvalid, `domain '${name}' has no job ${jobId} on this host`);
      const pipe = pipes.get(jobId);
      pipe?.setSpeed(mibps);
      return { applied: pipe !== undefined };
    },

    /** Success: the dump appears under its name, the job ends. Repeatable. */
    async dumpFinish(name: string, jobId: string, opts: DumpEndOptions): Promise<{ sizeBytes: number; domainState: string }> {
      const path = checkPathShape(opts.path);
      const sizeBytes = publishDump(tempDumpPath(path, jobId), path);
      const dom = rt.getRunning(name);
      await resumeIfPausedForDump(dom, opts);
      rt.jobs.remove(name, jobId);
      rt.locks.endJob(name, jobId);
      return { sizeBytes, domainState: dom?.state ?? 'shutoff' };
    },

    /** Failure or cancel: no partial file, the guest as it was, the job ended. Tries everything, then reports. */
    async dumpCleanup(name: string, jobId: string, opts: DumpEndOptions): Promise<{ resumed: boolean }> {
      const errors: unknown[] = [];
      let resumed = false;
      try {
        removeDumpTemp(tempDumpPath(checkPathShape(opts.path), jobId));
      } catch (err) {
        errors.push(err);
      }
      try {
        resumed = await resumeIfPausedForDump(rt.getRunning(name), opts);
      } catch (err) {
        errors.push(err);
      }
      rt.jobs.remove(name, jobId);
      rt.locks.endJob(name, jobId);
      if (errors.length) throw errors[0];
      return { resumed };
    },
  };
}

function checkPathShape(path: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw vmError(ErrorType.OperationInvalid, `dump path must be absolute, got ${JSON.stringify(path)}`);
  return path;
}
