// Heartbeats for the long save and restore activities: sent on a timer, not
// only from the stream loop, so an fsync of a large image or QEMU's exit keeps
// the activity visibly alive, and Temporal's cancellation (delivered in
// heartbeat responses) reaches it within the worker's throttle interval.
import type { Context } from '@temporalio/activity';
import type { SaveJobHeartbeat } from '../common/save-types.js';

const INTERVAL_MS = 500;

export class Heartbeats {
  private details: SaveJobHeartbeat;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly ctx: Context,
    phase: string,
  ) {
    this.details = { phase, status: 'setup', progress: {} };
    ctx.heartbeat(this.details);
    this.timer = setInterval(() => ctx.heartbeat(this.details), INTERVAL_MS);
  }

  update(patch: Partial<SaveJobHeartbeat>): void {
    this.details = { ...this.details, ...patch };
    this.ctx.heartbeat(this.details);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
