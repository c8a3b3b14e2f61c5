// Host activities for live migration, one per protocol phase (libvirt's v3:
// Begin, Prepare, Perform, Finish, Confirm; v2: Prepare2, Perform2, Finish2),
// plus the destination watch and the undo steps compensation calls. Each runs on
// the task queue of the host it acts on; each is idempotent for one job.
// Test-only fault points (VMFERRY_FAULTS, see fault-points.ts): migrate.begin,
// migrate.prepare (incoming QEMU started), migrate.perform (stream started),
// migrate.perform-late (60% of RAM sent, stream still active),
// migrate.perform-done (stream complete, source paused, Perform not yet
// answered), migrate.finish (the destination's CPUs fail to start),
// migrate.confirm; with a storage copy migrate.mirror (mirrors started, none
// ready) and migrate.switchover (source paused, mirrors not yet completed).
import type {
  BeginArgs,
  BeginResult,
  ConfirmArgs,
  ConfirmResult,
  FinishArgs,
  FinishResult,
  PerformArgs,
  PerformResult,
  PrepareArgs,
  PrepareResult,
  TunnelSupport,
} from '../common/migration-types.js';
import { abortDestination, finish, prepare, watchIncoming, type DestinationDeps } from '../host/migration/destination-side.js';
import type { PortAllocator } from '../migration/port-allocator.js';
import { portsFor } from '../host/migration/ports.js';
import { readLimits, type AppliedLimits } from '../qemu/migration-params.js';
import { abortSource, begin, confirm, forgetSource, perform, perform2 } from '../host/migration/source-side.js';
import { tunnelSupport } from '../host/migration/host-tunnel.js';
import { requestPostcopy, resumePostcopy, waitPostcopy } from '../host/migration/postcopy-source.js';
import { keepPausedAfterPostcopy, listenRecovery, pauseIncoming, postcopyEnded } from '../host/migration/postcopy-destination.js';
import type { MigrateFlag } from '../common/migration-types.js';
import type { PostcopyRecoverListen, PostcopyWaitResult } from '../common/postcopy.js';
import type { HostRuntime } from '../host/host-runtime.js';
import { whileHeartbeating } from '../support/step-heartbeat.js';

export function createMigrationActivities(rt: HostRuntime, ports: PortAllocator = portsFor(rt)) {
  const dest: DestinationDeps = { rt, ports };
  return {
    // ---- v3 ----
    async migrateBegin(a: BeginArgs): Promise<BeginResult> {
      return await whileHeartbeating(() => begin(rt, a));
    },
    async migratePrepare(a: PrepareArgs): Promise<PrepareResult> {
      return await whileHeartbeating(() => prepare(dest, { ...a, protocol: 3 }));
    },
    async migratePerform(a: PerformArgs): Promise<PerformResult> {
      return await perform(rt, { ...a, protocol: 3 });
    },
    async migrateFinish(a: FinishArgs): Promise<FinishResult> {
      return await whileHeartbeating(() => finish(dest, { ...a, protocol: 3 }));
    },
    async migrateConfirm(a: ConfirmArgs): Promise<ConfirmResult> {
      return await whileHeartbeating(() => confirm(rt, a));
    },
    // ---- v2: no cookies; the source is gone at the end of Perform2 ----
    async migratePrepare2(a: PrepareArgs): Promise<PrepareResult> {
      return await whileHeartbeating(() => prepare(dest, { ...a, protocol: 2, cookie: undefined }));
    },
    async migratePerform2(a: PerformArgs): Promise<PerformResult> {
      return await perform2(rt, { ...a, protocol: 2, cookie: undefined });
    },
    async migrateFinish2(a: FinishArgs): Promise<FinishResult> {
      return await whileHeartbeating(() => finish(dest, { ...a, protocol: 2, cookie: undefined }));
    },
    /** v2 bookkeeping after Finish2: the source forgets the job Perform2 completed. */
    async migrateForgetSource(name: string, jobId: string): Promise<void> {
      forgetSource(rt, name, jobId);
    },
    // ---- both ----
    /** Destination liveness while the source streams (heartbeats; fails when the incoming QEMU dies). */
    async migrateWatchIncoming(name: string, jobId: string): Promise<void> {
      await watchIncoming(dest, name, jobId);
    },
    /** Compensation on the source: cancel the stream, resume the guest if it ran, end the job. */
    async migrateAbortSource(name: string, jobId: string): Promise<ConfirmResult> {
      return await whileHeartbeating(() => abortSource(rt, name, jobId, { resumeAfterCompletion: true }));
    },
    /** Compensation on the destination: kill the incoming QEMU of this job, free its port, end the job. */
    async migrateAbortDestination(name: string, jobId: string): Promise<void> {
      await whileHeartbeating(() => abortDestination(dest, name, jobId));
    },
    // ---- post-copy (v3): the switch on request, the wait for the stream's end, recovery ----
    /** Source: switch to post-copy now (or as soon as the stream is active). */
    async migrateStartPostcopy(name: string, jobId: string): Promise<{ status: string }> {
      return await requestPostcopy(rt, name, jobId);
    },
    /** Source, after Finish: until the stream completed, or paused (a broken link); heartbeats its progress. */
    async migratePostcopyWait(name: string, jobId: string): Promise<PostcopyWaitResult> {
      return await waitPostcopy(rt, name, jobId);
    },
    /** Source: dial the destination's recovery listener (`migrate` with resume). */
    async migratePostcopyResume(name: string, jobId: string, uri: string): Promise<{ status: string }> {
      return await resumePostcopy(rt, name, jobId, uri);
    },
    /** Destination: pause an incoming post-copy stream whose link went silent (both sides must be paused to recover). */
    async migratePostcopyPauseIncoming(name: string): Promise<{ status: string }> {
      return await pauseIncoming(dest, name);
    },
    /** Destination: listen for the resumed stream (migrate-recover). */
    async migratePostcopyListen(name: string, jobId: string, uri?: string): Promise<PostcopyRecoverListen> {
      return await listenRecovery(dest, name, jobId, uri);
    },
    /** Destination, after a post-copy failure: the guest stays here, paused; never killed. */
    async migratePostcopyKeepPaused(name: string, jobId: string): Promise<{ kept: boolean }> {
      return await whileHeartbeating(() => keepPausedAfterPostcopy(dest, name, jobId));
    },
    /** Destination, once the stream completed: what was kept for a recovery goes. */
    async migratePostcopyEnded(name: string, jobId: string, flags: MigrateFlag[]): Promise<void> {
      await postcopyEnded(dest, name, jobId, flags);
    },
    /** Read-only: whether this host can carry a tunnelled or TLS migration (certificates configured), where peers dial it, and its TLS identity. */
    async migrateTunnelSupport(): Promise<TunnelSupport> {
      return tunnelSupport(rt);
    },
    /** Read-only: the speed and downtime limits QEMU applies now (query-migrate-parameters). */
    async migrationParams(name: string): Promise<AppliedLimits> {
      return await readLimits(rt.requireRunning(name).qmp);
    },
  };
}

export type MigrationActivities = ReturnType<typeof createMigrationActivities>;
