// The dump's data path: QEMU writes into a pipe the worker made, and the worker
// copies it into the file. The pipe, not the file, is what QEMU gets because it
// is the only way to stop a dump in QEMU 7.2, which has no dump-cancel: closing
// the read end makes QEMU's next write fail with EPIPE, the dump ends as
// "failed" within milliseconds and QEMU resumes the guest. It also lets the
// worker limit the rate (setSpeed) and count bytes as they land.
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, rmSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { ErrorType, vmError } from '../common/errors.js';

function mkfifo(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('mkfifo', ['-m', '600', '--', path], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      stderr += s;
    });
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(vmError(ErrorType.OperationFailed, `mkfifo ${path} failed: ${stderr.trim() || `exit ${String(code)}`}`)),
    );
  });
}

export class DumpPipe {
  /** The end QEMU gets (via getfd); the worker closes its copy once QEMU has it. */
  writeFd: number | undefined;
  /**
   * The worker's handle on the read side, kept apart from the socket's own copy so the
   * pipe can still be labelled and restored by descriptor after the copy has ended.
   * Every read-side descriptor must close for QEMU's writes to fail: abort() closes both.
   */
  readonly readFd: number;
  private readClosed = false;
  private readonly sock: Socket;
  private bytesPerSec = 0;
  private windowStart = Date.now();
  private windowBytes = 0;
  private abortedFlag = false;
  copied = 0;

  private constructor(readFd: number, writeFd: number) {
    this.readFd = readFd;
    this.writeFd = writeFd;
    // A dup of the read end for the socket, so restoring labels can still use readFd after the copy ends.
    this.sock = new Socket({ fd: openSync(`/proc/self/fd/${readFd}`, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  }

  /** A FIFO in `dir`, opened at both ends and unlinked at once: afterwards it is an anonymous pipe. */
  static async open(dir: string): Promise<DumpPipe> {
    const path = join(dir, `dump-${randomBytes(6).toString('hex')}.fifo`);
    await mkfifo(path);
    let readFd: number | undefined;
    try {
      // Non-blocking so the open does not wait for a writer; the writer's open then finds a reader.
      readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      const writeFd = openSync(path, constants.O_WRONLY);
      return new DumpPipe(readFd, writeFd);
    } catch (err) {
      if (readFd !== undefined) closeSync(readFd);
      throw err;
    } finally {
      rmSync(path, { force: true });
    }
  }

  closeWriteEnd(): void {
    if (this.writeFd === undefined) return;
    closeSync(this.writeFd);
    this.writeFd = undefined;
  }

  /** MiB/s, 0 = unlimited; applies from the next chunk on. */
  setSpeed(mibps: number): void {
    this.bytesPerSec = mibps * 1024 * 1024;
    this.windowStart = Date.now();
    this.windowBytes = 0;
  }

  get aborted(): boolean {
    return this.abortedFlag;
  }

  /** Stops the copy and breaks the pipe under QEMU's writer. */
  abort(): void {
    this.abortedFlag = true;
    this.close();
  }

  /** Copies until QEMU closes its end (EOF) or abort(); resolves with the bytes written. */
  async copyTo(file: FileHandle): Promise<number> {
    try {
      for await (const chunk of this.sock) {
        const buf = chunk as Buffer;
        for (let off = 0; off < buf.length;) {
          const { bytesWritten } = await file.write(buf, off, buf.length - off);
          off += bytesWritten;
        }
        this.copied += buf.length;
        await this.throttle(buf.length);
      }
    } catch (err) {
      if (!this.abortedFlag) throw err;
    }
    return this.copied;
  }

  private async throttle(n: number): Promise<void> {
    if (this.bytesPerSec <= 0) return;
    this.windowBytes += n;
    // Rate limiting, not synchronisation: hold the reader back until the budget allows more.
    const aheadMs = (this.windowBytes / this.bytesPerSec) * 1000 - (Date.now() - this.windowStart);
    if (aheadMs > 1) await delay(Math.min(aheadMs, 1000));
  }

  close(): void {
    this.sock.destroy();
    this.closeWriteEnd();
    if (this.readClosed) return;
    this.readClosed = true;
    closeSync(this.readFd);
  }
}
