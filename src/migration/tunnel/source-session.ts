// The source's end of one tunnelled migration. The worker dials the
// destination worker's listener twice: a TLS control channel (certificates,
// the job's token, a one-time ticket back) and a plain TCP data connection that
// presents the ticket. Once the destination has handed its end to the incoming
// QEMU, this end goes to the source QEMU (labelled by the security driver) and
// the two QEMUs run TLS over it with the hosts' certificates: the stream never
// passes through either worker, so neither buffers nor copies it.
// The control channel carries a one-byte ping that the destination echoes:
// silence means the peer or the link is gone, and the session says so at once
// (the `lost` signal) instead of waiting for TCP to give up.
import { connect as netConnect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ErrorType, vmError } from '../../common/errors.js';
import type { SecurityContext, SecurityDriver } from '../../security/index.js';
import { openChannel, type TunnelJob } from './client.js';
import { detachForHandoff } from './socket-handoff.js';
import { parseEndpoint, type TunnelTls } from './tls.js';
import { DATA_READY, parseAnswer, readLine, writeLine } from './wire.js';

export interface SourceTunnelSpec extends TunnelJob {
  security: SecurityDriver;
  securityContext: SecurityContext;
  /** Silence on the control channel for this long means the destination is lost. */
  livenessMs?: number;
  onWarn?: (msg: string, err: unknown) => void;
}

const PING_MS = 250;
// Inside Perform's 10 s heartbeat timeout, so a refusal is reported as such rather than as a lost worker.
const READY_TIMEOUT_MS = 8_000;
/** Long enough for a busy peer's event loop, short enough that a lost link costs seconds, not TCP's minutes. */
export const DEFAULT_LIVENESS_MS = 5_000;

export class SourceTunnel {
  /** Aborted, with the reason as an Error, when the destination or the link is lost mid-stream. */
  readonly lost = new AbortController();
  private data?: Socket;
  private finished = false;
  private readonly timers: NodeJS.Timeout[] = [];

  private constructor(
    private readonly spec: SourceTunnelSpec,
    private readonly control: TLSSocket,
    readonly ticket: string,
  ) {}

  /** The control channel alone: what a retried Perform needs to watch a stream already in QEMU's hands. */
  static async watch(spec: SourceTunnelSpec): Promise<SourceTunnel> {
    const t = await SourceTunnel.dialControl(spec);
    t.startPings();
    return t;
  }

  /**
   * Dials both connections and returns once the destination QEMU holds its
   * end; `handoff` then gives this end to the source QEMU. Refused: a typed
   * error, nothing left open.
   */
  static async open(spec: SourceTunnelSpec): Promise<SourceTunnel> {
    const t = await SourceTunnel.dialControl(spec);
    try {
      await t.dialData();
    } catch (err) {
      t.destroy();
      throw err;
    }
    t.startPings();
    return t;
  }

  private static async dialControl(spec: SourceTunnelSpec): Promise<SourceTunnel> {
    const { sock: control, ticket } = await openChannel(spec.tls, spec.endpoint, spec.destinationHost, {
      v: 1,
      jobId: spec.jobId,
      name: spec.name,
      token: spec.token,
      channel: 'control',
    });
    if (!ticket) {
      control.destroy();
      throw vmError(ErrorType.OperationFailed, `destination host '${spec.destinationHost}' opened the tunnel without a ticket for the data connection`);
    }
    control.setNoDelay(true);
    return new SourceTunnel(spec, control, ticket);
  }

  private refused(why: string): Error {
    return vmError(
      ErrorType.OperationFailed,
      `the tunnel data connection to destination host '${this.spec.destinationHost}' (${this.spec.endpoint}) was refused: ${why}`,
      {
        host: this.spec.destinationHost,
        endpoint: this.spec.endpoint,
      },
    );
  }

  /** Plain TCP with the ticket; ready when the destination says so on the control channel. */
  private async dialData(): Promise<void> {
    const { host, port } = parseEndpoint(this.spec.endpoint);
    const data = netConnect({ host, port });
    this.data = data;
    data.on('error', () => undefined);
    let timer: NodeJS.Timeout | undefined;
    const listeners: Array<() => void> = [];
    try {
      // The control channel just reached the same listener; a connect that hangs means the link went, not a slow peer.
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no TCP connection within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
        data.once('connect', () => resolve());
        data.once('error', reject);
      });
      clearTimeout(timer);
      data.setNoDelay(true);
      writeLine(data, { v: 1, jobId: this.spec.jobId, name: this.spec.name, token: this.ticket, channel: 'data' });
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`the destination did not take the stream within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
        const onControl = (chunk: Buffer): void => {
          if (chunk.includes(DATA_READY)) resolve();
        };
        this.control.on('data', onControl);
        listeners.push(() => this.control.off('data', onControl));
        // The greeting left it paused; a 'data' listener does not undo an explicit pause.
        this.control.resume();
        // Nothing but a refusal ever comes back on the data connection before QEMU speaks.
        readLine(data, READY_TIMEOUT_MS).then(
          (line) => reject(new Error(parseAnswer(line).error ?? 'no reason given')),
          () => undefined,
        );
        const onClose = (): void => reject(new Error('the tunnel control channel closed'));
        this.control.once('close', onClose);
        listeners.push(() => this.control.off('close', onClose));
      });
    } catch (err) {
      throw this.refused((err as Error).message);
    } finally {
      clearTimeout(timer);
      for (const off of listeners) off();
    }
  }

  /**
   * Gives the data connection to the source QEMU: labelled for the domain,
   * then passed by `give` (`getfd`). The worker then drops its own copy:
   * QEMU's close must reach the destination.
   */
  async handoff(give: (fd: number) => Promise<void>): Promise<void> {
    const data = this.data;
    if (!data) throw vmError(ErrorType.OperationInvalid, 'this tunnel session has no data connection');
    try {
      const fd = detachForHandoff(data);
      await this.spec.security.labelHandedFd(fd, this.spec.securityContext);
      await give(fd);
    } finally {
      data.destroy();
    }
  }

  private startPings(): void {
    this.control.once('close', () =>
      this.markLost(`the tunnel control connection to destination host '${this.spec.destinationHost}' closed during the migration`),
    );
    let heardAt = Date.now();
    this.control.on('data', () => (heardAt = Date.now()));
    // The greeting left it paused; a 'data' listener does not undo an explicit pause.
    this.control.resume();
    const liveness = this.spec.livenessMs ?? DEFAULT_LIVENESS_MS;
    this.timers.push(
      setInterval(() => {
        this.control.write(Buffer.of(0x50));
        const silent = Date.now() - heardAt;
        if (silent > liveness)
          this.markLost(`destination host '${this.spec.destinationHost}' stopped answering on the tunnel for ${silent} ms (the link or its worker is gone)`);
      }, PING_MS),
    );
  }

  /** The stream is complete: from now on a closing channel is the normal end, not a loss. */
  finish(): void {
    this.finished = true;
  }

  private markLost(why: string): void {
    if (this.finished || this.lost.signal.aborted) return;
    this.lost.abort(vmError(ErrorType.OperationFailed, why, { host: this.spec.destinationHost }));
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.control.destroy();
  }

  /** Idempotent: closes the control channel, and the data connection if QEMU never got it. */
  destroy(): void {
    this.finished = true;
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.control.destroy();
    this.data?.destroy();
  }
}
