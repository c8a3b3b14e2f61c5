// The source's end of one tunnelled migration. QEMU migrates into a unix
// socket this worker listens on (labelled for QEMU by the security driver);
// the accepted connection is piped both ways through the TLS data channel to
// the destination worker. A second TLS channel carries a one-byte ping that the
// destination echoes: it answers even while the data channel is congested, so
// silence means the peer or the link is gone, and the session says so at once
// (the `lost` signal) instead of waiting for TCP to give up.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { ErrorType, vmError } from '../../../common/errors.js';
import type { SecurityContext, SecurityDriver } from '../../security/index.js';
import { openChannel } from './client.js';
import { TUNNEL_HIGH_WATER_MARK, type TunnelTls } from './tls.js';

export interface SourceTunnelSpec {
  tls: TunnelTls;
  endpoint: string;
  destinationHost: string;
  jobId: string;
  /** The domain's name on the destination. */
  name: string;
  token: string;
  /** Where the socket QEMU connects to is made (the host's run directory). */
  socketDir: string;
  security: SecurityDriver;
  securityContext: SecurityContext;
  /** Silence on the control channel for this long means the destination is lost. */
  livenessMs?: number;
  onWarn?: (msg: string, err: unknown) => void;
}

const PING_MS = 250;
/** Long enough for a busy peer's event loop, short enough that a lost link costs seconds, not TCP's minutes. */
export const DEFAULT_LIVENESS_MS = 5_000;

export class SourceTunnel {
  /** Aborted, with the reason as an Error, when the destination or the link is lost mid-stream. */
  readonly lost = new AbortController();
  readonly uri: string;
  private qemu?: Socket;
  private qemuDone = false;
  private destroyed = false;
  private sent?: Promise<void>;
  /** The destination worker ended its side: its QEMU has read the stream and closed its socket. */
  private readonly peerEnded: Promise<void>;
  private labelled = false;
  private readonly timers: NodeJS.Timeout[] = [];

  private constructor(
    private readonly spec: SourceTunnelSpec,
    private readonly data: TLSSocket,
    private readonly control: TLSSocket,
    private readonly listener: Server,
    private readonly socketPath: string,
  ) {
    this.uri = `unix:${socketPath}`;
    this.peerEnded = new Promise<void>((resolve, reject) => {
      data.once('end', resolve);
      data.once('close', () => reject(new Error('the destination closed the tunnel without ending it')));
    });
    this.peerEnded.catch(() => undefined);
  }

  /** Dials both channels (refused: a typed error, nothing left open), then listens for QEMU. */
  static async open(spec: SourceTunnelSpec): Promise<SourceTunnel> {
    const hello = { v: 1 as const, jobId: spec.jobId, name: spec.name, token: spec.token };
    const [data, control] = await Promise.allSettled([
      openChannel(spec.tls, spec.endpoint, spec.destinationHost, { ...hello, channel: 'data' }),
      openChannel(spec.tls, spec.endpoint, spec.destinationHost, { ...hello, channel: 'control' }),
    ]);
    if (data.status === 'rejected' || control.status === 'rejected') {
      if (data.status === 'fulfilled') data.value.destroy();
      if (control.status === 'fulfilled') control.value.destroy();
      throw data.status === 'rejected' ? data.reason : (control as PromiseRejectedResult).reason;
    }
    const socketPath = join(spec.socketDir, `tun-${randomBytes(6).toString('hex')}.sock`);
    const listener = createServer({ allowHalfOpen: true, highWaterMark: TUNNEL_HIGH_WATER_MARK });
    const t = new SourceTunnel(spec, data.value, control.value, listener, socketPath);
    try {
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ path: socketPath, backlog: 1 }, () => resolve());
      });
      await spec.security.labelPath(socketPath, spec.securityContext);
      t.labelled = true;
    } catch (err) {
      t.destroy();
      throw vmError(ErrorType.OperationFailed, `cannot make the socket QEMU migrates into (${socketPath}): ${(err as Error).message}`);
    }
    t.start();
    return t;
  }

  private start(): void {
    this.listener.on('connection', (sock) => void this.onQemu(sock));
    this.data.once('close', () => this.markLost(`the tunnel connection to destination host '${this.spec.destinationHost}' closed during the migration`));
    this.control.once('close', () => this.markLost(`the tunnel control connection to destination host '${this.spec.destinationHost}' closed during the migration`));
    this.control.setNoDelay(true);
    // TLS records are smaller than a loopback segment: Nagle would hold each one back for an ACK.
    this.data.setNoDelay(true);
    let heardAt = Date.now();
    this.control.on('data', () => (heardAt = Date.now()));
    // The greeting left it paused; a 'data' listener does not undo an explicit pause.
    this.control.resume();
    const liveness = this.spec.livenessMs ?? DEFAULT_LIVENESS_MS;
    this.timers.push(
      setInterval(() => {
        this.control.write(Buffer.of(0x50));
        const silent = Date.now() - heardAt;
        if (silent > liveness) this.markLost(`destination host '${this.spec.destinationHost}' stopped answering on the tunnel for ${silent} ms (the link or its worker is gone)`);
      }, PING_MS),
    );
  }

  /** QEMU's one connection: piped through; anyone after it is turned away. */
  private async onQemu(sock: Socket): Promise<void> {
    if (this.qemu || this.destroyed) return void sock.destroy();
    this.qemu = sock;
    sock.on('error', () => undefined);
    // Label first, then the file: closing a unix listener unlinks its path.
    await this.unlinkSocket();
    this.listener.close();
    const broke = (err: Error | null | undefined): void => {
      if (err && !this.qemuDone) this.markLost(`the tunnel stream to destination host '${this.spec.destinationHost}' broke: ${err.message}`);
    };
    sock.once('end', () => (this.qemuDone = true));
    // QEMU's stream out, and whatever the destination QEMU sends back (its return path) in.
    this.sent = new Promise<void>((resolve, reject) => {
      pipeline(sock, this.data, (err) => {
        broke(err);
        if (err) reject(err);
        else resolve();
      });
    });
    this.sent.catch(() => undefined);
    pipeline(this.data, sock, broke);
  }

  private markLost(why: string): void {
    if (this.destroyed || this.qemuDone || this.lost.signal.aborted) return;
    this.lost.abort(vmError(ErrorType.OperationFailed, why, { host: this.spec.destinationHost }));
    // Nothing may keep QEMU writing into a tunnel that leads nowhere: its next write fails instead of blocking.
    this.teardown();
  }

  /**
   * After QEMU reported completion: waits until its last byte has left this
   * worker (a tunnel that broke before that means the destination may be short
   * of data: an error, so the source is resumed rather than killed), then until
   * the destination ends its side, which it does once its QEMU has read the
   * stream and closed its socket. Closing before that could reset the
   * connection under data still in flight.
   */
  async drained(timeoutMs: number): Promise<void> {
    if (this.lost.signal.aborted) throw this.lost.signal.reason;
    if (!this.sent) throw vmError(ErrorType.OperationFailed, 'QEMU never connected to the tunnel');
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.sent.then(() => this.peerEnded),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`not flushed within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      throw vmError(ErrorType.OperationFailed, `the end of the stream did not reach destination host '${this.spec.destinationHost}': ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Idempotent: closes the channels, QEMU's connection and the socket file, and restores the label. */
  destroy(): void {
    this.destroyed = true;
    this.teardown();
  }

  private teardown(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.control.destroy();
    this.data.destroy();
    this.qemu?.destroy();
    void this.unlinkSocket().finally(() => this.listener.close());
  }

  private async unlinkSocket(): Promise<void> {
    if (this.labelled) {
      this.labelled = false;
      await this.spec.security.restorePath(this.socketPath, this.spec.securityContext).catch((err: unknown) => this.spec.onWarn?.('restoring the tunnel socket label failed', err));
    }
    rmSync(this.socketPath, { force: true });
  }
}
