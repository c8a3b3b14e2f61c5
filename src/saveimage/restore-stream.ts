// A save image's stream into a QEMU waiting with `-incoming defer`.
//
// QEMU is already running when the stream is ready (launch() started it, so it
// inherited no descriptor of ours), hence `getfd` + `migrate-incoming fd:NAME`,
// the mirror of save-stream.ts: for a raw image QEMU gets the image file itself,
// positioned at the stream; otherwise the read end of a pipe the decompressor
// (fed by the file, or by dd with --bypass-cache) writes into.
import { constants, openSync, readSync } from 'node:fs';
import { ErrorType, vmError } from '../common/errors.js';
import type { JobProgress } from '../common/job-types.js';
import { queryMigration, startIncomingMigration } from '../qemu/migration-engine.js';
import { enableMigrationEvents } from '../qemu/migration-params.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import { expectSuccess, filterCommand, helperFailure, spawnHelper, type Helper } from './compressor.js';
import { directReader, isDirectAligned } from './direct-io.js';
import type { SaveFormatName } from '../common/save-formats.js';
import { RELAY_PROGRAM } from './mid-stream-relay.js';
import { openPipe, type FdBag } from './os-pipe.js';
import type { FdLabeller } from './pipe-label.js';
import { abortedError, type StreamControl } from './stream-control.js';
import { StreamSession } from './stream-session.js';
import { fileReadProgress, readPosition, STREAM_QMP_DEADLINE } from './stream-progress.js';

export interface RestoreStreamSpec {
  qmp: QmpClient;
  qemuPid: number;
  path: string;
  streamOffset: number;
  fileSize: number;
  format: SaveFormatName;
  bypassCache: boolean;
  pipeDir: string;
  /** Labels the pipe QEMU reads from (security driver); a raw image is labelled by path by the caller. */
  labeller: FdLabeller;
  control: StreamControl;
  /** Something the operator should know that does not fail the restore. */
  warn: (message: string) => void;
}

export interface RestoreStreamResult {
  /** Bytes of the image consumed (after the header). */
  imageBytes: number;
}

const helperWhat = (h: Helper): string =>
  h.program === 'dd' ? 'reading the image with O_DIRECT' : h.program === RELAY_PROGRAM ? 'relaying the stream' : 'decompressing the image';

/** Opens the image and moves its file offset past the header (read(), not pread(), so the offset moves). */
function openAtStream(path: string, offset: number): number {
  const fd = openSync(path, constants.O_RDONLY);
  const buf = Buffer.allocUnsafe(Math.min(offset, 1 << 20));
  for (let done = 0; done < offset;) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, offset - done), null);
    if (n === 0) throw vmError(ErrorType.OperationInvalid, `image ${path} ends inside its header`, { path });
    done += n;
  }
  return fd;
}

export async function runRestoreStream(spec: RestoreStreamSpec): Promise<RestoreStreamResult> {
  const { qmp } = spec;
  const session = new StreamSession(qmp, spec.control, spec.labeller, 'restore');
  const { fds, pipeLabel, helpers, watcher } = session;
  try {
    const { qemuFd, readerPid, isPipe, relay } = buildPipeline(spec, fds, helpers);
    session.watchHelpers();
    const probe = async (): Promise<{ progress: JobProgress; status?: string }> => {
      const progress = fileReadProgress(spec.streamOffset, spec.fileSize, readPosition(readerPid, spec.path));
      const q = await queryMigration(qmp, STREAM_QMP_DEADLINE);
      return { progress, status: q.status };
    };
    await enableMigrationEvents(qmp);
    if (isPipe) await pipeLabel.hold(qemuFd);
    // A pipe's read end stays ours while its label is held; the image file QEMU alone reads.
    await session.handOver(qemuFd, isPipe, startIncomingMigration);
    if (relay && spec.control.midStream) {
      await session.relay(relay.source, relay.sink, spec.control.midStream);
      // Only the rest-relay may hold these now, or QEMU would never see the stream's end.
      fds.close(relay.source);
      fds.close(relay.sink);
    }

    for (let done = false; !done;) {
      const ev = await watcher.next(probe);
      switch (ev.kind) {
        case 'status':
          done = true;
          break;
        case 'gone':
          throw vmError(ErrorType.OperationFailed, `QEMU exited while loading ${spec.path}`, { path: spec.path });
        case 'aborted':
          // The caller kills the incoming QEMU; QEMU 7.2 cannot cancel an incoming migration.
          session.killHelpers();
          throw abortedError('restore');
        case 'helper': {
          const err = await helperFailure(ev.helper, helperWhat(ev.helper));
          if (err) throw err;
          break;
        }
      }
    }
    if (watcher.status !== 'completed') {
      const q = await queryMigration(qmp, STREAM_QMP_DEADLINE).catch(() => undefined);
      for (const h of helpers.filter((x) => x.hasExited())) {
        const err = await helperFailure(h, helperWhat(h));
        if (err) throw err;
      }
      throw vmError(ErrorType.OperationFailed, `QEMU could not load the stream of ${spec.path}: ${q?.['error-desc'] ?? watcher.status ?? 'unknown error'}`, {
        path: spec.path,
      });
    }
    // QEMU has read its last byte: a helper with more to write must fail (EPIPE), not wait on our reader.
    await pipeLabel.release();
    const drained = await watcher.helpersDone(helpers, () => undefined);
    if (!drained) throw abortedError('restore');
    for (const h of helpers) await expectSuccess(h, helperWhat(h));
    return { imageBytes: spec.fileSize - spec.streamOffset };
  } finally {
    await session.close();
  }
}

interface RestorePipeline {
  qemuFd: number;
  readerPid: number;
  isPipe: boolean;
  /** Only with a mid-stream fault point armed: the relay's ends. */
  relay?: { source: number; sink: number };
}

function buildPipeline(spec: RestoreStreamSpec, fds: FdBag, helpers: Helper[]): RestorePipeline {
  const inner = buildStages(spec, fds, helpers);
  if (!spec.control.midStream) return inner;
  // QEMU reads a pipe of its own; the relay fills it from what QEMU would have read.
  const toQemu = openPipe(spec.pipeDir);
  fds.add(toQemu.readFd);
  fds.add(toQemu.writeFd);
  return { qemuFd: toQemu.readFd, readerPid: inner.readerPid, isPipe: true, relay: { source: inner.qemuFd, sink: toQemu.writeFd } };
}

function buildStages(spec: RestoreStreamSpec, fds: FdBag, helpers: Helper[]): RestorePipeline {
  const decompressor = filterCommand(spec.format, 'decompress');
  let direct = spec.bypassCache;
  if (direct && !isDirectAligned(spec.streamOffset)) {
    // Images from other writers need not align their stream; O_DIRECT reads would fail there.
    spec.warn(`image stream at offset ${spec.streamOffset} is not block-aligned: reading ${spec.path} through the page cache`);
    direct = false;
  }
  if (!decompressor && !direct) {
    const fd = fds.add(openAtStream(spec.path, spec.streamOffset));
    return { qemuFd: fd, readerPid: spec.qemuPid, isPipe: false };
  }
  const toQemu = openPipe(spec.pipeDir);
  fds.add(toQemu.readFd);
  const sink = fds.add(toQemu.writeFd);
  let readerPid: number;
  if (direct) {
    const dd = directReader(spec.path, spec.streamOffset);
    if (decompressor) {
      const mid = openPipe(spec.pipeDir);
      fds.add(mid.readFd);
      fds.add(mid.writeFd);
      const reader = spawnHelper(dd, 'ignore', mid.writeFd);
      helpers.push(reader, spawnHelper(decompressor, mid.readFd, sink));
      fds.close(mid.writeFd);
      fds.close(mid.readFd);
      readerPid = reader.pid;
    } else {
      const reader = spawnHelper(dd, 'ignore', sink);
      helpers.push(reader);
      readerPid = reader.pid;
    }
  } else {
    const imageFd = fds.add(openAtStream(spec.path, spec.streamOffset));
    const reader = spawnHelper(decompressor!, imageFd, sink);
    helpers.push(reader);
    fds.close(imageFd);
    readerPid = reader.pid;
  }
  fds.close(sink);
  return { qemuFd: toQemu.readFd, readerPid, isPipe: true };
}
