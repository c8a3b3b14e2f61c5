// Perform's storage steps on the source: mirror every copied disk into the
// destination's NBD export and wait until all are ready (a cancel or failure
// here stops the mirrors at once; the guest never stopped running), and the
// switchover hook the monitor calls at QEMU's pre-switchover pause: complete
// the mirrors, then let the device state go. Tunnelled, the mirrors connect to
// the worker's relay (tunnel-nbd.ts), never to a port of the destination.
import type { Context } from '@temporalio/activity';
import { ErrorType, vmError } from '../../common/errors.js';
import { faultPoint } from '../../support/fault-points.js';
import type { PerformArgs } from '../../common/migration-types.js';
import type { MigrationCookie } from '../../migration/cookie.js';
import { parseMigrationUri } from '../../migration/uri.js';
import type { NbdRelay } from '../../migration/tunnel/nbd-relay.js';
import { continueAfterPreSwitchover, type NbdAddress } from '../../qemu/migration-engine-storage.js';
import { readLimits } from '../../qemu/migration-params.js';
import type { HostJob } from '../domain-lock.js';
import type { HostRuntime } from '../host-runtime.js';
import type { MigrateOutRecord } from '../jobs/records.js';
import type { RunningDomain } from '../running-domain.js';
import { requireTunnel } from './host-tunnel.js';
import { CREDS_ID } from './qemu-tls.js';
import { closeSourceRelay, openSourceRelay } from './tunnel-nbd.js';
import type { MonitorOptions } from './monitor.js';
import { abortMirrors, checkMirrors, completeMirrors, startMirrors, waitMirrorsReady } from './storage-source.js';

export async function copyStorage(
  rt: HostRuntime,
  dom: RunningDomain,
  a: PerformArgs,
  job: HostJob,
  storage: NonNullable<MigrateOutRecord['storage']>,
  destCookie: MigrationCookie | undefined,
  tls: boolean,
  tunnelled: boolean,
  ctx: Context | undefined,
): Promise<void> {
  if (destCookie?.nbd === undefined)
    throw vmError(ErrorType.OperationFailed, `the destination '${a.destinationHost}' announced no NBD server for the storage copy`);
  const sctx = { domain: dom.name, uuid: a.uuid };
  let relay: NbdRelay | undefined;
  let address: NbdAddress;
  if (tunnelled) {
    if (!a.tunnel) throw vmError(ErrorType.OperationInvalid, 'a tunnelled Perform needs the tunnel endpoint and token from Prepare');
    const { tls: hostTls } = requireTunnel(rt);
    const opened = await openSourceRelay(
      rt,
      { tls: hostTls, endpoint: a.tunnel.endpoint, destinationHost: a.destinationHost, jobId: a.jobId, name: a.tunnel.name, token: a.tunnel.token },
      sctx,
    );
    relay = opened.relay;
    address = { unixPath: opened.socketPath };
  } else {
    const port = destCookie.nbd.port;
    if (port === undefined) throw vmError(ErrorType.OperationFailed, `the destination '${a.destinationHost}' sent no NBD port for the storage copy`);
    const uri = parseMigrationUri(a.uri);
    if (uri.transport !== 'tcp') throw vmError(ErrorType.ConfigUnsupported, `a storage copy needs a tcp: migration URI, got ${uri.transport}:`);
    address = { host: uri.host, port };
  }
  rt.jobs.patch(dom.name, a.jobId, 'migrate-out', { mirrorsStarted: true });
  try {
    // The job's speed limit as it stands (a setSpeed may have come since Begin) applies to the disks as well.
    const limits = await readLimits(dom.qmp);
    const resumed = await startMirrors(dom.qmp, {
      disks: storage.disks,
      sync: storage.sync,
      address,
      bandwidthMiBps: limits.speedLimitMiBps,
      ...(tls ? { tls: { creds: CREDS_ID, hostname: a.destinationHost } } : {}),
    }).catch((err: unknown) => {
      // QEMU only says the NBD handshake failed; the relay knows why (the destination's refusal).
      const why = relay?.lastError;
      throw why ? vmError(ErrorType.OperationFailed, `${(err as Error).message}: ${why.message}`) : err;
    });
    const nbd = 'unixPath' in address ? `tunnel:${a.tunnel!.endpoint}` : `${address.host}:${address.port}`;
    rt.log.info(
      {
        domain: dom.name,
        job: a.jobId,
        disks: storage.disks,
        sync: storage.sync,
        nbd,
        speedLimitMiBps: limits.speedLimitMiBps,
        ...(resumed.length > 0 ? { resumed } : {}),
      },
      'disk mirrors started',
    );
    // Test-only: the mirrors run in QEMU and (with a low speed limit) none is ready yet.
    await faultPoint('migrate.mirror');
    await waitMirrorsReady({
      dom,
      job,
      disks: storage.disks,
      signal: ctx?.cancellationSignal ?? new AbortController().signal,
      heartbeat: (hb) => ctx?.heartbeat(hb),
    });
    rt.log.info({ domain: dom.name, job: a.jobId, progress: job.progress }, 'disk mirrors ready');
  } catch (err) {
    await abortMirrors(dom.qmp, storage.disks).catch(() => undefined);
    if (tunnelled) await closeSourceRelay(rt, a.jobId, sctx).catch(() => undefined);
    rt.jobs.patch(dom.name, a.jobId, 'migrate-out', { mirrorsStarted: false });
    throw err;
  }
}

/**
 * The monitor's hooks for a storage migration: the mirrors watched while RAM goes, completed at the
 * pre-switchover pause; a tunnel's relay has nothing left to carry then and closes.
 */
export function storageSwitchover(
  rt: HostRuntime,
  dom: RunningDomain,
  a: PerformArgs,
  disks: string[],
  tunnelled: boolean,
): Pick<MonitorOptions, 'checkStorage' | 'onPreSwitchover'> {
  return {
    checkStorage: () => checkMirrors(dom.qmp, disks),
    onPreSwitchover: async () => {
      // Test-only: the source is paused before the switchover, every mirror ready and none completed.
      await faultPoint('migrate.switchover');
      await completeMirrors(dom.qmp, disks);
      if (tunnelled) await closeSourceRelay(rt, a.jobId, { domain: dom.name, uuid: a.uuid });
      await continueAfterPreSwitchover(dom.qmp);
    },
  };
}
