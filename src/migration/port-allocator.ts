// The host's port range for incoming migrations (libvirt's migration_port_min /
// migration_port_max, 49152-49215 by default). A port is handed out when it is
// neither held by us nor bindable by someone else right now: each candidate is
// test-bound on the bind host and closed again, the way libvirt probes its
// ranges. One owner (a job) holds at most one port, and asking again returns the
// same port, so a retried activity does not leak a second reservation.
import { createServer } from 'node:net';
import { ErrorType, vmError } from '../common/errors.js';

export const DEFAULT_MIGRATION_PORT_MIN = 49152;
export const DEFAULT_MIGRATION_PORT_MAX = 49215;

export interface PortAllocatorOptions {
  /** Address the test bind uses; default: both wildcards, 0.0.0.0 and :: (when the host has IPv6). */
  bindHost?: string;
  /** Replaces the test bind (tests, or a caller that knows better). */
  isFree?: (port: number) => Promise<boolean>;
}

/** Errors that mean "someone holds this port" rather than "the probe itself is broken". */
const IN_USE = new Set(['EADDRINUSE', 'EACCES']);
/** On the IPv6 wildcard: the host has no IPv6, which says nothing about the port. */
const NO_FAMILY = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EPROTONOSUPPORT']);

function tryBind(host: string, port: number): Promise<'free' | 'busy' | { error: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => {
      server.close();
      resolve(IN_USE.has(err.code ?? '') ? 'busy' : { error: err });
    });
    server.listen({ host, port, exclusive: true }, () => {
      server.close(() => resolve('free'));
    });
  });
}

/** True when `port` can be bound on `host` right now (or, without a host, on both wildcards). */
export async function canBind(port: number, host?: string): Promise<boolean> {
  const targets = host === undefined ? ['0.0.0.0', '::'] : [host];
  for (const target of targets) {
    const res = await tryBind(target, port);
    if (res === 'busy') return false;
    if (res === 'free') continue;
    if (host === undefined && target === '::' && NO_FAMILY.has(res.error.code ?? '')) continue;
    throw vmError(ErrorType.OperationFailed, `cannot probe port ${port} on ${target}: ${res.error.message}`, {
      port,
      host: target,
      code: res.error.code,
    });
  }
  return true;
}

export class PortAllocator {
  private readonly held = new Map<number, string>();
  /** Ports being probed for an owner: not handed to anyone else meanwhile. */
  private readonly probing = new Set<number>();
  /** An owner's acquire in flight, so a concurrent retry joins it instead of taking a second port. */
  private readonly pending = new Map<string, Promise<number>>();
  private readonly isFree: (port: number) => Promise<boolean>;
  private readonly bindHost: string | undefined;

  constructor(
    readonly min: number = DEFAULT_MIGRATION_PORT_MIN,
    readonly max: number = DEFAULT_MIGRATION_PORT_MAX,
    opts: PortAllocatorOptions = {},
  ) {
    const ok = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535;
    if (!ok(min) || !ok(max) || min > max) {
      throw vmError(ErrorType.OperationInvalid, `invalid migration port range ${String(min)}-${String(max)}: need integers 1 <= min <= max <= 65535`, {
        min,
        max,
      });
    }
    this.bindHost = opts.bindHost;
    this.isFree = opts.isFree ?? ((port) => canBind(port, this.bindHost));
  }

  /** The lowest free port of the range for `owner`; the same port again if `owner` already holds one. */
  acquire(owner: string): Promise<number> {
    if (typeof owner !== 'string' || owner === '') {
      return Promise.reject(vmError(ErrorType.InternalError, 'port owner must be a non-empty string'));
    }
    for (const [port, who] of this.held) if (who === owner) return Promise.resolve(port);
    const inFlight = this.pending.get(owner);
    if (inFlight) return inFlight;
    const p = this.search(owner).finally(() => this.pending.delete(owner));
    this.pending.set(owner, p);
    return p;
  }

  private async search(owner: string): Promise<number> {
    let busy = 0;
    for (let port = this.min; port <= this.max; port++) {
      if (this.held.has(port) || this.probing.has(port)) continue;
      this.probing.add(port);
      let free: boolean;
      try {
        free = await this.isFree(port);
      } finally {
        this.probing.delete(port);
      }
      if (free && !this.held.has(port)) {
        this.held.set(port, owner);
        return port;
      }
      busy++;
    }
    throw vmError(
      ErrorType.OperationFailed,
      `no free migration port in ${this.min}-${this.max} for ${owner}: ${this.held.size} held by jobs here, ${busy} in use by other programs`,
      {
        min: this.min,
        max: this.max,
        owner,
        heldByUs: this.held.size,
        busyElsewhere: busy,
        bindHost: this.bindHost ?? null,
      },
    );
  }

  /** Gives `port` back; releasing a port that is not held does nothing (compensation may run twice). */
  release(port: number): void {
    this.held.delete(port);
  }

  /** Gives back whatever `owner` holds; returns the port, if any. */
  releaseOwner(owner: string): number | undefined {
    for (const [port, who] of this.held) {
      if (who === owner) {
        this.held.delete(port);
        return port;
      }
    }
    return undefined;
  }

  /** A copy of port -> owner for the ports held now. */
  owned(): Map<number, string> {
    return new Map(this.held);
  }
}
