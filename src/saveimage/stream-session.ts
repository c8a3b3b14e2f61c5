// What a save and a restore stream hold while QEMU reads or writes an image: the
// descriptors the worker opened, the helpers it spawned, the label on the pipe QEMU
// uses, the watcher of QEMU's events, and the descriptor handed to QEMU by name.
// Both end the same way, whatever happened: everything is let go of in close().
import { randomBytes } from 'node:crypto';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { Helper } from './compressor.js';
import { relayAroundPoint } from './mid-stream-relay.js';
import { FdBag } from './os-pipe.js';
import { PipeLabel, type FdLabeller } from './pipe-label.js';
import { StreamWatcher, type StreamControl } from './stream-control.js';

export class StreamSession {
  readonly fds = new FdBag();
  readonly pipeLabel: PipeLabel;
  readonly helpers: Helper[] = [];
  readonly watcher: StreamWatcher;
  private readonly fdname: string;
  /** QEMU holds our descriptor under `fdname` but has not taken it into a migration yet. */
  private fdWithQemu = false;

  constructor(
    private readonly qmp: QmpClient,
    private readonly control: StreamControl,
    labeller: FdLabeller,
    kind: 'save' | 'restore',
  ) {
    this.pipeLabel = new PipeLabel(this.fds, labeller);
    this.watcher = new StreamWatcher(qmp, control);
    this.fdname = `vmferry-${kind}-${randomBytes(4).toString('hex')}`;
  }

  /** Tells the job record which helpers run (a restarted worker stops them) and watches them. */
  watchHelpers(): void {
    this.recordHelpers();
    this.watcher.watch(this.helpers);
  }

  private recordHelpers(): void {
    this.control.onHelpers(this.helpers.map(({ program, pid, startTime }) => ({ program, pid, startTime })));
  }

  /**
   * Hands `fd` to QEMU (`getfd`) and starts the migration on `fd:NAME`. Our copy is
   * closed unless `keepOurCopy`: a pipe end we still held would keep the next stage
   * from ever seeing EOF.
   */
  async handOver(fd: number, keepOurCopy: boolean, start: (qmp: QmpClient, uri: string) => Promise<void>): Promise<void> {
    await this.qmp.execute('getfd', { fdname: this.fdname }, { fds: [fd] });
    this.fdWithQemu = true;
    if (!keepOurCopy) this.fds.close(fd);
    await start(this.qmp, `fd:${this.fdname}`);
    this.fdWithQemu = false; // QEMU took it by name
  }

  /** With a mid-stream fault point armed: relays the stream around the point, its helpers watched like the others. */
  async relay(source: number, sink: number, midStream: NonNullable<StreamControl['midStream']>): Promise<void> {
    await relayAroundPoint(source, sink, midStream, (h) => {
      this.helpers.push(h);
      this.recordHelpers();
      this.watcher.watch([h]);
    });
  }

  killHelpers(): void {
    for (const h of this.helpers) h.kill();
  }

  async close(): Promise<void> {
    this.watcher.dispose();
    await this.pipeLabel.release();
    this.killHelpers();
    this.fds.closeAll();
    if (this.fdWithQemu) await this.qmp.execute('closefd', { fdname: this.fdname }).catch(() => undefined);
  }
}
