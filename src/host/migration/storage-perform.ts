// Perform's storage steps on the source: mirror every copied disk into the
// destination's NBD export and wait until all are ready (a cancel or failure
// here stops the mirrors at once; the guest never stopped running), and the
// switchover hook the monitor calls at QEMU's pre-switchover pause: complete
// the mirrors, then let the device state go.
import type { Context } from '@temporalio/activity';
import { ErrorType, vmError } from '../../common/errors.js';
import type { PerformArgs } from '../../common/migration-types.js';
import type { MigrationCookie } from '../../migration/cookie.js';
import { parseMigrationUri } from '../../migration/uri.js';
import { continueAfterPreSwitchover } from '../../qemu/migration-engine-storage.js';
import { readLimits } from '../../qemu/migration-params.js';
import type { HostJob } from '../domain-lock.js';
import type { HostRuntime } from '../host-runtime.js';
import type { MigrateOutRecord } from '../jobs/records.js';
import type { RunningDomain } from '../running-domain.js';
import { CREDS_ID } from './qemu-tls.js';
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
  ctx: Context | undefined,
): Promise<void> {
  const port = destCookie?.nbd?.port;
  if (port === undefined) throw vmError(ErrorType.OperationFailed, `the destination '${a.destinationHost}' sent no NBD port for the storage copy`);
  const uri = parseMigrationUri(a.uri);
  if (uri.transport !== 'tcp') throw vmError(ErrorType.ConfigUnsupported, `a storage copy needs a tcp: migration URI, got ${uri.transport}:`);
  rt.jobs.patch(dom.name, a.jobId, 'migrate-out', { mirrorsStarted: true });
  try {
    // The job's speed limit as it stands (a setSpeed may have come since Begin) applies to the disks as well.
    const limits = await readLimits(dom.qmp);
    await startMirrors(dom.qmp, {
      disks: storage.disks,
      sync: storage.sync,
      host: uri.host,
      port,
      bandwidthMiBps: limits.speedLimitMiBps,
      ...(tls ? { tls: { creds: CREDS_ID, hostname: a.destinationHost } } : {}),
    });
    rt.log.info({ domain: dom.name, job: a.jobId, disks: storage.disks, sync: storage.sync, nbd: `${uri.host}:${port}` }, 'disk mirrors started');
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
    rt.jobs.patch(dom.name, a.jobId, 'migrate-out', { mirrorsStarted: false });
    throw err;
  }
}

/** The monitor's hooks for a storage migration: the mirrors watched while RAM goes, completed at the pre-switchover pause. */
export function storageSwitchover(dom: RunningDomain, disks: string[]): Pick<MonitorOptions, 'checkStorage' | 'onPreSwitchover'> {
  return {
    checkStorage: () => checkMirrors(dom.qmp, disks),
    onPreSwitchover: async () => {
      await completeMirrors(dom.qmp, disks);
      await continueAfterPreSwitchover(dom.qmp);
    },
  };
}
