// A storage copy through the tunnel. Unlike the memory stream, an NBD session
// cannot be handed to QEMU as one descriptor on both ends (QEMU's NBD server
// only accepts on a listening socket), so the workers relay it:
// - on the source, the worker listens on a unix socket for the job; every
//   connection the source QEMU's NBD client makes there is carried over a TLS
//   connection of its own to the destination worker's tunnel listener (the
//   job's token, this host's certificate);
// - the destination worker joins that connection to the unix socket the
//   incoming QEMU's NBD server listens on.
// No QEMU listens on the network. The bytes relayed are those of the QEMUs'
// own NBD TLS session: the workers never see disk data in clear.
import { rmSync } from 'node:fs';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { openChannel, type TunnelJob } from './client.js';
import type { TunnelTls } from './tls.js';
import type { TunnelHello } from './wire.js';

/** Joins two streams both ways; either one closing or failing closes the other. */
export function splice(a: Duplex, b: Duplex): void {
  const end = (): void => {
    a.destroy();
    b.destroy();
  };
  for (const s of [a, b]) {
    s.on('error', end);
    s.once('close', end);
  }
  a.pipe(b);
  b.pipe(a);
}

/** Connects to a unix socket, or fails within `timeoutMs`. */
export function connectUnix(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ path });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export interface NbdRelaySpec extends TunnelJob {
  /** Where the source QEMU's NBD client connects (a stale file there is replaced). */
  socketPath: string;
  onWarn: (msg: string, err: unknown) => void;
}

/** The source's end: a unix listener whose every connection becomes a tunnel connection to the destination. */
export class NbdRelay {
  private readonly conns = new Set<Duplex>();
  /** Why the last connection could not be carried (what a failed blockdev-add is explained by). */
  lastError?: Error;
  /** Connections carried so far. */
  carried = 0;

  private constructor(
    private readonly spec: NbdRelaySpec,
    private readonly server: Server,
  ) {}

  static async listen(spec: NbdRelaySpec): Promise<NbdRelay> {
    rmSync(spec.socketPath, { force: true });
    const server = createServer({ pauseOnConnect: true });
    const relay = new NbdRelay(spec, server);
    server.on('connection', (sock) => relay.carry(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: spec.socketPath }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return relay;
  }

  private carry(local: Socket): void {
    this.conns.add(local);
    local.once('close', () => this.conns.delete(local));
    local.on('error', () => undefined);
    const hello: TunnelHello = { v: 1, jobId: this.spec.jobId, name: this.spec.name, token: this.spec.token, channel: 'nbd' };
    openChannel(this.spec.tls, this.spec.endpoint, this.spec.destinationHost, hello).then(
      ({ sock }) => {
        if (local.destroyed) return void sock.destroy();
        this.conns.add(sock);
        sock.once('close', () => this.conns.delete(sock));
        this.carried++;
        splice(local, sock);
      },
      (err: unknown) => {
        this.lastError = err as Error;
        this.spec.onWarn('an NBD connection of the storage copy could not be carried through the tunnel', err);
        local.destroy();
      },
    );
  }

  /** Idempotent: stops listening, closes every carried connection and removes the socket file. */
  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const c of this.conns) c.destroy();
    await closed;
    rmSync(this.spec.socketPath, { force: true });
  }
}
