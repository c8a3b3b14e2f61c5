// Perform, watched from the destination: the source streams while the
// destination reports whether its incoming QEMU is still alive. A lost
// destination stops Perform, unless Perform reports its own error first.
import { CancellationScope, condition, isCancellation } from '@temporalio/workflow';
import { ErrorType, isVmError, vmError } from '../common/errors.js';
import type { PerformResult, PrepareResult } from '../common/migration-types.js';
import type { Begun } from './migrate-begin.js';
import { message, on } from './migration-steps.js';
import type { MigrationJob } from './migration-job.js';

/** How long Perform may take to report its own error after the destination watch failed. */
const PERFORM_GRACE = '3 seconds';

export async function performWatched(
  m: MigrationJob,
  { begun, protocol }: Begun,
  prep: PrepareResult,
  act: 'migratePerform' | 'migratePerform2',
): Promise<PerformResult> {
  const { domain, src, dst, tracker, input } = m;
  const performScope = new CancellationScope();
  const watchScope = new CancellationScope();
  let destLost: unknown;
  let performEnded = false;
  const watching = watchScope
    .run(() => on(dst, 'watch', 'migrateWatchIncoming', [prep.name, m.job.jobId], `watch the incoming '${prep.name}' on ${dst}`))
    .catch(async (err: unknown) => {
      if (isCancellation(err) || tracker.cancelRequested) return;
      destLost = err;
      // The incoming side also dies when the SOURCE QEMU dies or fails the stream: Perform then
      // reports that first real error within moments, and blaming the destination would hide it.
      await CancellationScope.nonCancellable(() => condition(() => performEnded, PERFORM_GRACE)).catch(() => undefined);
      if (!performEnded) performScope.cancel();
    });
  const args = {
    ...m.job,
    domain,
    uuid: begun.uuid,
    uri: prep.uri,
    cookie: prep.cookie,
    flags: m.flags,
    protocol,
    destinationHost: dst,
    ...(prep.tunnel ? { tunnel: prep.tunnel } : {}),
    ...(prep.postcopyPreempt ? { postcopyPreempt: true } : {}),
    ...(input.timeoutSuspendSeconds !== undefined ? { timeoutSuspendSeconds: input.timeoutSuspendSeconds } : {}),
    ...(m.convergence.tuning ? { tuning: m.convergence.tuning } : {}),
    ...(m.convergence.active ? { progressSamples: true } : {}),
    ...(m.parallelConnections !== undefined ? { parallelConnections: m.parallelConnections } : {}),
  };
  try {
    return await performScope.run(() => on(src, 'long', act, [args], `v${protocol} Perform: migrate '${domain}' from ${src} to ${prep.uri}`));
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
