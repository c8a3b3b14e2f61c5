// The security label of the pipe QEMU reads or writes, held for as long as QEMU
// uses it. Labels belong to the pipe's inode and come off again through a
// descriptor, so the worker keeps one read end open until the stream is over.
// An extra reader changes nothing for EOF (only writers decide that); but a
// QEMU blocked on a full pipe is only released once no reader is left, so a
// stream that must stop lets go of this descriptor before anything else.
import type { FdBag } from './os-pipe.js';

export interface FdLabeller {
  labelFd: (fd: number) => Promise<void>;
  restoreFd: (fd: number) => Promise<void>;
  /** A failed restore is reported, never the stream's error. */
  onRestoreError: (err: unknown) => void;
}

export class PipeLabel {
  private fd: number | undefined;

  constructor(
    private readonly fds: FdBag,
    private readonly labeller: FdLabeller,
  ) {}

  /** Labels the pipe through `fd` (a read end the caller owns in `fds`) and keeps it open. */
  async hold(fd: number): Promise<void> {
    this.fd = fd;
    await this.labeller.labelFd(fd);
  }

  /** Puts the original label back and closes the held end; repeatable. */
  async release(): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    try {
      await this.labeller.restoreFd(fd);
    } catch (err) {
      this.labeller.onRestoreError(err);
    } finally {
      this.fds.close(fd);
    }
  }
}
