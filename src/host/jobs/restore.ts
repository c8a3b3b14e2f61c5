// The restore job (restore from a file, and the start of a domain from its
// managed-save image), behind the restore activities. restoreBegin validates
// the image header and XML and takes the domain's job; restorePerform starts
// QEMU waiting for its state, feeds the stream through the decompressor, and starts the CPUs or
// leaves them paused as asked. A failed or cancelled restore kills the QEMU it
// started: never a half-loaded guest. Retries answer from the job record.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '@temporalio/activity';
import { ErrorType, isVmError, vmError } from '../../common/errors.js';
import {
  checkParallelChannels,
  checkRunState,
  type ManagedStartBeginArgs,
  type ManagedStartBeginResult,
  type RestoreBeginArgs,
  type RestorePlan,
  type RestoreResult,
} from '../../common/save-types.js';
import { checkBuilt, formatDomainXml, normalizeUuid, parseDomainXml, pinMachineAlias, type DomainDef } from '../../domain/index.js';
import { checkAbiStability, checkDestinationName } from '../../migration/abi-check.js';
import { logTail } from '../../qemu/launch.js';
import { filterCommand } from '../../saveimage/compressor.js';
import { directReader } from '../../saveimage/direct-io.js';
import { readSaveHeader } from '../../saveimage/header.js';
import { checkImageSource } from '../../saveimage/image-path.js';
import { hasManagedSave, managedSavePath, removeManagedSave } from '../../saveimage/managed-save.js';
import { runRestoreStream } from '../../saveimage/restore-stream.js';
import { runMappedRamRestore } from '../../saveimage/mapped-ram-stream.js';
import { checkSparseImage } from '../host-capabilities.js';
import { abortedError } from '../../saveimage/stream-control.js';
import { Heartbeats } from '../../support/activity-heartbeat.js';
import { faultPoint } from '../../support/fault-points.js';
import type { HostJob } from '../domain-lock.js';
import type { RunningDomain } from '../running-domain.js';
import { checkJobId, fdLabeller, jobStreamControl, securityContext, type JobDeps } from './deps.js';
import { rollBackAndThrow, settledRecord } from './save-settle.js';
import { checkEmulator } from '../emulators.js';
import { applyStartupPolicy } from '../startup-policy.js';
import { restoreHook } from '../hooks.js';
import { checkInterfacesBuildable } from '../../qemu/devices/interface.js';
import { checkOvsAvailable } from '../openvswitch.js';

/** How long a failed restore waits for its QEMU to exit and say why. */
const QEMU_EXIT_GRACE_MS = 2000;

async function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

export function restoreJobs(deps: JobDeps, recovered: Promise<void>) {
  const { rt, records } = deps;

  /** Refuses a restore that would make a second copy of a domain or clash with another's name or UUID. */
  function checkNoConflict(def: DomainDef): void {
    if (rt.getRunning(def.name)) throw vmError(ErrorType.OperationInvalid, `domain '${def.name}' is already running`, { domain: def.name });
    for (const other of rt.list()) {
      if (other.name === def.name && other.uuid !== def.uuid) {
        throw vmError(ErrorType.DomainExists, `domain '${def.name}' already exists with uuid ${other.uuid}; the image holds uuid ${def.uuid}`, {
          domain: def.name,
        });
      }
      if (other.uuid === def.uuid && other.name !== def.name) {
        throw vmError(ErrorType.DomainExists, `domain '${other.name}' already has uuid ${def.uuid}; the image names it '${def.name}'`, { domain: other.name });
      }
    }
  }

  async function begin(args: RestoreBeginArgs, path: string, managed: boolean): Promise<RestorePlan> {
    const jobId = checkJobId(args.jobId);
    checkRunState(args);
    const header = await readSaveHeader(path);
    const imageDef = parseDomainXml(header.domainXml);
    let def = imageDef;
    if (args.xml !== undefined) {
      const alt = pinMachineAlias(parseDomainXml(args.xml), imageDef.os.machine);
      checkDestinationName(alt, imageDef.name, undefined);
      checkAbiStability(alt, imageDef);
      def = alt;
    }
    // The operator's restore hook sees the definition first; a replacement must keep the guest's ABI, as libvirt checks.
    const replaced = await restoreHook(rt, def.name, formatDomainXml(def));
    if (replaced !== undefined) {
      const hooked = pinMachineAlias(parseDomainXml(replaced), def.os.machine);
      checkDestinationName(hooked, def.name, undefined);
      checkAbiStability(hooked, def);
      def = hooked;
    }
    if (args.managedName !== undefined && def.name !== args.managedName) {
      throw vmError(ErrorType.OperationInvalid, `the managed-save image of '${args.managedName}' holds domain '${def.name}'`, {
        domain: args.managedName,
        path,
      });
    }
    if (args.domainUuid !== undefined && normalizeUuid(String(args.domainUuid)) !== def.uuid) {
      throw vmError(ErrorType.OperationInvalid, `image ${path} holds domain uuid ${def.uuid}, not ${String(args.domainUuid)}`, { path });
    }
    checkEmulator(rt.config.emulators, def);
    checkBuilt(def);
    checkInterfacesBuildable(def);
    checkOvsAvailable(def, rt.config.name);
    applyStartupPolicy(def, 'incoming');
    // The image's CPU must run here: refused before the job is taken or QEMU started.
    await rt.checkCpu(def);
    // A disk another domain holds the lease of: refused now (launch takes the leases before QEMU exists).
    await rt.leases.checkFree(def);
    const channels = checkParallelChannels(args.parallelChannels);
    filterCommand(header.format, 'decompress');
    if (header.format === 'sparse') {
      await checkSparseImage(rt.config.name, 'restore', def, rt.config, args.bypassCache === true);
    } else {
      if (channels !== undefined) {
        throw vmError(ErrorType.ConfigUnsupported, `parallel channels read only a sparse image; ${path} is a ${header.format} image (one classic stream)`, {
          path,
          format: header.format,
        });
      }
      if (args.bypassCache) directReader(path, 0);
    }
    // No await from here to beginJob: the checks hold when the job is taken.
    checkNoConflict(def);
    rt.locks.beginJob(def.name, jobId, managed ? 'managedStart' : 'restore', 'begin');
    return {
      jobId,
      name: def.name,
      uuid: def.uuid,
      path,
      format: header.format,
      bypassCache: args.bypassCache === true,
      ...(header.format === 'sparse' ? { parallelChannels: channels ?? 1 } : {}),
      streamOffset: header.streamOffset,
      startRunning: args.running === true ? true : args.paused === true ? false : header.wasRunning,
      xml: formatDomainXml(def),
      managed,
    };
  }

  async function performRestore(plan: RestorePlan, job: HostJob, signal: AbortSignal, beats: Heartbeats): Promise<RestoreResult> {
    const started = Date.now();
    const sctx = securityContext(plan.name, plan.uuid);
    const rec = records.write({
      kind: 'restore',
      type: plan.managed ? 'managedStart' : 'restore',
      jobId: plan.jobId,
      name: plan.name,
      uuid: plan.uuid,
      path: plan.path,
      state: 'running',
      helpers: [],
      managed: plan.managed,
      sparse: plan.format === 'sparse',
      startRunning: plan.startRunning,
      updatedAtMs: 0,
    });
    const aborted = (): boolean => job.abortRequested || signal.aborted;
    let dom: RunningDomain | undefined;
    try {
      // The file may have changed since Begin looked at it.
      const header = await readSaveHeader(plan.path);
      if (header.streamOffset !== plan.streamOffset || header.format !== plan.format) {
        throw vmError(ErrorType.OperationInvalid, `save image ${plan.path} changed since the restore began`, { path: plan.path });
      }
      const fileSize = statSync(plan.path).size;
      dom = await rt.launch(parseDomainXml(plan.xml), { incoming: true, requestId: plan.jobId });
      records.update(rec, { qemuPid: dom.pid });
      if (aborted()) throw abortedError('restore');
      await deps.security.labelPath(plan.path, sctx);
      const loaded = dom;
      await faultPoint('restore.before-stream');
      const control = jobStreamControl(deps, 'restore', rec, job, beats, aborted);
      if (plan.format === 'sparse') {
        await runMappedRamRestore({
          qmp: loaded.qmp,
          path: plan.path,
          streamOffset: plan.streamOffset,
          channels: plan.parallelChannels ?? 1,
          bypassCache: plan.bypassCache,
          control,
        });
      } else {
        await runRestoreStream({
          qmp: loaded.qmp,
          qemuPid: loaded.pid,
          path: plan.path,
          streamOffset: plan.streamOffset,
          fileSize,
          format: plan.format,
          bypassCache: plan.bypassCache,
          pipeDir: rt.config.runDir,
          labeller: fdLabeller(deps, sctx),
          control,
          warn: (message) => deps.log.warn({ domain: plan.name, path: plan.path }, message),
        });
      }
      await faultPoint('restore.after-stream');
      if (plan.startRunning) {
        await loaded.qmp.execute('cont');
        loaded.setState('running', 'restored');
      } else {
        loaded.setState('paused', 'user');
      }
      const result = { path: plan.path, format: plan.format, durationMs: Date.now() - started };
      records.update(rec, { restoreResult: result, helpers: [] });
      await deps.security.restorePath(plan.path, sctx).catch((err: unknown) => deps.log.warn({ domain: plan.name, err }, 'restoring the image label failed'));
      // libvirt's managed save is consumed by the start that used it.
      if (plan.managed) removeManagedSave(rt.config.stateDir, plan.name);
      records.update(rec, { state: 'completed' });
      rt.locks.endJob(plan.name, plan.jobId);
      deps.log.info(
        { domain: plan.name, job: plan.jobId, path: plan.path, format: plan.format, durationMs: result.durationMs, running: plan.startRunning },
        'domain restored',
      );
      return { ...result, domain: rt.info(plan.name) };
    } catch (err) {
      const wasAborted = aborted();
      let failure = err;
      if (!wasAborted && dom && isVmError(err, ErrorType.OperationFailed)) {
        // QEMU writes why the load failed as it exits, just after it reports `failed`.
        await settledWithin(dom.gone, QEMU_EXIT_GRACE_MS);
        const tail = logTail(join(rt.config.logDir, `${plan.name}.log`), 600);
        if (tail) failure = vmError(ErrorType.OperationFailed, `${(err as Error).message}; QEMU said: ${tail}`, { path: plan.path });
      }
      return await rollBackAndThrow(deps, rec, failure, wasAborted);
    }
  }

  return {
    async restoreBegin(args: RestoreBeginArgs): Promise<RestorePlan> {
      await recovered;
      return await begin(args, checkImageSource(args.path), false);
    },

    async restorePerform(plan: RestorePlan, ctx: Context): Promise<RestoreResult> {
      await recovered;
      const beats = new Heartbeats(ctx, 'perform');
      try {
        return await deps.attempts.run(plan.name, plan.jobId, ctx.cancellationSignal, async (signal) => {
          const prior = await settledRecord(deps, plan.name, plan.jobId);
          if (prior?.state === 'completed') {
            rt.locks.endJob(plan.name, plan.jobId);
            return { path: plan.path, format: plan.format, durationMs: 0, ...prior.restoreResult, domain: rt.info(plan.name) };
          }
          const job = rt.locks.beginJob(plan.name, plan.jobId, plan.managed ? 'managedStart' : 'restore', 'perform');
          if (job.abortRequested) throw abortedError('restore');
          if (rt.getRunning(plan.name)) throw vmError(ErrorType.OperationInvalid, `domain '${plan.name}' is already running`, { domain: plan.name });
          return await performRestore(plan, job, signal, beats);
        });
      } finally {
        beats.stop();
      }
    },

    /**
     * Start from the managed-save image when there is one (a restore plan, the
     * domain's job taken), or tell the workflow to boot afresh (no image, or
     * forceBoot, which discards it first).
     */
    async managedStartBegin(args: ManagedStartBeginArgs): Promise<ManagedStartBeginResult> {
      await recovered;
      const name = args.name;
      const stateDir = rt.config.stateDir;
      if (!rt.defs.has(name)) {
        if (rt.getRunning(name)) throw vmError(ErrorType.OperationInvalid, `domain '${name}' is transient: it has no managed save`, { domain: name });
        throw rt.notFound(name);
      }
      if (rt.getRunning(name)) throw vmError(ErrorType.OperationInvalid, `domain '${name}' is already running`, { domain: name });
      if (!hasManagedSave(stateDir, name)) return { bootReason: 'no image' };
      if (args.forceBoot) {
        const holder = rt.locks.holder(name);
        if (holder !== undefined) throw vmError(ErrorType.DomainBusy, `domain '${name}' is busy with job ${holder}`, { domain: name, job: holder });
        removeManagedSave(stateDir, name);
        return { bootReason: 'force boot' };
      }
      const plan = await begin(
        {
          jobId: args.jobId,
          path: managedSavePath(stateDir, name),
          managedName: name,
          domainUuid: args.domainUuid,
          bypassCache: args.bypassCache,
          paused: args.paused === true ? true : undefined,
        },
        managedSavePath(stateDir, name),
        true,
      );
      return { plan };
    },
  };
}
