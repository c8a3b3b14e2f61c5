// Each host worker's tunnel: its certificates (loaded once) and, when
// configured, the listener peers dial. Which connection may join which
// incoming QEMU is decided from the destination's job record, so a restarted
// worker answers for the migrations it was preparing before. The same
// certificates serve QEMU's own TLS (the tunnel's data and --tls).
import { hostname } from 'node:os';
import { ErrorType, vmError } from '../../common/errors.js';
import type { TunnelSupport } from '../../common/migration-types.js';
import type { HostRuntime } from '../host-runtime.js';
import { tlsIdentity } from './qemu-tls.js';
import { TunnelServer, type ControlGrant, type DataGrant, type NbdGrant } from '../../migration/tunnel/server.js';
import { formatEndpoint, loadTunnelTls, parseEndpoint, type TunnelTls } from '../../migration/tunnel/tls.js';
import { sameSecret, type TunnelHello } from '../../migration/tunnel/wire.js';
import { startIncomingMigration } from '../../qemu/migration-engine.js';

export interface HostTunnel {
  tls: TunnelTls;
  /** What peers dial (the listen address; a wildcard is replaced by this machine's name). */
  endpoint: string;
  server?: TunnelServer;
}

const tunnels = new WeakMap<HostRuntime, HostTunnel>();
const WILDCARDS = new Set(['0.0.0.0', '::']);

/** The host's tunnel, or undefined when no certificates are configured (tunnelled migration is then refused). */
export function hostTunnel(rt: HostRuntime): HostTunnel | undefined {
  const cfg = rt.config.tunnel;
  if (!cfg) return undefined;
  let t = tunnels.get(rt);
  if (!t) {
    const { host, port } = parseEndpoint(cfg.listen);
    t = { tls: loadTunnelTls(cfg), endpoint: formatEndpoint(WILDCARDS.has(host) ? hostname() : host, port) };
    tunnels.set(rt, t);
  }
  return t;
}

export function requireTunnel(rt: HostRuntime, what: 'tunnelled' | 'TLS' = 'tunnelled'): HostTunnel {
  const t = hostTunnel(rt);
  if (!t) {
    throw vmError(
      ErrorType.ConfigUnsupported,
      `${what} migration needs tunnel certificates on host '${rt.config.name}', and it has none configured (VMFERRY_HOST_TUNNEL_LISTEN, _CA, _CERT, _KEY or "tunnel" in its config file); the stream is never sent in clear`,
      { host: rt.config.name },
    );
  }
  return t;
}

/** Whether a control channel may open for a job: a tunnelled job being prepared here, its token, its source host's certificate. */
export function authorizeControl(rt: HostRuntime, hello: TunnelHello, peerHosts: string[]): ControlGrant {
  const rec = rt.jobs.find(hello.name, hello.jobId, 'migrate-in');
  const t = rec?.tunnel;
  if (!rec || !t) return { ok: false, why: `no tunnelled migration of '${hello.name}' for job ${hello.jobId} is being prepared on ${rt.config.name}` };
  if (!sameSecret(hello.token, t.token)) return { ok: false, why: `wrong token for job ${hello.jobId}` };
  if (!peerHosts.includes(t.sourceHost)) {
    return { ok: false, why: `the certificate is for ${peerHosts.join(', ') || 'no host name'}, but job ${hello.jobId} migrates from '${t.sourceHost}'` };
  }
  return { ok: true };
}

/**
 * Whether an NBD connection of a storage copy may join the incoming QEMU's NBD server: authorized
 * as a control channel is (from the job record, so a restarted worker answers the same), for a job
 * whose NBD server listens on its unix socket.
 */
export function authorizeNbd(rt: HostRuntime, hello: TunnelHello, peerHosts: string[]): NbdGrant {
  const grant = authorizeControl(rt, hello, peerHosts);
  if (!grant.ok) return grant;
  const rec = rt.jobs.find(hello.name, hello.jobId, 'migrate-in');
  const dom = rt.getRunning(hello.name);
  if (!rec?.nbdSocket) return { ok: false, why: `job ${hello.jobId} copies no storage through the tunnel` };
  if (!dom || dom.pid !== rec.pid) return { ok: false, why: `the incoming QEMU for '${hello.name}' is gone` };
  return { ok: true, socketPath: rec.nbdSocket };
}

const FD_NAME = 'vmf-tunnel-in';

/** The data connection goes to the incoming QEMU of the job, labelled for it, as `migrate-incoming fd:`. */
export function authorizeData(rt: HostRuntime, hello: TunnelHello): DataGrant {
  const rec = rt.jobs.find(hello.name, hello.jobId, 'migrate-in');
  const dom = rt.getRunning(hello.name);
  if (!rec?.tunnel || !dom || dom.pid !== rec.pid) return { ok: false, why: `the incoming QEMU for '${hello.name}' is gone` };
  const sctx = { domain: dom.name, uuid: rec.uuid };
  return {
    ok: true,
    handoff: async (fd) => {
      await rt.security.labelHandedFd(fd, sctx);
      await dom.qmp.execute('getfd', { fdname: FD_NAME }, { fds: [fd] });
      await startIncomingMigration(dom.qmp, `fd:${FD_NAME}`);
    },
  };
}

/** Host worker start: listens when certificates are configured; a bad listen address or unreadable file stops the worker. */
export async function startTunnelServer(rt: HostRuntime): Promise<{ close(): Promise<void> } | undefined> {
  const t = hostTunnel(rt);
  if (!t) return undefined;
  const { host, port } = parseEndpoint(rt.config.tunnel!.listen);
  const server = new TunnelServer(
    t.tls,
    {
      authorizeControl: (hello, peers) => authorizeControl(rt, hello, peers),
      authorizeData: (hello) => authorizeData(rt, hello),
      authorizeNbd: (hello, peers) => authorizeNbd(rt, hello, peers),
    },
    rt.log.child({ part: 'tunnel' }),
  );
  const bound = await server.listen(host, port);
  t.server = server;
  rt.log.info({ listen: formatEndpoint(bound.host, bound.port), endpoint: t.endpoint }, 'tunnel listener ready');
  return { close: () => server.close() };
}

/** Whether this host can carry a tunnelled or TLS migration, where peers dial it, and its TLS identity. */
export function tunnelSupport(rt: HostRuntime): TunnelSupport {
  const t = hostTunnel(rt);
  return { host: rt.config.name, configured: t !== undefined, ...(t ? { endpoint: t.endpoint, identity: tlsIdentity(t.tls.cert) } : {}) };
}
