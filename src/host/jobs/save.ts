// The save job (save to file and managed save), behind the save activities.
//
// Steps: saveBegin checks everything that can be checked without touching the
// VM (path, format, compressor present, domain state, alternative XML) and takes
// the domain's job; savePerform pauses the CPUs, writes the header as Part,
// streams QEMU's state through the pipeline, flushes, marks the image complete
// and stops QEMU (a saved domain is shut off); cleanupSaveJob is the workflow's
// compensation. Each is idempotent: a retried savePerform finds the job record
// (records.ts) and answers a finished save with its result, or rolls a
// half-done one back and starts over: the caller asked for an image, and a
// consistent VM plus a fresh attempt is the shortest way back to one.
import { closeSync, constants, fsync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Context } from '@temporalio/activity';
import { ErrorType, vmError } from '../../common/errors.js';
import type { HostJob } from '../domain-lock.js';
import { checkRunState, checkSaveFormat, type SaveBeginArgs, type SavePlan, type SaveResult } from '../../common/save-types.js';
import { formatDomainXml, migratableDomainDef, migratableDomainXml, normalizeUuid, parseDomainXml, pinMachineAlias } from '../../domain/index.js';
import { checkAbiStability, checkDestinationName } from '../../migration/abi-check.js';
import { encodeAlignedSaveHeader } from '../../saveimage/aligned-header.js';
import { filterCommand } from '../../saveimage/compressor.js';
import { directWriter } from '../../saveimage/direct-io.js';
import { markSaveImageComplete } from '../../saveimage/header.js';
import { checkSaveTarget } from '../../saveimage/image-path.js';
import { ensureManagedSaveDir, managedSavePath } from '../../saveimage/managed-save.js';
import { runSaveStream } from '../../saveimage/save-stream.js';
import { runMappedRamSave } from '../../saveimage/mapped-ram-stream.js';
import { checkSparseImage } from '../host-capabilities.js';
import { abortedError } from '../../saveimage/stream-control.js';
import { BackgroundFlush } from '../../saveimage/background-flush.js';
import { Heartbeats } from '../../support/activity-heartbeat.js';
import { faultPoint } from '../../support/fault-points.js';
import { enableMigrationEvents, readMaxBandwidthBytes, setMaxBandwidthBytes, UNLIMITED_BANDWIDTH_BYTES } from '../../qemu/migration-params.js';
import type { RunningDomain } from '../running-domain.js';
import { checkJobId, fdLabeller, jobStreamControl, securityContext, type JobDeps } from './deps.js';
import type { SaveJobRecord } from './records.js';
import { withConcreteCpu, withLiveCpu } from '../host-cpu.js';
import { finishSave, rollBackAndThrow, settledRecord, settleJob } from './save-settle.js';

const fsyncAsync = promisify(fsync);

function writeAll(fd: number, buf: Buffer): void {
  for (let done = 0; done < buf.length;) done += writeSync(fd, buf, done, buf.length - done, null);
}

function openImageForWrite(path: string, overwrite: boolean): number {
  // O_NOFOLLOW: a link put at the path after saveBegin looked is refused, never written through.
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | (overwrite ? 0 : constants.O_EXCL);
  try {
    return openSync(path, flags, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw vmError(ErrorType.OperationInvalid, `${path} already exists (ask for overwrite to replace it)`, { path });
    if (e.code === 'ELOOP') throw vmError(ErrorType.OperationInvalid, `${path} is a symbolic link; save images are not written through links`, { path });
    throw vmError(ErrorType.OperationFailed, `cannot create save image ${path}: ${e.message}`, { path, code: e.code });
  }
}

export function saveJobs(deps: JobDeps, recovered: Promise<void>) {
  const { rt, records } = deps;

  async function performSave(plan: SavePlan, dom: RunningDomain, job: HostJob, signal: AbortSignal, beats: Heartbeats): Promise<SaveResult> {
    const started = Date.now();
    const sctx = securityContext(plan.name, plan.uuid);
    const aborted = (): boolean => job.abortRequested || signal.aborted;
    const savedBandwidthBytes = await readMaxBandwidthBytes(dom.qmp);
    let imageFd: number | undefined = openImageForWrite(plan.path, plan.overwrite);
    let rec: SaveJobRecord;
    try {
      // One durable record of all a rollback needs, before the first change to the VM.
      rec = records.write({
        kind: 'save',
        type: plan.managed ? 'managedSave' : 'save',
        jobId: plan.jobId,
        name: plan.name,
        uuid: plan.uuid,
        path: plan.path,
        state: 'running',
        resumeCpus: dom.state === 'running',
        bandwidthBytes: savedBandwidthBytes,
        imageCreated: true,
        sparse: plan.format === 'sparse',
        helpers: [],
        managed: plan.managed,
        updatedAtMs: 0,
      });
    } catch (err) {
      closeSync(imageFd);
      rmSync(plan.path, { force: true });
      throw vmError(ErrorType.OperationFailed, `cannot record the save job of '${plan.name}': ${(err as Error).message}`, { domain: plan.name });
    }
    let flush: BackgroundFlush | undefined;
    try {
      // Paused first, as libvirt does: the stream is then one pass over memory that no longer changes.
      if (rec.resumeCpus) {
        await dom.qmp.execute('stop');
        dom.setState('paused', 'save');
      }
      await setMaxBandwidthBytes(dom.qmp, UNLIMITED_BANDWIDTH_BYTES);
      await enableMigrationEvents(dom.qmp);
      if (aborted()) throw abortedError('save');

      const header = encodeAlignedSaveHeader({ domainXml: plan.xml, wasRunning: plan.wasRunning, format: plan.format });
      writeAll(imageFd, header);
      await deps.security.labelPath(plan.path, sctx);
      const fd = imageFd;
      flush = new BackgroundFlush(fd);
      await faultPoint('save.before-stream');
      const control = jobStreamControl(deps, 'save', rec, job, beats, aborted);
      const stream =
        plan.format === 'sparse'
          ? await runMappedRamSave({
              qmp: dom.qmp,
              path: plan.path,
              imageFd: fd,
              streamOffset: header.length,
              channels: plan.parallelChannels ?? 1,
              bypassCache: plan.bypassCache,
              control,
            })
          : await runSaveStream({
              qmp: dom.qmp,
              path: plan.path,
              imageFd: fd,
              streamOffset: header.length,
              format: plan.format,
              bypassCache: plan.bypassCache,
              pipeDir: rt.config.runDir,
              labeller: fdLabeller(deps, sctx),
              control,
            });
      beats.update({ phase: 'flush', status: 'completed' });
      await flush.stop();
      await fsyncAsync(fd);
      closeSync(fd);
      imageFd = undefined;
      await faultPoint('save.after-stream');
      await markSaveImageComplete(plan.path);
      const result: SaveResult = {
        name: plan.name,
        uuid: plan.uuid,
        path: plan.path,
        format: plan.format,
        sizeBytes: statSync(plan.path).size,
        streamBytes: stream.streamBytes,
        durationMs: Date.now() - started,
      };
      beats.update({ phase: 'stop', status: 'completed' });
      await finishSave(deps, rec, result);
      rt.locks.endJob(plan.name, plan.jobId);
      deps.log.info(
        { domain: plan.name, job: plan.jobId, path: plan.path, format: plan.format, sizeBytes: result.sizeBytes, durationMs: result.durationMs },
        'domain saved',
      );
      return { ...result, durationMs: Date.now() - started };
    } catch (err) {
      const wasAborted = aborted();
      // QEMU's stream has stopped by now (runSaveStream waits for that): the moment a cancel took effect.
      deps.log.info({ domain: plan.name, job: plan.jobId, aborted: wasAborted, err: wasAborted ? undefined : err }, 'save stream stopped');
      await flush?.stop();
      if (imageFd !== undefined) closeSync(imageFd);
      return await rollBackAndThrow(deps, rec, err, wasAborted);
    }
  }

  return {
    async saveBegin(args: SaveBeginArgs): Promise<SavePlan> {
      await recovered;
      const jobId = checkJobId(args.jobId);
      const { format, parallelChannels } = checkSaveFormat(args.format, args.parallelChannels);
      checkRunState(args);
      const dom = rt.requireRunning(args.name);
      const name = dom.name;
      if (args.domainUuid !== undefined && normalizeUuid(String(args.domainUuid)) !== dom.uuid) {
        throw vmError(ErrorType.OperationInvalid, `domain '${name}' has uuid ${dom.uuid}, not ${String(args.domainUuid)}`, { domain: name });
      }
      if (dom.state !== 'running' && dom.state !== 'paused')
        throw vmError(ErrorType.OperationInvalid, `domain '${name}' is ${dom.state}: only a running or paused domain can be saved`, { domain: name });
      if (dom.reason === 'incoming migration')
        throw vmError(ErrorType.OperationInvalid, `domain '${name}' is still receiving its state: it cannot be saved`, { domain: name });
      let path: string;
      if (args.managed) {
        if (!rt.defs.has(name)) throw vmError(ErrorType.OperationInvalid, `cannot do managed save of transient domain '${name}'`, { domain: name });
        ensureManagedSaveDir(rt.config.stateDir);
        path = managedSavePath(rt.config.stateDir, name);
      } else {
        path = checkSaveTarget(args.path, { overwrite: args.overwrite === true, allowedDirs: deps.allowedDirs });
      }
      const live = parseDomainXml(dom.domainXml);
      // Missing programs (or QEMU features) are reported now, before the guest is paused.
      filterCommand(format, 'compress');
      if (format === 'sparse') await checkSparseImage(rt.config.name, 'save', live, rt.config, args.bypassCache === true);
      else if (args.bypassCache) directWriter(path, 0);
      // The image holds the CPU the guest runs: a host-model guest's expanded custom CPU (host-cpu.ts), which an XML
      // saying host-model also means; a guest an older worker started as host/max is expanded now.
      let xml = migratableDomainXml(await withConcreteCpu(dom.qmp, live));
      if (args.xml !== undefined) {
        const alt = pinMachineAlias(withLiveCpu(parseDomainXml(args.xml), live), live.os.machine);
        checkDestinationName(alt, name, undefined);
        checkAbiStability(alt, migratableDomainDef(live));
        xml = formatDomainXml(await withConcreteCpu(dom.qmp, alt));
      }
      rt.locks.beginJob(name, jobId, args.managed ? 'managedSave' : 'save', 'begin');
      return {
        jobId,
        name,
        uuid: dom.uuid,
        path,
        format,
        bypassCache: args.bypassCache === true,
        ...(parallelChannels !== undefined ? { parallelChannels } : {}),
        wasRunning: args.running === true ? true : args.paused === true ? false : dom.state === 'running',
        xml,
        managed: args.managed === true,
        overwrite: args.managed === true || args.overwrite === true,
      };
    },

    async savePerform(plan: SavePlan, ctx: Context): Promise<SaveResult> {
      await recovered;
      const beats = new Heartbeats(ctx, 'perform');
      try {
        return await deps.attempts.run(plan.name, plan.jobId, ctx.cancellationSignal, async (signal) => {
          const prior = await settledRecord(deps, plan.name, plan.jobId);
          if (prior?.state === 'completed' && prior.saveResult) {
            rt.locks.endJob(plan.name, plan.jobId);
            return prior.saveResult;
          }
          const job = rt.locks.beginJob(plan.name, plan.jobId, plan.managed ? 'managedSave' : 'save', 'perform');
          if (job.abortRequested) throw abortedError('save');
          const dom = rt.requireRunning(plan.name);
          if (dom.uuid !== plan.uuid)
            throw vmError(ErrorType.OperationInvalid, `domain '${plan.name}' now has uuid ${dom.uuid}, not ${plan.uuid}`, { domain: plan.name });
          return await performSave(plan, dom, job, signal, beats);
        });
      } finally {
        beats.stop();
      }
    },

    /**
     * The workflow's compensation for any save or restore job whose Begin
     * succeeded: stops an attempt still running here, settles the job (rollback,
     * or finish when the image turned out complete), and ends it. Repeatable.
     */
    async cleanupSaveJob(name: string, jobId: string): Promise<{ state: string }> {
      await recovered;
      await deps.attempts.stop(name, jobId);
      const rec = records.readJob(name, jobId, 'save', 'restore');
      if (rec?.state === 'running') await settleJob(deps, rec);
      const state = records.readJob(name, jobId, 'save', 'restore')?.state ?? 'none';
      records.remove(name, jobId);
      rt.locks.endJob(name, jobId);
      return { state };
    },
  };
}
