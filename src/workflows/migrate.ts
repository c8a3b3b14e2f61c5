// Live migration as a durable workflow: libvirt's v3 protocol (Begin on the
// source, Prepare on the destination, Perform on the source, Finish on the
// destination, Confirm on the source) or v2 (Prepare, Perform, Finish; no
// cookies) when a host speaks only that, each step on its host's task queue.
//
// Until Perform has succeeded, a failure or cancel undoes both sides: the
// destination's QEMU is killed and the source resumed if it ran (safe side by
// side, since only Finish starts the destination's CPUs). From Finish on the
// migration only moves forward: a cancel arriving then is too late, and a
// Finish that cannot start the destination's CPUs kills it, after which the
// source resumes. There is never a moment with two running copies. The first
// error is the workflow's, with its phase; errors met while undoing are
// attached to it.
import { CancellationScope, CancelledFailure, condition, isCancellation, log, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { ErrorType, isVmError, vmError } from '../common/errors.js';
import { jobWorkflowId } from '../common/job-types.js';
import {
  pickProtocol,
  streamEncrypted,
  validateMigrateInput,
  type BeginResult,
  type FinishResult,
  type MigrateFlag,
  type MigrateInput,
  type MigrateResult,
  type MigrationJobRef,
  type MigrationProtocol,
  type PerformResult,
  type PrepareResult,
} from '../common/migration-types.js';
import { DestinationHost, DomainUuid, SourceHost } from '../common/search-attributes.js';
import { JobTracker } from './job-tracker.js';
import { message, notTaken, on } from './migration-steps.js';

/** How long Perform may take to report its own error after the destination watch failed. */
const PERFORM_GRACE = '3 seconds';

export async function migrate(input: MigrateInput): Promise<MigrateResult> {
  const flags: MigrateFlag[] = validateMigrateInput(input);
  const { domain, sourceHost: src, destinationHost: dst } = input;
  const has = (f: MigrateFlag): boolean => flags.includes(f);
  const wf = workflowInfo();
  const job: MigrationJobRef = { jobId: `${wf.workflowId}/${wf.runId}`, workflowId: wf.workflowId, runId: wf.runId };
  upsertSearchAttributes([
    { key: SourceHost, value: src },
    { key: DestinationHost, value: dst },
  ]);

  const forward = new CancellationScope();
  let sourceJobLive = false;
  let control: Promise<void> = Promise.resolve();
  // Speed and downtime changes reach QEMU in the order they were signalled.
  const enqueue = (fn: () => Promise<unknown>): Promise<void> => {
    const next = control.then(async () => void (await fn()));
    control = next.catch(() => undefined);
    return next;
  };
  const tracker = new JobTracker({ jobType: 'migrateOut', domain, domainUuid: input.domainUuid ?? 'unknown', phase: 'begin' });
  if (input.bandwidthMiBps !== undefined) tracker.info.speedLimitMiBps = input.bandwidthMiBps;
  if (input.maxDowntimeMs !== undefined) tracker.info.maxDowntimeMs = input.maxDowntimeMs;
  tracker.setHooks({
    onCancel: () => {
      forward.cancel();
      // The long step also hears of it at its next heartbeat; this reaches QEMU sooner.
      if (sourceJobLive) {
        void CancellationScope.nonCancellable(() => on(src, 'control', 'abortJob', [domain, job.jobId], `abort the migration of '${domain}' on ${src}`)).catch(
          (err: unknown) => log.warn('abortJob failed', { err: message(err) }),
        );
      }
    },
    onSetSpeed: (mibps) =>
      sourceJobLive
        ? enqueue(() => on(src, 'control', 'setJobSpeed', [domain, job.jobId, mibps], `speed ${mibps} MiB/s for '${domain}' on ${src}`))
        : Promise.resolve(),
    onSetMaxDowntime: (ms) =>
      sourceJobLive
        ? enqueue(() => on(src, 'control', 'setJobMaxDowntime', [domain, job.jobId, ms], `max downtime ${ms} ms for '${domain}' on ${src}`))
        : Promise.resolve(),
  });

  let protocol = 3 as MigrationProtocol;
  let begun: BeginResult | undefined;
  let prepared: PrepareResult | undefined;
  /** tls / tunnelled: the source certificate's subject, which the destination QEMU pins. */
  let sourceTlsIdentity: string | undefined;
  let performed: PerformResult | undefined;
  let beginStarted = false;
  let prepareStarted = false;
  let destName = input.dname ?? domain;
  /** v2: Perform2 already stopped the source; from then on the destination holds the only copy. */
  let sourceGone = false;

  /**
   * Undoes both sides. Before Finish ran, the destination cannot be running (only
   * Finish starts its CPUs), so the source is resumed at once, alongside killing
   * the destination. Once Finish ran with an unknown outcome, the source is resumed
   * only after the destination is known dead; otherwise it stays paused.
   */
  const undo = async (finishAttempted: boolean): Promise<void> => {
    await CancellationScope.nonCancellable(async () => {
      const killDestination = async (): Promise<boolean> => {
        if (!prepareStarted || sourceGone) return true;
        try {
          await on(
            dst,
            'cleanup',
            protocol === 3 ? 'migrateFinish' : 'migrateFinish2',
            [{ ...job, name: destName, domain, uuid: begun?.uuid ?? input.domainUuid ?? '', success: false, flags, wasRunning: false, protocol }],
            `kill the incoming '${destName}' on ${dst}`,
          );
          return true;
        } catch (err) {
          tracker.cleanupError(err, 'finish');
          return false;
        }
      };
      const resumeSource = async (): Promise<void> => {
        if (!beginStarted || sourceGone) return;
        try {
          if (protocol === 3) {
            await on(src, 'cleanup', 'migrateConfirm', [{ ...job, domain, uuid: begun?.uuid ?? '', success: false, flags }], `resume '${domain}' on ${src}`);
          } else {
            await on(src, 'cleanup', 'migrateAbortSource', [domain, job.jobId], `resume '${domain}' on ${src}`);
          }
        } catch (err) {
          tracker.cleanupError(err, 'confirm');
        }
      };
      if (!finishAttempted) {
        await Promise.all([killDestination(), resumeSource()]);
      } else if (await killDestination()) {
        await resumeSource();
      } else {
        tracker.cleanupError(
          vmError(
            ErrorType.OperationFailed,
            `'${domain}' stays paused on ${src}: the destination ${dst} could not be confirmed dead, and resuming could run two copies`,
          ),
          'confirm',
        );
      }
    });
  };

  // ---- forward until the stream is complete: everything here can be undone ----
  try {
    await forward.run(async () => {
      if (streamEncrypted(flags)) {
        // Both workers must hold certificates; without them the stream would have to go in clear. Nothing is touched yet.
        const support = await Promise.all([src, dst].map((h) => on(h, 'probe', 'migrateTunnelSupport', [], `tunnel support of ${h}`)));
        const missing = support.filter((t) => !t.configured).map((t) => t.host);
        if (missing.length > 0) {
          throw vmError(
            ErrorType.ConfigUnsupported,
            `${has('tunnelled') ? 'tunnelled' : 'TLS'} migration needs tunnel certificates on both hosts; none configured on ${missing.map((h) => `'${h}'`).join(' and ')} (the stream is never sent in clear)`,
            { hosts: missing },
          );
        }
        sourceTlsIdentity = support[0]!.identity;
      }
      // Begin and the destination probe run together: both are read-mostly, and a refusal below undoes Begin.
      beginStarted = true;
      const [b, d] = await Promise.allSettled([
        on(
          src,
          'begin',
          'migrateBegin',
          [
            {
              ...job,
              domain,
              domainUuid: input.domainUuid,
              protocol: input.maxProtocol ?? 3,
              flags,
              destinationXml: input.destinationXml,
              dname: input.dname,
              bandwidthMiBps: tracker.info.speedLimitMiBps,
              maxDowntimeMs: tracker.info.maxDowntimeMs,
            },
          ],
          `Begin: check '${domain}' and take the job on ${src}`,
        ),
        on(dst, 'probe', 'hostInfo', [], `host info of ${dst}`),
      ]);
      if (b.status === 'rejected') {
        // A source that never picked Begin up holds nothing to undo; asking it would wait the cleanup's schedule-to-start.
        if (notTaken(b.reason)) beginStarted = false;
        throw b.reason;
      }
      begun = b.value;
      if (d.status === 'rejected') throw d.reason;
      const di = d.value;
      if (begun.hostUuid === di.hostUuid) {
        throw vmError(ErrorType.OperationInvalid, `attempt to migrate to the same host: '${src}' and '${dst}' have the same host UUID ${di.hostUuid}`, {
          hostUuid: di.hostUuid,
        });
      }
      const p = pickProtocol(begun.protocolVersions, di.protocolVersions, input.maxProtocol);
      if (p === undefined) {
        throw vmError(
          ErrorType.ConfigUnsupported,
          `no migration protocol in common: ${src} speaks v${begun.protocolVersions.join('/v')}, ${dst} speaks v${di.protocolVersions.join('/v')}`,
        );
      }
      protocol = p;
      if (protocol === 2 && has('offline')) throw vmError(ErrorType.ConfigUnsupported, `offline migration needs protocol v3; ${dst} speaks only v2`);
      if (protocol === 2 && has('persist-dest') && begun.persistentDiffers) {
        // Without cookies the destination could only persist the live definition, silently dropping the difference.
        throw vmError(
          ErrorType.ConfigUnsupported,
          `'persist-dest' needs the persistent definition of '${domain}', which differs from the live one, and ${dst} speaks only protocol v2 (no cookies)`,
        );
      }
      sourceJobLive = !has('offline');
      tracker.info.domainUuid = begun.uuid;
      upsertSearchAttributes([{ key: DomainUuid, value: begun.uuid }]);
      if (wf.workflowId !== jobWorkflowId(begun.uuid))
        log.warn('migration not started under the domain job ID; cluster-wide one-job-per-domain is not enforced for it', {
          expected: jobWorkflowId(begun.uuid),
        });
      // Signals that arrived while Begin ran were recorded but not applied.
      const speed = tracker.info.speedLimitMiBps ?? 0;
      if (sourceJobLive && speed !== begun.bandwidthMiBps)
        void enqueue(() => on(src, 'control', 'setJobSpeed', [domain, job.jobId, speed], `speed ${speed} MiB/s on ${src}`));
      const downtime = tracker.info.maxDowntimeMs;
      if (sourceJobLive && downtime !== undefined && downtime !== begun.maxDowntimeMs) {
        void enqueue(() => on(src, 'control', 'setJobMaxDowntime', [domain, job.jobId, downtime], `max downtime ${downtime} ms on ${src}`));
      }

      tracker.phase('prepare');
      prepareStarted = true;
      prepared = await on(
        dst,
        'step',
        protocol === 3 ? 'migratePrepare' : 'migratePrepare2',
        [
          {
            ...job,
            domain,
            uuid: begun.uuid,
            xml: begun.xml,
            cookie: protocol === 3 ? begun.cookie : undefined,
            dname: input.dname,
            flags,
            sourceHostUuid: begun.hostUuid,
            uri: input.uri,
            protocol,
            sourceHost: src,
            ...(sourceTlsIdentity !== undefined ? { sourceTlsIdentity } : {}),
          },
        ],
        `v${protocol} Prepare: start '${destName}' paused with -incoming on ${dst}`,
      );
      destName = prepared.name;

      if (!has('offline')) {
        tracker.phase('perform');
        await control; // the limits are in QEMU before the stream starts
        performed = await performWithWatch(prepared);
        tracker.progress(performed.stats);
        if (protocol === 2) sourceGone = true;
      }
      sourceJobLive = false;
      // A cancel that arrived while the last bytes went is still honoured: nothing runs on the destination yet.
      if (tracker.cancelRequested && !sourceGone) throw new CancelledFailure('cancelled after the stream completed');
    });
  } catch (err) {
    sourceJobLive = false;
    const phase = tracker.info.phase;
    if (isCancellation(err)) tracker.requestCancel();
    tracker.fail(err, phase);
    await undo(false);
    throw tracker.firstFailure();
  }

  async function performWithWatch(prep: PrepareResult): Promise<PerformResult> {
    const performScope = new CancellationScope();
    const watchScope = new CancellationScope();
    let destLost: unknown;
    let performEnded = false;
    const watching = watchScope
      .run(() => on(dst, 'watch', 'migrateWatchIncoming', [prep.name, job.jobId], `watch the incoming '${prep.name}' on ${dst}`))
      .catch(async (err: unknown) => {
        if (isCancellation(err) || tracker.cancelRequested) return;
        destLost = err;
        // The incoming side also dies when the SOURCE QEMU dies or fails the stream: Perform then
        // reports that first real error within moments, and blaming the destination would hide it.
        await CancellationScope.nonCancellable(() => condition(() => performEnded, PERFORM_GRACE)).catch(() => undefined);
        if (!performEnded) performScope.cancel();
      });
    const args = {
      ...job,
      domain,
      uuid: begun!.uuid,
      uri: prep.uri,
      cookie: prep.cookie,
      flags,
      protocol,
      destinationHost: dst,
      ...(prep.tunnel ? { tunnel: prep.tunnel } : {}),
      ...(input.timeoutSuspendSeconds !== undefined ? { timeoutSuspendSeconds: input.timeoutSuspendSeconds } : {}),
    };
    try {
      return await performScope.run(() =>
        on(src, 'long', protocol === 3 ? 'migratePerform' : 'migratePerform2', [args], `v${protocol} Perform: migrate '${domain}' from ${src} to ${prep.uri}`),
      );
    } catch (err) {
      // Perform reports the cancel it was sent either as a cancellation or as its own OperationAborted.
      if (destLost !== undefined && (isCancellation(err) || isVmError(err, ErrorType.OperationAborted)) && !tracker.cancelRequested) {
        throw vmError(ErrorType.OperationFailed, `destination host '${dst}' was lost during the migration: ${message(destLost)}`, { host: dst });
      }
      throw err;
    } finally {
      performEnded = true;
      watchScope.cancel();
      await watching;
    }
  }

  // ---- Finish and Confirm: past the point of no return, cancels are ignored ----
  const b = begun!;
  tracker.phase('finish');
  let finished: FinishResult;
  try {
    finished = await CancellationScope.nonCancellable(() =>
      on(
        dst,
        'step',
        protocol === 3 ? 'migrateFinish' : 'migrateFinish2',
        [{ ...job, name: destName, domain, uuid: b.uuid, success: true, cookie: performed?.cookie, flags, wasRunning: b.wasRunning, protocol }],
        `v${protocol} Finish: ${has('paused') || !b.wasRunning ? 'keep' : 'start'} '${destName}' on ${dst}`,
      ),
    );
  } catch (err) {
    tracker.fail(err, 'finish');
    // v3: Finish killed the destination; the source still has the guest. v2: the destination keeps the only copy.
    if (protocol === 3) await undo(true);
    throw tracker.firstFailure();
  }

  let sourceUndefined = has('undefine-source') && b.persistent && protocol === 2;
  if (protocol === 2) {
    // Bookkeeping only (the reaper would do it later): the job is over on the source too.
    await CancellationScope.nonCancellable(() => on(src, 'cleanup', 'migrateForgetSource', [domain, job.jobId], `forget the finished job on ${src}`)).catch(
      (err: unknown) => log.warn('migrateForgetSource failed; the reaper will clean up', { err: message(err) }),
    );
  }
  if (protocol === 3) {
    tracker.phase('confirm');
    try {
      const confirmed = await CancellationScope.nonCancellable(() =>
        on(
          src,
          'step',
          'migrateConfirm',
          [{ ...job, domain, uuid: b.uuid, success: true, cookie: finished.cookie, flags }],
          `v3 Confirm: stop '${domain}' on ${src}`,
        ),
      );
      sourceUndefined = confirmed.sourceUndefined;
    } catch (err) {
      // The guest runs on the destination; the source copy stays paused, never resumed.
      tracker.fail(err, 'confirm');
      throw tracker.firstFailure();
    }
  }
  tracker.complete();
  const stats = performed?.stats ?? {};
  const stopped = stats.sourceStoppedAtMs;
  return {
    domain: destName,
    uuid: b.uuid,
    protocol,
    sourceHost: src,
    destinationHost: dst,
    destination: finished.domain!,
    stats,
    ...(stopped !== undefined && finished.resumedAtMs !== undefined ? { measuredDowntimeMs: finished.resumedAtMs - stopped } : {}),
    persistent: finished.persistent,
    sourceUndefined,
  };
}
