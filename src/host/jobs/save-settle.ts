// Bringing a save or restore job back to a consistent state: after a failure in
// this worker, on the workflow's compensation, and at start-up (recovery.ts) for
// jobs a killed worker left behind. A save either finished (its image is complete: the QEMU
// that was saved must be gone) or is rolled back (partial image removed, QEMU's
// migration stopped, bandwidth restored, CPUs running again if they ran). A
// restore either finished (the QEMU it launched holds the whole stream) or its
// QEMU is killed. Every step is safe to repeat.
import { rmSync, statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { killOrphan } from '../../saveimage/compressor.js';
import { readSaveHeader } from '../../saveimage/header.js';
import { abortedError } from '../../saveimage/stream-control.js';
import { removeManagedSave } from '../../saveimage/managed-save.js';
import { STREAM_QMP_DEADLINE } from '../../saveimage/stream-progress.js';
import { cancelMigration, queryMigration } from '../../qemu/migration-engine.js';
import { setMaxBandwidthBytes } from '../../qemu/migration-params.js';
import { clearMappedRam, removeImageFdsets } from '../../qemu/migration-engine-mapped-ram.js';
import type { RunningDomain } from '../running-domain.js';
import { securityContext, type JobDeps } from './deps.js';
import { ErrorType, isVmError } from '../../common/errors.js';
import type { SaveJobRecord } from './records.js';
import type { SaveResult } from '../../common/save-types.js';

const IDLE_STATUSES = new Set(['none', 'completed', 'failed', 'cancelled']);
const CANCEL_SETTLE_MS = 10_000;

function liveDomainOf(deps: JobDeps, rec: SaveJobRecord): RunningDomain | undefined {
  const dom = deps.rt.getRunning(rec.name);
  if (!dom || dom.uuid !== rec.uuid || dom.qmp.isClosed) return undefined;
  if (rec.kind === 'restore') {
    // Only a QEMU this job launched: its PID is recorded right after the launch;
    // a crash in between leaves one that is still waiting for its stream.
    if (rec.qemuPid !== undefined ? dom.pid !== rec.qemuPid : dom.reason !== 'incoming migration') return undefined;
  }
  return dom;
}

/** Stops QEMU's outgoing stream if one runs and waits until QEMU says it stopped. */
async function stopMigration(dom: RunningDomain): Promise<void> {
  const q = await queryMigration(dom.qmp, STREAM_QMP_DEADLINE).catch(() => undefined);
  if (!q?.status || IDLE_STATUSES.has(q.status)) return;
  await cancelMigration(dom.qmp).catch(() => undefined);
  const deadline = Date.now() + CANCEL_SETTLE_MS;
  while (Date.now() < deadline) {
    const now = await queryMigration(dom.qmp, STREAM_QMP_DEADLINE).catch(() => undefined);
    if (!now?.status || IDLE_STATUSES.has(now.status)) return;
    await delay(50); // QEMU emits no event we could wait on without the events capability
  }
  throw new Error(`QEMU of '${dom.name}' did not stop its migration within ${CANCEL_SETTLE_MS} ms`);
}

/** After a sparse stream that did not end in its own code (a worker killed mid-stream): the QEMU runs plain streams again. */
async function leaveMappedRam(rec: SaveJobRecord, dom: RunningDomain): Promise<void> {
  if (rec.sparse !== true) return;
  await removeImageFdsets(dom.qmp);
  await clearMappedRam(dom.qmp);
}

/** True when the job's image is complete (the LibvirtQemudSave magic is written). */
export async function saveImageComplete(rec: SaveJobRecord): Promise<boolean> {
  if (!rec.imageCreated) return false;
  try {
    return (await readSaveHeader(rec.path)).complete;
  } catch {
    return false;
  }
}

async function restoreLabel(deps: JobDeps, rec: SaveJobRecord): Promise<void> {
  await deps.security
    .restorePath(rec.path, securityContext(rec.name, rec.uuid))
    .catch((err: unknown) => deps.log.warn({ domain: rec.name, path: rec.path, err }, 'restoring the image label failed'));
}

export async function rollbackSave(deps: JobDeps, rec: SaveJobRecord): Promise<void> {
  for (const h of rec.helpers) killOrphan(h);
  const dom = liveDomainOf(deps, rec);
  if (dom) {
    await stopMigration(dom);
    await leaveMappedRam(rec, dom);
    if (rec.bandwidthBytes !== undefined) await setMaxBandwidthBytes(dom.qmp, rec.bandwidthBytes);
    if (rec.resumeCpus) {
      const st = await dom.qmp.execute<{ running: boolean }>('query-status');
      if (!st.running) await dom.qmp.execute('cont');
      dom.setState('running', 'save canceled');
    }
  }
  await restoreLabel(deps, rec);
  if (rec.imageCreated) rmSync(rec.path, { force: true });
  deps.records.update(rec, { state: 'rolledBack', helpers: [] });
  deps.log.info({ domain: rec.name, job: rec.jobId, path: rec.path, resumed: !!dom && !!rec.resumeCpus }, 'save rolled back');
}

/**
 * QEMU's own `quit` ends it at once (a SIGTERM is only noticed by polling /proc);
 * the worker's kill is the fallback when the monitor does not answer.
 */
async function stopQemu(deps: JobDeps, dom: RunningDomain): Promise<void> {
  const quit = await dom.qmp.execute('quit', undefined, { timeoutMs: 2000 }).then(
    () => true,
    () => false,
  );
  if (quit) {
    let timer: NodeJS.Timeout | undefined;
    const gone = await Promise.race([
      dom.gone.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 5000);
      }),
    ]);
    clearTimeout(timer);
    if (gone) return;
  }
  await deps.rt.kill(dom);
}

/** The image is complete: the saved QEMU must not run on (a saved domain is shut off). */
export async function finishSave(deps: JobDeps, rec: SaveJobRecord, result?: SaveResult): Promise<void> {
  for (const h of rec.helpers) killOrphan(h);
  const dom = liveDomainOf(deps, rec);
  if (dom) await stopQemu(deps, dom);
  await restoreLabel(deps, rec);
  const saveResult = result ??
    rec.saveResult ?? {
      name: rec.name,
      uuid: rec.uuid,
      path: rec.path,
      format: (await readSaveHeader(rec.path)).format,
      sizeBytes: statSync(rec.path).size,
      streamBytes: 0,
      durationMs: 0,
    };
  deps.records.update(rec, { state: 'completed', helpers: [], saveResult });
  deps.log.info({ domain: rec.name, job: rec.jobId, path: rec.path }, 'save finished');
}

export async function rollbackRestore(deps: JobDeps, rec: SaveJobRecord): Promise<void> {
  for (const h of rec.helpers) killOrphan(h);
  const dom = liveDomainOf(deps, rec);
  if (dom) await deps.rt.kill(dom);
  await restoreLabel(deps, rec);
  deps.records.update(rec, { state: 'rolledBack', helpers: [] });
  deps.log.info({ domain: rec.name, job: rec.jobId, path: rec.path }, 'restore rolled back');
}

/** A restore whose QEMU has the whole stream: finish it as the activity would have. */
async function finishRestoreIfLoaded(deps: JobDeps, rec: SaveJobRecord): Promise<boolean> {
  const dom = liveDomainOf(deps, rec);
  if (!dom || rec.qemuPid === undefined) return false;
  const q = await queryMigration(dom.qmp, STREAM_QMP_DEADLINE).catch(() => undefined);
  const st = await dom.qmp.execute<{ running: boolean }>('query-status').catch(() => undefined);
  if (!st || (q?.status !== 'completed' && !st.running)) return false;
  for (const h of rec.helpers) killOrphan(h);
  await leaveMappedRam(rec, dom);
  if (rec.startRunning && !st.running) await dom.qmp.execute('cont');
  dom.setState(rec.startRunning || st.running ? 'running' : 'paused', rec.startRunning || st.running ? 'restored' : 'user');
  await restoreLabel(deps, rec);
  if (rec.managed) removeManagedSave(deps.rt.config.stateDir, rec.name);
  deps.records.update(rec, { state: 'completed', helpers: [], restoreResult: rec.restoreResult ?? { path: rec.path, format: 'raw', durationMs: 0 } });
  deps.log.info({ domain: rec.name, job: rec.jobId }, 'restore finished after a worker restart');
  return true;
}

/** Settles a job that was left running: finish what is finished, undo the rest. */
export async function settleJob(deps: JobDeps, rec: SaveJobRecord): Promise<void> {
  if (rec.state !== 'running') return;
  if (rec.kind === 'save') {
    if (await saveImageComplete(rec)) await finishSave(deps, rec);
    else await rollbackSave(deps, rec);
  } else if (!(await finishRestoreIfLoaded(deps, rec))) {
    await rollbackRestore(deps, rec);
  }
}

/** The job's record once an earlier attempt that a killed worker left running has been settled. */
export async function settledRecord(deps: JobDeps, name: string, jobId: string): Promise<SaveJobRecord | undefined> {
  const prior = deps.records.readJob(name, jobId, 'save', 'restore');
  if (prior?.state !== 'running') return prior;
  await settleJob(deps, prior);
  return deps.records.readJob(name, jobId, 'save', 'restore');
}

/**
 * A stream that failed: its job is rolled back (a rollback that fails is left to the
 * job's cleanup step), then the first error is reported, or the abort behind it.
 */
export async function rollBackAndThrow(deps: JobDeps, rec: SaveJobRecord, err: unknown, wasAborted: boolean): Promise<never> {
  try {
    await (rec.kind === 'save' ? rollbackSave(deps, rec) : rollbackRestore(deps, rec));
  } catch (rollbackErr) {
    deps.log.error({ domain: rec.name, job: rec.jobId, err: rollbackErr }, `rolling back the ${rec.kind} failed; the job cleanup retries it`);
  }
  if (wasAborted && !isVmError(err, ErrorType.OperationAborted)) throw abortedError(rec.kind);
  throw err;
}
