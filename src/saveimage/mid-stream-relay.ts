// A relay stage put between QEMU and the rest of a save or restore pipeline only
// when a test armed a `*.mid-stream` fault point. Sampling QEMU's progress cannot
// promise to catch a stream that lasts a few milliseconds; a relay can: it passes
// exactly the first MiB, then the point runs while QEMU is blocked on the pipe
// (the stream provably half-way), then a second process passes the rest. Both
// stages are ordinary helpers (recorded for crash recovery, killed on cancel).
// If the worker dies at the point, the only other end of QEMU's pipe dies with
// it, so QEMU sees the stream break instead of waiting forever.
import { ErrorType, vmError } from '../common/errors.js';
import { helperFailure, requireProgram, spawnHelper, type FilterCommand, type Helper } from './compressor.js';

export const RELAY_HEAD_BYTES = 1024 * 1024;
export const RELAY_PROGRAM = 'mid-stream relay';

function headCommand(): FilterCommand {
  return {
    program: RELAY_PROGRAM,
    path: requireProgram('dd', 'a mid-stream fault point'),
    args: [`bs=${RELAY_HEAD_BYTES}`, 'count=1', 'iflag=fullblock', 'status=none'],
  };
}

function restCommand(): FilterCommand {
  return { program: RELAY_PROGRAM, path: requireProgram('cat', 'a mid-stream fault point'), args: [] };
}

/**
 * Copies the first MiB from `source` to `sink`, runs `point`, then starts the
 * helper that copies the rest, which it returns (the caller watches it and
 * closes its own copies of the descriptors it no longer needs).
 */
export async function relayAroundPoint(source: number, sink: number, point: () => Promise<void>, onHelper: (h: Helper) => void): Promise<Helper> {
  const head = spawnHelper(headCommand(), source, sink);
  onHelper(head);
  const failed = await helperFailure(head, 'relaying the stream');
  if (failed) throw failed;
  await point();
  const rest = spawnHelper(restCommand(), source, sink);
  if (rest.pid <= 0) throw vmError(ErrorType.OperationFailed, 'cannot start the mid-stream relay');
  onHelper(rest);
  return rest;
}
