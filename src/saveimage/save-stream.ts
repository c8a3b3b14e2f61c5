// QEMU's migration stream into a save image, after the header the caller wrote.
//
// Data path: the worker hands QEMU one descriptor with QMP `getfd` (SCM_RIGHTS)
// and says `migrate fd:NAME`. For a raw image that descriptor is the image file
// itself, positioned after the header: QEMU writes straight into it, no copy and
// no helper. Otherwise it is the write end of a pipe whose read end is the
// compressor's stdin (and, with --bypass-cache, dd's, behind the compressor).
// We chose this over letting QEMU connect to a unix socket the worker listens
// on because (1) raw saves need no copying process at all, (2) there is no
// socket path to create, label, keep under 108 bytes and clean up after a
// crash, and (3) every descriptor is opened by the worker, so a cancel can
// break the pipe by killing the reader, which is what unblocks a QEMU stuck on
// a stalled compressor (migrate_cancel alone waits for the write to finish).
import { ErrorType, vmError } from '../common/errors.js';
import type { JobProgress } from '../common/job-types.js';
import { cancelMigration, queryMigration, startMigration } from '../qemu/migration-engine.js';
import type { MigrationInfo } from '../qemu/migration-info.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import { expectSuccess, filterCommand, helperFailure, spawnHelper, type Helper } from './compressor.js';
import { directWriter } from './direct-io.js';
import type { SaveFormatName } from '../common/save-formats.js';
import { RELAY_PROGRAM } from './mid-stream-relay.js';
import { openPipe, type FdBag } from './os-pipe.js';
import type { FdLabeller } from './pipe-label.js';
import { abortedError, type StreamControl } from './stream-control.js';
import { StreamSession } from './stream-session.js';
import { migrationProgress, STREAM_QMP_DEADLINE } from './stream-progress.js';

export interface SaveStreamSpec {
  qmp: QmpClient;
  path: string;
  /** The image, open for writing and positioned at streamOffset (the header is written). */
  imageFd: number;
  streamOffset: number;
  format: SaveFormatName;
  bypassCache: boolean;
  /** Where the pipes' FIFOs are made for a moment (the host's run directory). */
  pipeDir: string;
  /** Labels the pipe QEMU writes into (security driver); a raw image is labelled by path by the caller. */
  labeller: FdLabeller;
  control: StreamControl;
}

export interface SaveStreamResult {
  /** QEMU's stream, before compression. */
  streamBytes: number;
  final: MigrationInfo;
}

/** Bound on waiting for QEMU to acknowledge a cancel once the consumers are gone. */
const CANCEL_SETTLE_MS = 10_000;

const helperWhat = (h: Helper): string =>
  h.program === 'dd' ? 'writing the image with O_DIRECT' : h.program === RELAY_PROGRAM ? 'relaying the stream' : 'compressing the image';

export async function runSaveStream(spec: SaveStreamSpec): Promise<SaveStreamResult> {
  const { qmp } = spec;
  const session = new StreamSession(qmp, spec.control, spec.labeller, 'save');
  const { fds, pipeLabel, helpers, watcher } = session;
  let last: JobProgress = {};
  const probe = async (): Promise<{ progress: JobProgress; status?: string }> => {
    const q = await queryMigration(qmp, STREAM_QMP_DEADLINE);
    last = migrationProgress(q);
    return { progress: last, status: q.status };
  };
  try {
    const { qemuFd, pipeReadFd, relaySink } = buildPipeline(spec, fds, helpers);
    session.watchHelpers();
    if (pipeReadFd !== undefined) await pipeLabel.hold(pipeReadFd);
    // A raw image is QEMU's own descriptor; the pipe's write end we must let go of.
    await session.handOver(qemuFd, qemuFd === spec.imageFd, startMigration);
    if (relaySink !== undefined && pipeReadFd !== undefined && spec.control.midStream) {
      await session.relay(pipeReadFd, relaySink, spec.control.midStream);
      // The rest-relay has its own copy; ours would keep the next stage from seeing EOF.
      if (relaySink !== spec.imageFd) fds.close(relaySink);
    }

    let stop: { aborted: true } | { failure: Error } | undefined;
    for (let done = false; !done && !stop;) {
      const ev = await watcher.next(probe);
      switch (ev.kind) {
        case 'status':
          done = true;
          break;
        case 'gone':
          throw vmError(ErrorType.OperationFailed, 'QEMU exited while saving the domain', { path: spec.path });
        case 'aborted':
          stop = { aborted: true };
          break;
        case 'helper': {
          const r = await ev.helper.exited;
          // Exit 0 here only means QEMU closed its end; its completion event follows.
          if (r.code !== 0) stop = { failure: (await helperFailure(ev.helper, helperWhat(ev.helper)))! };
          break;
        }
      }
    }
    if (stop) {
      // Readers first: a QEMU blocked writing into a stalled pipe notices the cancel only once that write fails.
      await pipeLabel.release();
      session.killHelpers();
      await cancelMigration(qmp, STREAM_QMP_DEADLINE).catch(() => undefined);
      const settled = await watcher.settled(probe, CANCEL_SETTLE_MS);
      if (settled === undefined && !watcher.gone)
        throw vmError(ErrorType.InternalError, `QEMU did not stop its migration to ${spec.path} within ${CANCEL_SETTLE_MS} ms of migrate_cancel`);
      throw 'aborted' in stop ? abortedError('save') : stop.failure;
    }

    if (watcher.status !== 'completed') {
      await pipeLabel.release();
      const q = await queryMigration(qmp, STREAM_QMP_DEADLINE).catch(() => undefined);
      // A helper that failed on its own explains a failed stream better than QEMU's EPIPE.
      for (const h of helpers.filter((x) => x.hasExited())) {
        const err = await helperFailure(h, helperWhat(h));
        if (err) throw err;
      }
      if (watcher.status === 'cancelled') throw abortedError('save');
      throw vmError(ErrorType.OperationFailed, `QEMU's migration to ${spec.path} failed: ${q?.['error-desc'] ?? watcher.status ?? 'unknown error'}`, {
        path: spec.path,
      });
    }

    // QEMU is done; the helpers still flush what it gave them.
    spec.control.onProgress({ ...last, percent: 100 }, 'flushing');
    const flushed = await watcher.helpersDone(helpers, () => undefined);
    await pipeLabel.release();
    if (!flushed) {
      for (const h of helpers) h.kill();
      throw abortedError('save');
    }
    for (const h of helpers) await expectSuccess(h, helperWhat(h));
    const final = await queryMigration(qmp, STREAM_QMP_DEADLINE);
    return { streamBytes: final.ram?.transferred ?? 0, final };
  } finally {
    await session.close();
  }
}

/**
 * Spawns the helpers; returns the descriptor QEMU writes into and, when that is
 * a pipe, the pipe's read end (kept open by the worker for its label).
 */
function buildPipeline(spec: SaveStreamSpec, fds: FdBag, helpers: Helper[]): { qemuFd: number; pipeReadFd?: number; relaySink?: number } {
  const inner = buildStages(spec, fds, helpers);
  if (!spec.control.midStream) return inner;
  // QEMU writes into a pipe of its own; the relay copies it into what QEMU would have written to.
  const toRelay = openPipe(spec.pipeDir);
  fds.add(toRelay.readFd);
  fds.add(toRelay.writeFd);
  if (inner.pipeReadFd !== undefined) fds.close(inner.pipeReadFd);
  return { qemuFd: toRelay.writeFd, pipeReadFd: toRelay.readFd, relaySink: inner.qemuFd };
}

function buildStages(spec: SaveStreamSpec, fds: FdBag, helpers: Helper[]): { qemuFd: number; pipeReadFd?: number } {
  const compressor = filterCommand(spec.format, 'compress');
  if (!compressor && !spec.bypassCache) return { qemuFd: spec.imageFd };
  const fromQemu = openPipe(spec.pipeDir);
  fds.add(fromQemu.readFd);
  fds.add(fromQemu.writeFd);
  let source = fromQemu.readFd;
  if (compressor) {
    let sink = spec.imageFd;
    let next: number | undefined;
    if (spec.bypassCache) {
      const toDd = openPipe(spec.pipeDir);
      next = fds.add(toDd.readFd);
      sink = fds.add(toDd.writeFd);
    }
    helpers.push(spawnHelper(compressor, source, sink));
    if (next !== undefined) {
      fds.close(sink);
      source = next;
    }
  }
  if (spec.bypassCache) {
    helpers.push(spawnHelper(directWriter(spec.path, spec.streamOffset), source, 'ignore'));
    if (source !== fromQemu.readFd) fds.close(source);
  }
  return { qemuFd: fromQemu.writeFd, pipeReadFd: fromQemu.readFd };
}
