// The demo's reader of the guest's TCP counter: one connection held from boot to the end,
// so the output shows the same connection carrying on across save/restore and migrations.
// The guest sends "<seq> <guest ms>" lines; seq is one counter for the guest's life. A
// connection that drops is reconnected once and said so (the counter still continues).
import { connect, type Socket } from 'node:net';

export class CounterStream {
  lastSeq = 0;
  connections = 0;
  /** Longest gap between two lines on one connection, ms. */
  longestPauseMs = 0;
  private lastAt = 0;
  private socket?: Socket;
  private closed = false;
  private waiters = new Set<(seq: number, gapMs: number) => void>();

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly log: (line: string) => void,
  ) {}

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Connects (the guest must be listening); resolves once connected. */
  async open(timeoutMs = 20_000): Promise<void> {
    const s = connect({ host: this.host, port: this.port });
    this.socket = s;
    s.setNoDelay(true);
    let buf = '';
    s.on('data', (d) => {
      const now = performance.now();
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const seq = Number(buf.slice(0, i).split(' ')[0]);
        buf = buf.slice(i + 1);
        if (!Number.isFinite(seq)) continue;
        const gapMs = this.lastAt ? now - this.lastAt : Infinity;
        if (this.lastAt) this.longestPauseMs = Math.max(this.longestPauseMs, gapMs);
        this.lastAt = now;
        this.lastSeq = seq;
        for (const w of [...this.waiters]) w(seq, gapMs);
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.closed || this.socket !== s) return;
      this.log(`the counter connection to ${this.address} closed; reconnecting`);
      this.lastAt = 0;
      this.open().catch((err: unknown) => this.log(`could not reconnect to ${this.address}: ${String(err)}`));
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no connection to ${this.address} within ${timeoutMs} ms`)), timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        this.connections++;
        resolve();
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /**
   * The guest's current seq: the first line after this call that arrives on its own (at least
   * `quietMs` after the one before), not one of a backlog TCP delivers in a burst after a pause.
   */
  current(timeoutMs: number, quietMs = 40): Promise<number> {
    return new Promise((resolve, reject) => {
      const w = (seq: number, gapMs: number): void => {
        if (gapMs < quietMs) return;
        clearTimeout(timer);
        this.waiters.delete(w);
        resolve(seq);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`no counter line from ${this.address} within ${timeoutMs} ms (last seq ${this.lastSeq})`));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
  }
}
