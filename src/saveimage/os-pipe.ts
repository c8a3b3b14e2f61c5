// An anonymous pipe as two plain descriptors, which Node has no call for: a FIFO
// is made in the run directory, opened at both ends and unlinked at once. Both
// ends are blocking (compressors expect that), and each is its own open file
// description, so a reader that dies makes the writer's next write fail with
// EPIPE instead of blocking forever: that is what lets a cancel end a save whose
// compressor stalled.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import { requireProgram } from './compressor.js';

export interface OsPipe {
  readFd: number;
  writeFd: number;
}

export function openPipe(dir: string): OsPipe {
  const path = join(dir, `pipe-${randomBytes(6).toString('hex')}.fifo`);
  const made = spawnSync(requireProgram('mkfifo', 'a save or restore pipeline'), ['-m', '600', '--', path], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (made.status !== 0)
    throw vmError(ErrorType.OperationFailed, `cannot make a pipe in ${dir}: ${made.stderr?.trim() || made.error?.message || `mkfifo exited ${made.status}`}`);
  let both: number | undefined;
  let readFd: number | undefined;
  try {
    // O_RDWR never blocks on Linux and counts as a writer, so the read-only open
    // returns at once; the write-only open then finds that reader. The O_RDWR
    // descriptor goes away so neither end keeps the other alive.
    both = openSync(path, constants.O_RDWR);
    readFd = openSync(path, constants.O_RDONLY);
    const writeFd = openSync(path, constants.O_WRONLY);
    return { readFd, writeFd };
  } catch (err) {
    if (readFd !== undefined) closeSync(readFd);
    throw vmError(ErrorType.OperationFailed, `cannot open pipe ${path}: ${(err as Error).message}`);
  } finally {
    if (both !== undefined) closeSync(both);
    rmSync(path, { force: true });
  }
}

/**
 * Descriptors the worker owns during one pipeline. Each is closed exactly once:
 * closing a number twice could close whatever file later reused it.
 */
export class FdBag {
  private readonly fds = new Set<number>();

  add(fd: number): number {
    this.fds.add(fd);
    return fd;
  }

  close(fd: number | undefined): void {
    if (fd === undefined || !this.fds.delete(fd)) return;
    try {
      closeSync(fd);
    } catch {
      // the kernel has let go of it already
    }
  }

  closeAll(): void {
    for (const fd of [...this.fds]) this.close(fd);
  }
}
