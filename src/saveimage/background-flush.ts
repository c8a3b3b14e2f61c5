// Writes an image back to disk while QEMU is still streaming into it. The image
// may be marked complete only once its data is durable, and a single fsync at
// the end of a multi-gigabyte save would sit on the job's critical path for as
// long as the disk needs; flushing as the data arrives overlaps that work with
// the stream, so the final fsync finds little left to do.
import { fdatasync } from 'node:fs';
import { promisify } from 'node:util';

const fdatasyncAsync = promisify(fdatasync);
const INTERVAL_MS = 100;

export class BackgroundFlush {
  private inFlight: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly fd: number) {
    this.timer = setInterval(() => this.kick(), INTERVAL_MS);
  }

  private kick(): void {
    if (this.inFlight || this.stopped) return;
    // A failed background flush is not the job's error: the final fsync reports what matters.
    this.inFlight = fdatasyncAsync(this.fd)
      .catch(() => undefined)
      .finally(() => {
        this.inFlight = undefined;
      });
  }

  /** Stops flushing and waits for a flush in progress (the descriptor may be closed afterwards). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.inFlight;
  }
}
