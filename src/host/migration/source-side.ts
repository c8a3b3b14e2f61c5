// The source host's half of a migration: Begin (checks, migratable XML, the
// job), Perform (capabilities, client relocation, `migrate`, the watch),
// Confirm (kill after success, resume after failure). Every step may run again
// for the same job (a retried activity, a restarted worker) and then does what
// is left, never a second migration.
import { Context } from '@temporalio/activity';
import { ErrorType, vmError } from '../../common/errors.js';
import type {
  BeginArgs,
  BeginResult,
  ConfirmArgs,
  ConfirmResult,
  MigrationHeartbeat,
  MigrationStats,
  PerformArgs,
  PerformResult,
} from '../../common/migration-types.js';
import { streamEncrypted } from '../../common/migration-types.js';
import { checkBuilt, formatDomainXml, migratableDomainDef, migratableDomainXml, normalizeUuid, parseDomainXml, pinMachineAlias } from '../../domain/index.js';
import { faultPoint } from '../../support/fault-points.js';
import { whileHeartbeating } from '../../support/step-heartbeat.js';
import type { HostJob } from '../domain-lock.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';
import { checkAbiStability, checkDestinationName } from '../../migration/abi-check.js';
import { checkDiskSafety, checkNoSnapshots, checkSourceState } from '../../migration/checks.js';
import { planStorageCopy } from '../../migration/storage-plan.js';
import { announceDisks } from './storage-source.js';
import { abortSource, killFinishedSource, requireStreamComplete } from './source-undo.js';

export { abortSource };
import { copyStorage, storageSwitchover } from './storage-perform.js';
import { closeTunnelRelay } from './tunnel-nbd.js';
import { formatMigrationCookie, parseMigrationCookie, type MigrationCookie } from '../../migration/cookie.js';
import { ovsCookieInterfaces } from '../openvswitch.js';
import { relocateGraphics } from './graphics-relocation.js';
import { monitorMigration } from './monitor.js';
import { startMigration } from '../../qemu/migration-engine.js';
import { hasCapability, setCapabilities, setLimits, setTuning, sourceCapabilities } from '../../qemu/migration-params.js';
import { ProgressSignaller } from './progress-signal.js';
import { postcopyPreemptFor } from './postcopy-preempt.js';
import { requireTunnel } from './host-tunnel.js';
import { disableMigrationTls, enableMigrationTls } from './qemu-tls.js';
import { SourceTunnel, type SourceTunnelSpec } from '../../migration/tunnel/source-session.js';
import { timeoutOptions } from './timeout-action.js';
import { withConcreteCpu, withLiveCpu } from '../host-cpu.js';
import { checkMigrationEnd, probeFor, withMachine } from '../host-capabilities.js';
import { currentMachineType } from '../../qemu/capabilities-probe.js';
import { applyParallel } from './parallel.js';

const TUNNEL_FD_NAME = 'vmf-tunnel-out';

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

function noJob(name: string, jobId: string): Error {
  return vmError(ErrorType.OperationInvalid, `domain '${name}' has no migration job ${jobId} on this host (Begin did not run, or the job already ended)`, {
    domain: name,
    jobId,
  });
}

export async function begin(rt: HostRuntime, a: BeginArgs): Promise<BeginResult> {
  const name = a.domain;
  const flags = a.flags;
  const offline = flags.includes('offline');
  const dom = rt.getRunning(name);
  const info = rt.info(name);
  if (a.domainUuid !== undefined && normalizeUuid(a.domainUuid) !== info.uuid) {
    throw vmError(ErrorType.OperationInvalid, `domain '${name}' has UUID ${info.uuid}, not ${a.domainUuid}`, { domain: name });
  }
  const again = rt.jobs.find(name, a.jobId, 'migrate-out');
  if (!offline && !dom) throw vmError(ErrorType.OperationInvalid, `domain '${name}' is not running (use 'offline' to move its definition)`, { domain: name });
  if (!again) checkSourceState(name, info.state, info.reason, flags);
  checkNoSnapshots(rt.config.stateDir, name);
  const persistent = rt.defs.has(name);
  if (offline && !persistent)
    throw vmError(ErrorType.OperationInvalid, `offline migration needs a persistent domain; '${name}' is transient`, { domain: name });
  const liveDef = rt.definition(name);
  const persistentDef = persistent ? rt.definition(name, { inactive: true }) : undefined;
  const sourceDef = offline && persistentDef ? persistentDef : liveDef;
  const storage = offline ? undefined : planStorageCopy(sourceDef, flags, a.migrateDisks, rt.config.sharedStoragePaths);
  checkDiskSafety(sourceDef, flags, { sharedStoragePaths: rt.config.sharedStoragePaths, copied: new Set(storage?.disks.map((d) => d.target.dev)) });
  // This QEMU must do what the flags ask (the destination's Prepare checks its own).
  if (!offline && dom) checkMigrationEnd(rt.config.name, 'source', await probeFor(liveDef, rt.config), flags);
  const nbd = storage && storage.disks.length > 0 && dom ? await announceDisks(dom, storage) : undefined;
  // The leases go with the guest at the switchover, in the v3 cookie: v2 has none to carry them (libvirt refuses it too).
  const lockState = offline ? undefined : rt.leases.lockState(liveDef);
  if (lockState && a.protocol === 2) {
    throw vmError(ErrorType.ConfigUnsupported, `'${name}' holds disk leases, which only protocol v3 can move (in its cookie's lock state); v2 was asked for`, {
      domain: name,
    });
  }

  // The live CPU leaves as it runs: a host-model guest was started as its expanded custom CPU (host-cpu.ts), and a
  // destination XML saying host-model means that CPU. Only a guest an older worker started as host/max is expanded now.
  const liveQmp = offline ? undefined : dom?.qmp;
  // The guest leaves as the versioned machine type it runs (pc-i440fx-7.2, not pc): the destination's QEMU must have that one.
  const machine = liveQmp ? await currentMachineType(liveQmp) : undefined;
  let xml = migratableDomainXml(withMachine(await withConcreteCpu(liveQmp, sourceDef), machine));
  if (a.destinationXml !== undefined) {
    const dest = pinMachineAlias(withLiveCpu(parseDomainXml(a.destinationXml), sourceDef), sourceDef.os.machine);
    // Refused here, before the job is taken, rather than at the destination's Prepare.
    checkBuilt(dest);
    checkDestinationName(dest, name, a.dname);
    checkAbiStability(dest, migratableDomainDef(sourceDef));
    xml = migratableDomainXml(withMachine(await withConcreteCpu(liveQmp, dest), machine));
  }

  const wantPersistent = flags.includes('persist-dest') && persistentDef !== undefined;
  // Only persist-dest cares, and the comparison formats two definitions: skip it otherwise.
  const persistentDiffers = wantPersistent && !offline && migratableDomainXml(persistentDef) !== migratableDomainXml(liveDef);
  let cookie: string | undefined;
  if (a.protocol === 3) {
    const c: MigrationCookie = { name, uuid: info.uuid, hostname: rt.config.name, hostuuid: rt.config.hostUuid, features: [], mandatory: [] };
    if (lockState) {
      c.features.push('lockstate');
      c.lockState = lockState;
    }
    if (wantPersistent) {
      c.features.push('persistent');
      c.persistentXml = formatDomainXml(persistentDef);
    }
    if (nbd) {
      c.features.push('nbd');
      c.nbd = nbd;
    }
    cookie = formatMigrationCookie(c);
  }

  const wasRunning = again?.wasRunning ?? info.state === 'running';
  rt.locks.beginJob(name, a.jobId, 'migrateOut', 'begin');
  try {
    await faultPoint('migrate.begin');
    if (!again) {
      rt.jobs.write({
        kind: 'migrate-out',
        name,
        uuid: info.uuid,
        jobId: a.jobId,
        workflowId: a.workflowId,
        runId: a.runId,
        protocol: a.protocol,
        flags,
        createdAtMs: Date.now(),
        wasRunning,
        ...(nbd && storage ? { storage: { sync: storage.sync, disks: nbd.disks.map((d) => d.target) } } : {}),
      });
    }
    if (dom && !offline)
      await setLimits(dom.qmp, { bandwidthMiBps: a.bandwidthMiBps, maxDowntimeMs: a.maxDowntimeMs, postcopyBandwidthMiBps: a.postcopyBandwidthMiBps });
  } catch (err) {
    rt.jobs.remove(name, a.jobId);
    rt.locks.endJob(name, a.jobId);
    throw err;
  }
  rt.log.info({ domain: name, job: a.jobId, phase: 'begin', protocol: a.protocol, flags }, 'migration begun');
  return {
    xml,
    cookie,
    uuid: info.uuid,
    wasRunning,
    persistent,
    hostUuid: rt.config.hostUuid,
    hostname: rt.config.name,
    protocolVersions: rt.config.protocolVersions,
    persistentDiffers,
    ...(lockState ? { lockStateNeeded: true } : {}),
    ...(dom && (await postcopyPreemptFor(dom, flags)) ? { postcopyPreempt: true } : {}),
    bandwidthMiBps: a.bandwidthMiBps ?? 0,
    ...(a.maxDowntimeMs !== undefined ? { maxDowntimeMs: a.maxDowntimeMs } : {}),
  };
}

export async function perform(rt: HostRuntime, a: PerformArgs): Promise<PerformResult> {
  const name = a.domain;
  const dom = rt.requireRunning(name);
  const rec = rt.jobs.find(name, a.jobId, 'migrate-out');
  if (!rec) throw noJob(name, a.jobId);
  const timeoutOpts = timeoutOptions(rt, name, a);
  const job = rt.locks.beginJob(name, a.jobId, 'migrateOut', 'perform');
  const ctx = activityContext();
  let destCookie: MigrationCookie | undefined;
  if (a.protocol === 3) {
    if (a.cookie === undefined) throw vmError(ErrorType.OperationInvalid, 'protocol v3 Perform needs the cookie from Prepare');
    destCookie = parseMigrationCookie(a.cookie, { name, uuid: a.uuid, localHostUuid: rt.config.hostUuid });
  }
  const offline = a.flags.includes('offline');
  const storage = offline ? undefined : rec.storage;
  const tunnelled = a.flags.includes('tunnelled') && !offline;
  const tls = streamEncrypted(a.flags);
  const sctx = { domain: name, uuid: a.uuid };
  if (tunnelled && !a.tunnel) throw vmError(ErrorType.OperationInvalid, 'a tunnelled Perform needs the tunnel endpoint and token from Prepare');
  const tunnelSpec = (): SourceTunnelSpec => ({
    tls: requireTunnel(rt).tls,
    endpoint: a.tunnel!.endpoint,
    destinationHost: a.destinationHost,
    jobId: a.jobId,
    name: a.tunnel!.name,
    token: a.tunnel!.token,
    security: rt.security,
    securityContext: sctx,
    onWarn: (msg, err) => rt.log.warn({ domain: name, err: String(err) }, msg),
  });
  let tunnel: SourceTunnel | undefined;
  const signaller = ctx && a.progressSamples ? ProgressSignaller.fromContext(ctx, a, rt.log.child({ domain: name, job: a.jobId })) : undefined;
  try {
    if (!rec.performStarted) {
      let uri = a.uri;
      await relocateGraphics(rt, dom, destCookie);
      // Written in full when this QEMU has preempt: an earlier migration's choice must not leak into this one.
      const preempt = (await hasCapability(dom.qmp, 'postcopy-preempt')) ? a.postcopyPreempt === true : undefined;
      await setCapabilities(dom.qmp, sourceCapabilities(a.flags, { pauseBeforeSwitchover: storage !== undefined, preempt }));
      const parallel = await applyParallel(dom, a.flags, a.parallelConnections);
      if (a.tuning) await setTuning(dom.qmp, a.tuning);
      // Set (or cleared) every time: an earlier TLS migration that failed left its parameters in this QEMU.
      if (tls) await enableMigrationTls(rt, dom, requireTunnel(rt, tunnelled ? 'tunnelled' : 'TLS').tls, { role: 'client', peerHost: a.destinationHost }, sctx);
      else await disableMigrationTls(dom.qmp);
      // The disks first, while the guest runs: RAM goes only once every mirror keeps its disk in sync.
      if (storage) await copyStorage(rt, dom, a, job, storage, destCookie, tls, tunnelled, ctx);
      // Dialled just before `migrate`: the destination QEMU takes one connection only, so nothing that may fail comes in between.
      if (tunnelled) {
        // Dialling may wait on a slow or failing link: Temporal must still see this worker alive.
        tunnel = await whileHeartbeating(() => SourceTunnel.open(tunnelSpec()));
        await tunnel.handoff((fd) => dom.qmp.execute('getfd', { fdname: TUNNEL_FD_NAME }, { fds: [fd] }).then(() => undefined));
        uri = `fd:${TUNNEL_FD_NAME}`;
      }
      if (!a.flags.includes('live') && dom.state === 'running') {
        // A non-live migration moves a stopped guest: nothing dirties memory behind the stream.
        await dom.qmp.execute('stop');
        dom.setState('paused', 'migration');
      } else if (dom.state === 'running') {
        dom.setState('running', 'migrating');
      }
      rt.jobs.patch(name, a.jobId, 'migrate-out', { performStarted: true, protocol: a.protocol });
      rt.log.info(
        {
          domain: name,
          job: a.jobId,
          phase: 'perform',
          uri: a.uri,
          tunnelled,
          ...(preempt ? { postcopyPreempt: true } : {}),
          ...(parallel ? { parallel } : {}),
        },
        'starting migration',
      );
      await startMigration(dom.qmp, uri);
      await faultPoint('migrate.perform');
    } else if (tunnelled) {
      // A restarted worker: the stream is QEMU's and goes on; only the destination's liveness watch is dialled again.
      tunnel = await SourceTunnel.watch(tunnelSpec()).catch((err: unknown) => {
        rt.log.warn({ domain: name, job: a.jobId, err: String(err) }, 'cannot watch the destination over the tunnel again; relying on the stall limit');
        return undefined;
      });
    }
    const stats = await monitorMigration({
      dom,
      job,
      signal: ctx?.cancellationSignal ?? new AbortController().signal,
      // Only the workflow's own cancel (or its end) stops the migration; a worker shutdown or a timed-out attempt just stops watching.
      onAbort: () => {
        const d = ctx?.cancellationDetails;
        return d?.cancelRequested || d?.notFound ? 'cancel' : 'detach';
      },
      heartbeat: (hb: MigrationHeartbeat) => ctx?.heartbeat(hb),
      ...(signaller ? { onSample: (info, progress) => signaller.offer(info, progress) } : {}),
      abortOnIoError: a.flags.includes('abort-on-error'),
      // A cut network stalls TCP for minutes without an error: the host's limit on a stream that moves no byte.
      stallTimeoutMs: rt.config.migration.stallTimeoutMs,
      ...(a.flags.includes('postcopy') ? { postcopy: { afterPrecopy: a.flags.includes('postcopy-after-precopy') } } : {}),
      onPostcopy: () => rt.jobs.patch(name, a.jobId, 'migrate-out', { postcopyStarted: true }),
      ...(tunnel ? { lost: tunnel.lost.signal, afterCancel: () => tunnel?.destroy() } : {}),
      ...(storage ? storageSwitchover(rt, dom, a, storage.disks, tunnelled) : {}),
      ...timeoutOpts,
    }).catch(async (err: unknown) => {
      if (ctx?.cancellationDetails?.notFound) {
        // The workflow is gone: nobody will Confirm, so undo here.
        await abortSource(rt, name, a.jobId, { resumeAfterCompletion: false }).catch(() => undefined);
      }
      throw err;
    });
    tunnel?.finish();
    const { postcopyRunning, ...final } = stats;
    return { ...(await performed(rt, a, job, final)), ...(postcopyRunning ? { postcopyRunning } : {}) };
  } finally {
    tunnel?.destroy();
  }
}

async function performed(rt: HostRuntime, a: PerformArgs, job: HostJob, stats: MigrationStats): Promise<PerformResult> {
  const name = a.domain;
  job.phase = 'perform-done';
  // The stream is complete (or switched to post-copy) and the source paused: its leases go now, for the destination to take before its CPUs start.
  const dom = rt.getRunning(name);
  const lockState = dom && !a.flags.includes('offline') ? await rt.leases.release(dom) : undefined;
  // Test-only: the stream is complete and the source paused, Perform has not answered yet.
  await faultPoint('migrate.perform-done');
  let cookie: string | undefined;
  if (a.protocol === 3) {
    const s: Record<string, number> = {};
    if (stats.totalTimeMs !== undefined) s.time_elapsed = stats.totalTimeMs;
    if (stats.downtimeMs !== undefined) s.downtime = stats.downtimeMs;
    if (stats.setupTimeMs !== undefined) s.setup_time = stats.setupTimeMs;
    if (stats.memTotalBytes !== undefined) s.memory_total = stats.memTotalBytes;
    if (stats.memProcessedBytes !== undefined) s.memory_processed = stats.memProcessedBytes;
    if (stats.memRemainingBytes !== undefined) s.memory_remaining = stats.memRemainingBytes;
    if (stats.diskTotalBytes !== undefined) s.disk_total = stats.diskTotalBytes;
    if (stats.diskProcessedBytes !== undefined) s.disk_processed = stats.diskProcessedBytes;
    if (stats.diskRemainingBytes !== undefined) s.disk_remaining = stats.diskRemainingBytes;
    // The Open vSwitch ports' PortData goes to the destination, which sets it at Finish (libvirt's <network> cookie data).
    const live = rt.getRunning(name);
    const ports = live
      ? await ovsCookieInterfaces(parseDomainXml(live.domainXml)).catch((err: unknown) => {
          rt.log.warn({ domain: name, err }, 'could not read the Open vSwitch port data; the destination gets none');
          return [];
        })
      : [];
    cookie = formatMigrationCookie({
      name,
      uuid: a.uuid,
      hostname: rt.config.name,
      hostuuid: rt.config.hostUuid,
      features: [...(ports.length > 0 ? (['network'] as const) : []), 'statistics', ...(lockState ? (['lockstate'] as const) : [])],
      mandatory: [],
      stats: s,
      ...(ports.length > 0 ? { network: { interfaces: ports } } : {}),
      ...(lockState ? { lockState } : {}),
    });
  }
  rt.log.info({ domain: name, job: a.jobId, phase: 'perform', stats }, 'migration completed on the source');
  return { stats, cookie };
}

/**
 * v2 has no Confirm: the source goes away as soon as the stream is complete.
 * The record stays behind as proof (a retried Perform2 must not read "domain
 * gone" as a failure, which would kill the only copy) until forgetSource, or
 * the reaper once the workflow has closed.
 */
export async function perform2(rt: HostRuntime, a: PerformArgs): Promise<PerformResult> {
  const done = rt.jobs.find(a.domain, a.jobId, 'migrate-out');
  if (done?.completedStats && !rt.getRunning(a.domain)) return { stats: done.completedStats };
  const result = await perform(rt, a);
  rt.jobs.patch(a.domain, a.jobId, 'migrate-out', { completedStats: result.stats });
  const dom = rt.getRunning(a.domain);
  if (dom) await killFinishedSource(rt, dom);
  if (a.flags.includes('undefine-source') && rt.defs.has(a.domain)) rt.defs.remove(a.domain);
  if (rt.locks.job(a.domain)?.id === a.jobId) rt.locks.endJob(a.domain, a.jobId);
  rt.log.info({ domain: a.domain, job: a.jobId, phase: 'perform' }, 'v2: stream complete, source stopped');
  return result;
}

/** v2, after Finish2: drops the record Perform2 left, once the source is really gone. */
export function forgetSource(rt: HostRuntime, name: string, jobId: string): void {
  if (rt.getRunning(name) && rt.jobs.find(name, jobId, 'migrate-out')?.completedStats === undefined) return;
  rt.jobs.remove(name, jobId);
  if (rt.locks.job(name)?.id === jobId) rt.locks.endJob(name, jobId);
}

export async function confirm(rt: HostRuntime, a: ConfirmArgs): Promise<ConfirmResult> {
  const name = a.domain;
  if (!a.success) return await abortSource(rt, name, a.jobId, { resumeAfterCompletion: true });
  const rec = rt.jobs.find(name, a.jobId, 'migrate-out');
  if (a.cookie !== undefined) {
    // The destination runs the guest now; a malformed cookie is worth a warning, not a second running copy.
    try {
      parseMigrationCookie(a.cookie, { name, uuid: a.uuid, localHostUuid: rt.config.hostUuid });
    } catch (err) {
      rt.log.warn({ domain: name, err: String(err) }, 'Finish cookie refused; confirming anyway');
    }
  }
  if (!rec) {
    // A retried Confirm whose first attempt finished: nothing left to do.
    if (rt.locks.job(name)?.id === a.jobId) rt.locks.endJob(name, a.jobId);
    return { sourceUndefined: a.flags.includes('undefine-source') && !rt.defs.has(name), resumed: false };
  }
  await faultPoint('migrate.confirm');
  const dom = rt.getRunning(name);
  // After post-copy the source holds pages the destination may still pull: it goes only once the stream is complete.
  if (dom && rec.postcopyStarted) await requireStreamComplete(dom);
  if (dom && !rec.flags.includes('offline')) await killFinishedSource(rt, dom);
  let sourceUndefined = false;
  if (a.flags.includes('undefine-source') && rt.defs.has(name)) {
    rt.defs.remove(name);
    sourceUndefined = true;
  }
  await closeTunnelRelay(rt, rec);
  rt.jobs.remove(name, a.jobId);
  rt.locks.endJob(name, a.jobId);
  rt.log.info({ domain: name, job: a.jobId, phase: 'confirm', sourceUndefined }, 'migration confirmed; source stopped');
  return { sourceUndefined, resumed: false };
}
