// The destination's part of post-copy after Finish: it runs the guest while pages
// still arrive. When the link breaks it is paused (migrate-pause, for a link that
// went silent), listens for the source's resumed stream (migrate-recover), and,
// when post-copy fails for good, keeps the guest paused here: this QEMU holds the
// newest state, so it is never killed for a failure after the switch.
import { hostname as osHostname } from 'node:os';
import { ErrorType, isVmError, vmError } from '../../common/errors.js';
import type { MigrateFlag } from '../../common/migration-types.js';
import type { PostcopyRecoverListen } from '../../common/postcopy.js';
import { formatMigrationUri, parseMigrationUri } from '../../migration/uri.js';
import { listenForRecovery, pausePostcopy, queryMigration } from '../../qemu/migration-engine.js';
import type { RunningDomain } from '../running-domain.js';
import type { DestinationDeps } from './destination-side.js';
import { disableMigrationTls } from './qemu-tls.js';
import { clearPostcopyCapabilities } from '../../qemu/migration-params.js';

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]']);
/** A recovery under way: QEMU 9.1 and later pass through postcopy-recover-setup while the resumed channels connect. */
const RECOVERING = new Set(['postcopy-recover-setup', 'postcopy-recover']);

function recoverOwner(jobId: string): string {
  return `${jobId}/postcopy-recover`;
}

function incomingDomain(d: DestinationDeps, name: string): RunningDomain {
  const dom = d.rt.getRunning(name);
  if (!dom || dom.qmp.isClosed) {
    throw vmError(ErrorType.OperationFailed, `the destination QEMU of '${name}' on ${d.rt.config.name} is gone during post-copy: the guest is lost`, {
      domain: name,
    });
  }
  return dom;
}

async function statusOf(dom: RunningDomain): Promise<string> {
  return (await queryMigration(dom.qmp)).status ?? 'none';
}

/** Both sides must be in postcopy-paused before a recovery: a silent link leaves this side active until told. */
export async function pauseIncoming(d: DestinationDeps, name: string): Promise<{ status: string }> {
  const dom = incomingDomain(d, name);
  let status = await statusOf(dom);
  if (status === 'postcopy-active') {
    await pausePostcopy(dom.qmp);
    const deadline = Date.now() + 5_000;
    while (status === 'postcopy-active' && Date.now() < deadline) {
      await dom.qmp.waitForEvent('MIGRATION', { timeoutMs: 250 }).catch(() => undefined);
      status = await statusOf(dom);
    }
    d.rt.log.info({ domain: name, status }, 'incoming post-copy stream paused');
  }
  return { status };
}

/**
 * migrate-recover on `uri` (or the host's migration address and a port from its range):
 * where the source's resumed stream is to connect. Issued anew for every attempt (QEMU
 * 7.2 takes a second migrate-recover while paused), since a failed attempt may have
 * used up the last listener; a port someone holds (an earlier listener) is skipped.
 */
export async function listenRecovery(d: DestinationDeps, name: string, jobId: string, uri?: string): Promise<PostcopyRecoverListen> {
  const dom = incomingDomain(d, name);
  const status = await statusOf(dom);
  // Recovered meanwhile (or done): there is nothing to listen for, and the source's resume will see it too.
  if (status === 'completed' || status === 'postcopy-active' || RECOVERING.has(status)) return { uri: '' };
  if (status !== 'postcopy-paused') throw vmError(ErrorType.OperationFailed, `the incoming post-copy stream of '${name}' is ${status}, not paused`);
  const asked = uri === undefined ? undefined : parseMigrationUri(uri);
  if (asked && asked.transport !== 'tcp') throw vmError(ErrorType.ConfigUnsupported, `post-copy recovery listens on tcp: only, got ${asked.transport}:`);
  const host = asked?.transport === 'tcp' ? asked.host : d.rt.config.migration.address;
  const owner = recoverOwner(jobId);
  for (let attempt = 1; ; attempt++) {
    if (!asked) d.ports.releaseOwner(owner);
    const port = asked?.transport === 'tcp' ? asked.port : await d.ports.acquire(owner);
    try {
      await listenForRecovery(dom.qmp, formatMigrationUri({ transport: 'tcp', host, port }));
    } catch (err) {
      if (asked || !(isVmError(err) && /in use/i.test(err.message)) || attempt >= 5) throw err;
      continue;
    }
    const dial = formatMigrationUri({ transport: 'tcp', host: WILDCARDS.has(host) ? osHostname() : host, port });
    d.rt.log.info({ domain: name, job: jobId, uri: dial }, 'listening for the resumed post-copy stream');
    return { uri: dial };
  }
}

/**
 * Post-copy failed after the switch: the guest stays here, paused (libvirt's
 * postcopy-failed), never killed, since no other copy is newer. Idempotent; a QEMU
 * already gone is reported by the caller's first error.
 */
export async function keepPausedAfterPostcopy(d: DestinationDeps, name: string, jobId: string): Promise<{ kept: boolean }> {
  const dom = d.rt.getRunning(name);
  d.ports.releaseOwner(recoverOwner(jobId));
  if (!dom || dom.qmp.isClosed) return { kept: false };
  if (dom.state === 'running') await dom.qmp.execute('stop');
  dom.setState('paused', 'postcopy-failed');
  d.rt.log.warn({ domain: name, job: jobId }, 'post-copy failed: the guest stays paused on this host (it holds the newest state)');
  return { kept: true };
}

/** The stream completed: the recovery port goes back, and TLS settings kept for a recovery are reset as Finish does for pre-copy. */
export async function postcopyEnded(d: DestinationDeps, name: string, jobId: string, flags: MigrateFlag[]): Promise<void> {
  d.ports.releaseOwner(recoverOwner(jobId));
  const dom = d.rt.getRunning(name);
  if (dom) await clearPostcopyCapabilities(dom.qmp).catch((err: unknown) => d.rt.log.warn({ domain: name, err }, 'could not clear the post-copy capabilities'));
  if (dom && (flags.includes('tunnelled') || flags.includes('tls'))) {
    await disableMigrationTls(dom.qmp).catch((err: unknown) => d.rt.log.warn({ domain: name, err }, 'could not reset migration TLS after post-copy'));
  }
}
