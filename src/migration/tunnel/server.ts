// The destination's end of the tunnel: one listener per host worker, carrying
// two kinds of connection told apart by their first byte.
// - A TLS handshake (0x16): the control channel. The peer must present a
//   certificate from the cluster CA, then name a job this host is preparing,
//   that job's token and the source host the job expects (by certificate
//   name). It is answered with a one-time ticket, then echoes the source's
//   liveness pings for as long as the job runs.
// - Anything else: a data connection, whose first line must carry a job's
//   ticket, once. It is then handed, as a descriptor, to the incoming QEMU, which
//   runs TLS on it with the source QEMU (each pinning the other's host
//   certificate); the worker copies no byte of the stream. The control channel
//   is told ('R') once QEMU holds it, and only then does the source start.
// - A TLS connection whose greeting names the 'nbd' channel: one NBD connection
//   of a storage copy, authorized like a control channel (the job's token, the
//   source host's certificate) and joined to the unix socket of the incoming
//   QEMU's NBD server (nbd-relay.ts).
// Everything else is refused, logged and closed.
import { randomBytes } from 'node:crypto';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { connectUnix, splice } from './nbd-relay.js';
import { detachForHandoff } from './socket-handoff.js';
import { certHostNames, serverOptions, type TunnelTls } from './tls.js';
import { DATA_READY, parseHello, readLine, sameSecret, writeLine, type TunnelHello } from './wire.js';

/** What the host decided about a control greeting. */
export type ControlGrant = { ok: true } | { ok: false; why: string };
/** What the host decided about a data connection: how to give it to the incoming QEMU. */
export type DataGrant = { ok: true; handoff: (fd: number) => Promise<void> } | { ok: false; why: string };
/** What the host decided about an NBD connection: the unix socket of the incoming QEMU's NBD server. */
export type NbdGrant = { ok: true; socketPath: string } | { ok: false; why: string };

export interface TunnelHost {
  authorizeControl(hello: TunnelHello, peerHosts: string[]): ControlGrant;
  authorizeData(hello: TunnelHello): DataGrant;
  authorizeNbd(hello: TunnelHello, peerHosts: string[]): NbdGrant;
}

const HELLO_TIMEOUT_MS = 5_000;
const TLS_HANDSHAKE = 0x16;

interface JobState {
  control: TLSSocket;
  ticket: string;
  dataClaimed: boolean;
}

/** A socket whose first chunk was already read, as a stream the TLS layer can start from. */
function withPrefix(sock: Socket, first: Buffer): Duplex {
  const d = new Duplex({
    read: () => void sock.resume(),
    write: (chunk: Buffer, _enc, cb) => void sock.write(chunk, cb),
    final: (cb) => {
      sock.end();
      cb();
    },
    destroy: (err, cb) => {
      sock.destroy();
      cb(err);
    },
  });
  d.push(first);
  sock.on('data', (c: Buffer) => {
    if (!d.push(c)) sock.pause();
  });
  sock.once('end', () => d.push(null));
  sock.once('close', () => d.destroy());
  sock.on('error', (err) => d.destroy(err));
  return d;
}

export class TunnelServer {
  private readonly raw: NetServer;
  private readonly tls: Server;
  private readonly jobs = new Map<string, JobState>();
  /** The NBD connections joined for each job (they need no control channel: each is authorized on its own). */
  private readonly nbd = new Map<string, Set<Duplex>>();
  /** Every TCP connection, authenticated or not, so close() is not held up by a peer mid-handshake. */
  private readonly conns = new Set<Socket>();

  constructor(
    tls: TunnelTls,
    private readonly host: TunnelHost,
    private readonly log: Logger,
  ) {
    this.tls = createServer(serverOptions(tls), (sock) => void this.acceptControl(sock));
    // A handshake that fails (no certificate, another CA) never reaches acceptControl().
    this.tls.on('tlsClientError', (err) => this.log.warn({ err: err.message }, 'tunnel connection refused: TLS handshake failed'));
    this.raw = createNetServer((sock) => this.sniff(sock));
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.raw.once('error', reject);
      this.raw.listen({ host, port, exclusive: true }, () => {
        this.raw.off('error', reject);
        const a = this.raw.address();
        resolve(typeof a === 'object' && a ? { host: a.address, port: a.port } : { host, port });
      });
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.raw.close(() => r()));
    for (const job of [...this.jobs.keys()]) this.dropJob(job);
    for (const s of this.conns) s.destroy();
    await closed;
  }

  /** The job is over (finished, cancelled, aborted): its control channel closes. */
  dropJob(jobId: string): void {
    for (const c of this.nbd.get(jobId) ?? []) c.destroy();
    this.nbd.delete(jobId);
    const st = this.jobs.get(jobId);
    if (!st) return;
    this.jobs.delete(jobId);
    st.control.destroy();
  }

  /** NBD connections of a job joined right now. */
  nbdConnections(jobId: string): number {
    return this.nbd.get(jobId)?.size ?? 0;
  }

  private sniff(sock: Socket): void {
    this.conns.add(sock);
    sock.once('close', () => this.conns.delete(sock));
    sock.on('error', () => undefined); // reported where it matters: the refusal or the job's end
    const timer = setTimeout(() => sock.destroy(), HELLO_TIMEOUT_MS);
    sock.once('data', (first: Buffer) => {
      clearTimeout(timer);
      sock.pause();
      if (first[0] === TLS_HANDSHAKE) {
        this.tls.emit('connection', withPrefix(sock, first));
      } else {
        sock.unshift(first);
        void this.acceptData(sock);
      }
    });
  }

  private refuse(sock: Duplex, why: string, fields: Record<string, unknown>): void {
    this.log.warn({ ...fields, why }, 'tunnel connection refused');
    writeLine(sock, { ok: false, error: why });
    sock.end();
    setTimeout(() => sock.destroy(), 1000).unref();
  }

  private async acceptControl(sock: TLSSocket): Promise<void> {
    sock.on('error', () => undefined);
    const peerHosts = certHostNames(sock.getPeerCertificate());
    let hello: TunnelHello;
    try {
      hello = parseHello(await readLine(sock, HELLO_TIMEOUT_MS));
    } catch (err) {
      return this.refuse(sock, `bad greeting: ${(err as Error).message}`, { peerHosts });
    }
    const fields = { job: hello.jobId, domain: hello.name, channel: hello.channel, peerHosts };
    if (hello.channel === 'nbd') return await this.acceptNbd(sock, hello, peerHosts, fields);
    if (hello.channel !== 'control')
      return this.refuse(sock, 'the data stream does not go through TLS to this worker: open a data connection with the ticket', fields);
    const grant = this.host.authorizeControl(hello, peerHosts);
    if (!grant.ok) return this.refuse(sock, grant.why, fields);
    // A source worker that restarted dials again: the newest control channel is the one that counts.
    const prev = this.jobs.get(hello.jobId);
    const ticket = randomBytes(32).toString('base64url');
    if (prev) prev.control.destroy();
    this.jobs.set(hello.jobId, { ...prev, control: sock, ticket, dataClaimed: prev?.dataClaimed ?? false });
    sock.once('close', () => {
      if (this.jobs.get(hello.jobId)?.control === sock) this.log.info(fields, 'tunnel control channel closed');
    });
    sock.setNoDelay(true);
    writeLine(sock, { ok: true, ticket });
    // Liveness: every byte the source sends comes straight back (piped, so a flood cannot buffer up).
    sock.pipe(sock);
    this.log.info(fields, 'tunnel control channel open');
  }

  private async acceptNbd(sock: TLSSocket, hello: TunnelHello, peerHosts: string[], fields: Record<string, unknown>): Promise<void> {
    const grant = this.host.authorizeNbd(hello, peerHosts);
    if (!grant.ok) return this.refuse(sock, grant.why, fields);
    let local: Socket;
    try {
      local = await connectUnix(grant.socketPath, HELLO_TIMEOUT_MS);
    } catch (err) {
      return this.refuse(sock, `the incoming QEMU's NBD server does not answer: ${(err as Error).message}`, fields);
    }
    if (sock.destroyed) return void local.destroy();
    let set = this.nbd.get(hello.jobId);
    if (!set) this.nbd.set(hello.jobId, (set = new Set()));
    const joined = set;
    joined.add(sock);
    sock.once('close', () => {
      joined.delete(sock);
      if (joined.size === 0 && this.nbd.get(hello.jobId) === joined) this.nbd.delete(hello.jobId);
    });
    sock.setNoDelay(true);
    writeLine(sock, { ok: true });
    splice(sock, local);
    this.log.info(fields, "tunnel NBD connection joined to the incoming QEMU's NBD server");
  }

  private async acceptData(sock: Socket): Promise<void> {
    const peer = `${sock.remoteAddress}:${sock.remotePort}`;
    let hello: TunnelHello;
    try {
      const line = readLine(sock, HELLO_TIMEOUT_MS);
      // sniff() paused it; a 'data' listener alone does not undo an explicit pause.
      sock.resume();
      hello = parseHello(await line);
    } catch (err) {
      return this.refuse(sock, `bad greeting: ${(err as Error).message}`, { peer });
    }
    const fields = { job: hello.jobId, domain: hello.name, channel: hello.channel, peer };
    const st = this.jobs.get(hello.jobId);
    if (hello.channel !== 'data') return this.refuse(sock, hello.channel === 'nbd' ? 'an NBD connection needs TLS' : 'a control channel needs TLS', fields);
    if (!st) return this.refuse(sock, `no control channel is open for job ${hello.jobId}`, fields);
    if (!sameSecret(hello.token, st.ticket)) return this.refuse(sock, `wrong ticket for job ${hello.jobId}`, fields);
    if (st.dataClaimed) return this.refuse(sock, `job ${hello.jobId} already had its data connection (the incoming QEMU takes one stream only)`, fields);
    const grant = this.host.authorizeData(hello);
    if (!grant.ok) return this.refuse(sock, grant.why, fields);
    st.dataClaimed = true;
    try {
      await grant.handoff(detachForHandoff(sock));
    } catch (err) {
      return this.refuse(sock, `the incoming QEMU does not take the stream: ${(err as Error).message}`, fields);
    }
    // QEMU holds the connection now; a copy kept here would hide QEMU's close from the source.
    sock.destroy();
    if (this.jobs.get(hello.jobId) !== st) return;
    st.control.write(Buffer.of(DATA_READY));
    this.log.info(fields, 'tunnel data connection handed to the incoming QEMU');
  }
}
