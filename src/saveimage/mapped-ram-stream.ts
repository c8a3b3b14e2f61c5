// A sparse image's stream (libvirt 11's "sparse" format, QEMU's mapped-ram): QEMU writes
// each RAM page at its own offset of the image through N multifd channels, and reads it
// back the same way. No pipe and no helper: the worker hands QEMU descriptors of the image
// itself (migration-engine-mapped-ram.ts), and with --bypass-cache a second one opened
// O_DIRECT, which QEMU's direct-io uses for the pages. The header before the stream is the
// caller's, as for the classic stream.
//
// Test fault point (save.mid-stream): QEMU is asked to stop at pre-switchover, where the RAM
// is in the file and the device state is not; the point runs there while the abort flag is
// still watched, then QEMU goes on.
import { closeSync, constants, openSync } from 'node:fs';
import { ErrorType, vmError } from '../common/errors.js';
import type { JobProgress } from '../common/job-types.js';
import { cancelMigration, queryMigration, startIncomingMigration, startMigration } from '../qemu/migration-engine.js';
import {
  addImageFdset,
  clearMappedRam,
  continueFromPreSwitchover,
  fdsetFileUri,
  removeImageFdsets,
  setMappedRam,
} from '../qemu/migration-engine-mapped-ram.js';
import type { MigrationInfo } from '../qemu/migration-info.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import { abortedError, StreamWatcher, type StreamControl } from './stream-control.js';
import { migrationProgress, STREAM_QMP_DEADLINE } from './stream-progress.js';

export interface MappedRamSpec {
  qmp: QmpClient;
  path: string;
  /** Save: the image, open for writing, header written. Restore: opened here. */
  imageFd?: number;
  streamOffset: number;
  channels: number;
  bypassCache: boolean;
  control: StreamControl;
}

const CANCEL_SETTLE_MS = 10_000;

/** The descriptors QEMU gets: ours, and with direct-io one opened O_DIRECT (QEMU picks by flags). */
function directFd(path: string, write: boolean): number {
  try {
    return openSync(path, (write ? constants.O_WRONLY : constants.O_RDONLY) | constants.O_DIRECT | constants.O_NOFOLLOW);
  } catch (err) {
    throw vmError(ErrorType.OperationFailed, `cannot open ${path} with O_DIRECT for --bypass-cache: ${(err as Error).message}`, { path });
  }
}

async function handOver(spec: MappedRamSpec, fd: number, write: boolean): Promise<number> {
  const extra = spec.bypassCache ? directFd(spec.path, write) : undefined;
  try {
    return await addImageFdset(spec.qmp, extra === undefined ? [fd] : [fd, extra]);
  } finally {
    // QEMU holds its own copies now.
    if (extra !== undefined) closeSync(extra);
  }
}

async function letGo(qmp: QmpClient, fdset: number | undefined): Promise<void> {
  if (fdset !== undefined) await removeImageFdsets(qmp, fdset).catch(() => undefined);
  await clearMappedRam(qmp).catch(() => undefined);
}

export async function runMappedRamSave(spec: MappedRamSpec): Promise<{ streamBytes: number; final: MigrationInfo }> {
  const { qmp } = spec;
  let midFailure: unknown;
  let midStarted = false;
  const control: StreamControl = { ...spec.control, aborted: () => spec.control.aborted() || midFailure !== undefined };
  const watcher = new StreamWatcher(qmp, control);
  let fdset: number | undefined;
  const probe = async (): Promise<{ progress: JobProgress; status?: string }> => {
    const q = await queryMigration(qmp, STREAM_QMP_DEADLINE);
    if (q.status === 'pre-switchover' && spec.control.midStream && !midStarted) {
      midStarted = true;
      spec.control
        .midStream()
        .then(() => (control.aborted() ? undefined : continueFromPreSwitchover(qmp)))
        .catch((err: unknown) => (midFailure = err));
    }
    return { progress: migrationProgress(q), status: q.status };
  };
  try {
    await setMappedRam(qmp, { channels: spec.channels, directIo: spec.bypassCache, pauseBeforeSwitchover: spec.control.midStream !== undefined });
    fdset = await handOver(spec, spec.imageFd!, true);
    await startMigration(qmp, fdsetFileUri(fdset, spec.streamOffset));
    let stop = false;
    for (let done = false; !done && !stop;) {
      const ev = await watcher.next(probe);
      if (ev.kind === 'status') done = true;
      else if (ev.kind === 'gone') throw vmError(ErrorType.OperationFailed, 'QEMU exited while saving the domain', { path: spec.path });
      else stop = true;
    }
    if (stop) {
      await cancelMigration(qmp, STREAM_QMP_DEADLINE).catch(() => undefined);
      const settled = await watcher.settled(probe, CANCEL_SETTLE_MS);
      if (settled === undefined && !watcher.gone)
        throw vmError(ErrorType.InternalError, `QEMU did not stop its migration to ${spec.path} within ${CANCEL_SETTLE_MS} ms of migrate_cancel`);
      if (midFailure !== undefined && !spec.control.aborted()) throw midFailure;
      throw abortedError('save');
    }
    const final = await queryMigration(qmp, STREAM_QMP_DEADLINE);
    if (watcher.status !== 'completed') {
      if (watcher.status === 'cancelled') throw abortedError('save');
      throw vmError(ErrorType.OperationFailed, `QEMU's mapped-ram save to ${spec.path} failed: ${final['error-desc'] ?? watcher.status ?? 'unknown error'}`, {
        path: spec.path,
      });
    }
    spec.control.onProgress({ ...migrationProgress(final), percent: 100 }, 'completed');
    return { streamBytes: final.ram?.transferred ?? 0, final };
  } finally {
    watcher.dispose();
    if (!watcher.gone) await letGo(qmp, fdset);
  }
}

export async function runMappedRamRestore(spec: MappedRamSpec): Promise<void> {
  const { qmp } = spec;
  const watcher = new StreamWatcher(qmp, spec.control);
  let fdset: number | undefined;
  let fd: number | undefined;
  const probe = async (): Promise<{ progress: JobProgress; status?: string }> => {
    // The incoming side counts no bytes: the job shows its status only.
    const q = await queryMigration(qmp, STREAM_QMP_DEADLINE);
    return { progress: q.status === 'completed' ? { percent: 100 } : {}, status: q.status };
  };
  try {
    fd = openSync(spec.path, constants.O_RDONLY | constants.O_NOFOLLOW);
    await setMappedRam(qmp, { channels: spec.channels, directIo: spec.bypassCache });
    fdset = await handOver(spec, fd, false);
    closeSync(fd);
    fd = undefined;
    await startIncomingMigration(qmp, fdsetFileUri(fdset, spec.streamOffset));
    // Test fault point: QEMU reads on meanwhile (an incoming stream has no place to stop at).
    if (spec.control.midStream) await spec.control.midStream();
    for (let done = false; !done;) {
      const ev = await watcher.next(probe);
      if (ev.kind === 'status') done = true;
      else if (ev.kind === 'gone') throw vmError(ErrorType.OperationFailed, `QEMU exited while loading ${spec.path}`, { path: spec.path });
      // The caller kills the incoming QEMU.
      else if (ev.kind === 'aborted') throw abortedError('restore');
    }
    if (watcher.status !== 'completed') {
      const q = await queryMigration(qmp, STREAM_QMP_DEADLINE).catch(() => undefined);
      throw vmError(
        ErrorType.OperationFailed,
        `QEMU could not load the mapped-ram stream of ${spec.path}: ${q?.['error-desc'] ?? watcher.status ?? 'unknown error'}`,
        {
          path: spec.path,
        },
      );
    }
  } finally {
    watcher.dispose();
    if (fd !== undefined) closeSync(fd);
    if (!watcher.gone) await letGo(qmp, fdset);
  }
}
