// The host's part of a storage copy through the tunnel (nbd-relay.ts): a
// private directory per job under the run directory, labelled for the domain's
// QEMU, holding the unix socket of the NBD session's local end: on the
// destination the incoming QEMU's NBD server listens there, on the source the
// worker's relay does and the source QEMU connects. The directory's name comes
// from the job id alone, so a restarted worker finds it (to authorize, to
// remove) from the job record; every end of the job removes it.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorType, vmError } from '../../common/errors.js';
import type { SecurityContext } from '../../security/index.js';
import { NbdRelay } from '../../migration/tunnel/nbd-relay.js';
import type { TunnelJob } from '../../migration/tunnel/client.js';
import type { HostRuntime } from '../host-runtime.js';
import type { MigrateOutRecord } from '../jobs/records.js';

export type NbdSide = 'in' | 'out';

const SOCKET = 'nbd.sock';
// sun_path holds 108 bytes with the NUL.
const MAX_UNIX_PATH = 107;

/** The job's directory (tun- prefixed, like every tunnel leftover a test looks for). */
export function tunnelNbdDir(rt: HostRuntime, jobId: string, side: NbdSide): string {
  const id = createHash('sha256').update(jobId).digest('hex').slice(0, 16);
  return join(rt.config.runDir, `tun-nbd-${side}-${id}`);
}

export function tunnelNbdSocket(rt: HostRuntime, jobId: string, side: NbdSide): string {
  return join(tunnelNbdDir(rt, jobId, side), SOCKET);
}

/** Made afresh (an earlier attempt's is removed first) and labelled so the domain's QEMU may use a socket in it. */
async function makeDir(rt: HostRuntime, jobId: string, side: NbdSide, sctx: SecurityContext): Promise<string> {
  const socket = tunnelNbdSocket(rt, jobId, side);
  if (Buffer.byteLength(socket) > MAX_UNIX_PATH) {
    throw vmError(ErrorType.ConfigUnsupported, `the tunnel NBD socket path ${socket} is longer than ${MAX_UNIX_PATH} bytes; use a shorter run directory`);
  }
  await removeTunnelNbdDir(rt, jobId, side, sctx);
  const dir = tunnelNbdDir(rt, jobId, side);
  mkdirSync(dir, { mode: 0o700 });
  await rt.security.labelPath(dir, sctx);
  return join(dir, SOCKET);
}

/** Destination, Prepare: where the incoming QEMU's NBD server is to listen. */
export async function makeIncomingNbdDir(rt: HostRuntime, jobId: string, sctx: SecurityContext): Promise<string> {
  return await makeDir(rt, jobId, 'in', sctx);
}

/** Idempotent: labels put back (what the security driver remembers), then the directory and its socket removed. */
export async function removeTunnelNbdDir(rt: HostRuntime, jobId: string, side: NbdSide, sctx: SecurityContext): Promise<void> {
  const dir = tunnelNbdDir(rt, jobId, side);
  if (!existsSync(dir)) return;
  for (const p of [join(dir, SOCKET), dir]) {
    if (!existsSync(p)) continue;
    await rt.security
      .restorePath(p, sctx)
      .catch((err: unknown) => rt.log.warn({ path: p, err: String(err) }, 'restoring the label of a tunnel NBD path failed'));
  }
  rmSync(dir, { recursive: true, force: true });
}

const relays = new WeakMap<HostRuntime, Map<string, NbdRelay>>();

function relaysOf(rt: HostRuntime): Map<string, NbdRelay> {
  let m = relays.get(rt);
  if (!m) relays.set(rt, (m = new Map()));
  return m;
}

/** The job's way to its destination, from Prepare's tunnel endpoint and token. */
export type SourceRelayArgs = TunnelJob;

/** Source, Perform: the job's relay (one per job; a retried Perform reuses it, a restarted worker makes it again); its socket path. */
export async function openSourceRelay(rt: HostRuntime, a: SourceRelayArgs, sctx: SecurityContext): Promise<{ socketPath: string; relay: NbdRelay }> {
  const socketPath = tunnelNbdSocket(rt, a.jobId, 'out');
  const known = relaysOf(rt).get(a.jobId);
  if (known) return { socketPath, relay: known };
  await makeDir(rt, a.jobId, 'out', sctx);
  const relay = await NbdRelay.listen({
    ...a,
    socketPath,
    onWarn: (msg, err) => rt.log.warn({ domain: sctx.domain, job: a.jobId, err: String(err) }, msg),
  });
  relaysOf(rt).set(a.jobId, relay);
  try {
    await rt.security.labelPath(socketPath, sctx);
  } catch (err) {
    await closeSourceRelay(rt, a.jobId, sctx);
    throw err;
  }
  rt.log.info({ domain: sctx.domain, job: a.jobId, socket: socketPath, endpoint: a.endpoint }, 'tunnel NBD relay listening');
  return { socketPath, relay };
}

/** Every end of the job on the source (mirrors completed or stopped): the relay closes, its connections with it, and its directory goes. */
export async function closeSourceRelay(rt: HostRuntime, jobId: string, sctx: SecurityContext): Promise<void> {
  const relay = relaysOf(rt).get(jobId);
  relaysOf(rt).delete(jobId);
  // The socket's label first, while its file is there to put it back on.
  await removeTunnelNbdDir(rt, jobId, 'out', sctx);
  if (relay) {
    await relay.close();
    rt.log.info({ domain: sctx.domain, job: jobId, carried: relay.carried }, 'tunnel NBD relay closed');
  }
}

/** At the end of a job on the source, whatever state it ended in: a tunnelled copy's relay and directory (gone already after a normal switchover). */
export async function closeTunnelRelay(rt: HostRuntime, rec: MigrateOutRecord): Promise<void> {
  if (!rec.storage || !rec.flags.includes('tunnelled')) return;
  await closeSourceRelay(rt, rec.jobId, { domain: rec.name, uuid: rec.uuid }).catch((err: unknown) =>
    rt.log.warn({ domain: rec.name, job: rec.jobId, err: String(err) }, 'closing the tunnel NBD relay failed'),
  );
}
