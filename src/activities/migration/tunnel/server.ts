// The destination's end of the tunnel: one TLS listener per host worker. A
// connection must present a certificate from the cluster CA, then name a job
// this host is preparing and that job's one-time token, from the source host
// the job expects (by certificate name). Only then is it joined to the incoming
// QEMU's unix socket; everything else is refused, logged and closed.
import { connect as netConnect, type NetConnectOpts, type Socket } from 'node:net';
import { pipeline } from 'node:stream';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { certHostNames, serverOptions, TUNNEL_HIGH_WATER_MARK, type TunnelTls } from './tls.js';
import { parseHello, readLine, writeLine, type TunnelHello } from './wire.js';

/** What the host decided about a greeting: the incoming QEMU's socket for data, nothing for control. */
export type Grant = { ok: true; socketPath?: string } | { ok: false; why: string };
export type Authorize = (hello: TunnelHello, peerHosts: string[]) => Grant;

const HELLO_TIMEOUT_MS = 5_000;

export class TunnelServer {
  private readonly server: Server;
  /** Live connections per job, so aborting a job tears its tunnel down at once. */
  private readonly byJob = new Map<string, Set<Socket>>();
  private readonly dataClaimed = new Set<string>();
  /** Every TCP connection, authenticated or not, so close() is not held up by a peer mid-handshake. */
  private readonly raw = new Set<Socket>();

  constructor(
    tls: TunnelTls,
    private readonly authorize: Authorize,
    private readonly log: Logger,
  ) {
    this.server = createServer(serverOptions(tls), (sock) => void this.accept(sock));
    this.server.on('connection', (sock: Socket) => {
      this.raw.add(sock);
      sock.once('close', () => this.raw.delete(sock));
    });
    // A handshake that fails (no certificate, another CA) never reaches accept().
    this.server.on('tlsClientError', (err, sock) => {
      this.log.warn({ peer: `${sock.remoteAddress}:${sock.remotePort}`, err: err.message }, 'tunnel connection refused: TLS handshake failed');
    });
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, exclusive: true }, () => {
        this.server.off('error', reject);
        const a = this.server.address();
        resolve(typeof a === 'object' && a ? { host: a.address, port: a.port } : { host, port });
      });
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const job of [...this.byJob.keys()]) this.dropJob(job);
    for (const s of this.raw) s.destroy();
    await closed;
  }

  /** Destroys every tunnel connection of a job (cancel, abort, auto-destroy): a stalled peer holds nothing. */
  dropJob(jobId: string): void {
    for (const s of this.byJob.get(jobId) ?? []) s.destroy();
    this.byJob.delete(jobId);
    this.dataClaimed.delete(jobId);
  }

  private track(jobId: string, ...socks: Socket[]): void {
    let set = this.byJob.get(jobId);
    if (!set) this.byJob.set(jobId, (set = new Set()));
    for (const s of socks) {
      set.add(s);
      s.once('close', () => {
        set.delete(s);
        if (set.size === 0 && this.byJob.get(jobId) === set) this.byJob.delete(jobId);
      });
    }
  }

  private refuse(sock: TLSSocket, why: string, fields: Record<string, unknown>): void {
    this.log.warn({ ...fields, peer: `${sock.remoteAddress}:${sock.remotePort}`, why }, 'tunnel connection refused');
    writeLine(sock, { ok: false, error: why });
    sock.end();
    setTimeout(() => sock.destroy(), 1000).unref();
  }

  private async accept(sock: TLSSocket): Promise<void> {
    sock.on('error', () => undefined); // reported where it matters: by the pipeline or the refusal
    const peerHosts = certHostNames(sock.getPeerCertificate());
    let hello: TunnelHello;
    try {
      hello = parseHello(await readLine(sock, HELLO_TIMEOUT_MS));
    } catch (err) {
      return this.refuse(sock, `bad greeting: ${(err as Error).message}`, { peerHosts });
    }
    const fields = { job: hello.jobId, domain: hello.name, channel: hello.channel, peerHosts };
    const grant = this.authorize(hello, peerHosts);
    if (!grant.ok) return this.refuse(sock, grant.why, fields);
    if (hello.channel === 'control') {
      this.track(hello.jobId, sock);
      sock.setNoDelay(true);
      writeLine(sock, { ok: true });
      // Liveness: every byte the source sends comes straight back (piped, so a flood cannot buffer up).
      sock.pipe(sock);
      return;
    }
    if (this.dataClaimed.has(hello.jobId)) return this.refuse(sock, `job ${hello.jobId} already had its data connection (the incoming QEMU takes one stream only)`, fields);
    this.dataClaimed.add(hello.jobId);
    // highWaterMark reaches the socket's stream (net passes its options on) though @types/node omits it.
    const qemu = netConnect({ path: grant.socketPath!, allowHalfOpen: true, highWaterMark: TUNNEL_HIGH_WATER_MARK } as NetConnectOpts);
    qemu.on('error', () => undefined);
    try {
      await new Promise<void>((resolve, reject) => {
        qemu.once('connect', resolve);
        qemu.once('error', reject);
      });
    } catch (err) {
      this.dataClaimed.delete(hello.jobId);
      return this.refuse(sock, `the incoming QEMU does not accept the stream: ${(err as Error).message}`, fields);
    }
    this.track(hello.jobId, sock, qemu);
    // TLS records are smaller than a loopback segment: Nagle would hold each one back for an ACK.
    sock.setNoDelay(true);
    writeLine(sock, { ok: true });
    this.log.info(fields, 'tunnel connected to the incoming QEMU');
    const broke = (err: Error | null | undefined): void => {
      if (!err) return;
      this.log.warn({ ...fields, err: err.message }, 'tunnel stream broken');
      sock.destroy();
      qemu.destroy();
    };
    // Both ways (QEMU's return path flows back); pipe() pauses a side whose peer is not keeping up.
    pipeline(sock, qemu, broke);
    pipeline(qemu, sock, broke);
  }
}
