// The destination host's half of a migration: Prepare (checks again, a paused
// QEMU listening with -incoming defer on a port from the host's range,
// registered for auto-destroy), the liveness watch during Perform, and Finish
// (start CPUs and persist on success; kill on failure). Like the source side,
// every step may run again for the same job.
import { Context } from '@temporalio/activity';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { ErrorType, isVmError, vmError } from '../../common/errors.js';
import { streamEncrypted, type FinishArgs, type FinishResult, type PrepareArgs, type PrepareResult } from '../../common/migration-types.js';
import { checkBuilt, formatDomainXml, migratableDomainXml, normalizeUuid, parseDomainXml, type DomainDef } from '../../domain/index.js';
import { faultPoint } from '../../support/fault-points.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';
import type { QmpEvent } from '../../qemu/qmp-client.js';
import { checkDiskSafety, checkNotSameHost } from '../../migration/checks.js';
import { formatMigrationCookie, parseMigrationCookie, type MigrationCookie } from '../../migration/cookie.js';
import type { CookieNetInterface } from '../../migration/cookie.js';
import { eventTimeMs } from './monitor.js';
import { queryMigration } from '../../qemu/migration-engine.js';
import { graphicsFor, listenIncoming, preallocate } from './incoming-qemu.js';
import { clearPostcopyCapabilities, destinationCapabilities, ensureSelfAnnounce, hasCapability, setCapabilities } from '../../qemu/migration-params.js';
import { postcopyPreemptFor } from './postcopy-preempt.js';
import type { PortAllocator } from '../../migration/port-allocator.js';
import { formatMigrationUri, parseMigrationUri } from '../../migration/uri.js';
import { AUTHZ_ID as MIGRATION_TLS_AUTHZ, CREDS_ID as MIGRATION_TLS_CREDS, disableMigrationTls, enableMigrationTls } from './qemu-tls.js';
import { checkIncomingImages, createImages, deleteCreatedImages, exportImages, type IncomingImage } from './storage-destination.js';
import { stopNbdServer } from '../../qemu/migration-engine-storage.js';
import { whileHeartbeating } from '../../support/step-heartbeat.js';
import { hostTunnel, requireTunnel } from './host-tunnel.js';
import { makeIncomingNbdDir, removeTunnelNbdDir } from './tunnel-nbd.js';
import type { SecurityContext } from '../../security/index.js';
import { checkEmulator } from '../emulators.js';
import { checkMigrationEnd, probeFor } from '../host-capabilities.js';
import { DEFAULT_MACHINE } from '../../qemu/command-line.js';
import { applyStartupPolicy } from '../startup-policy.js';
import { migrateHook } from '../hooks.js';
import { checkInterfacesBuildable } from '../../qemu/devices/interface.js';
import { checkOvsAvailable, isOvsPort, setOvsPortData } from '../openvswitch.js';
import { applyParallel, endParallelIncoming } from './parallel.js';

export interface DestinationDeps {
  rt: HostRuntime;
  ports: PortAllocator;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]']);

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Refuses a destination name or UUID that another domain on this host already has. */
function checkNoConflict(rt: HostRuntime, def: DomainDef): void {
  for (const other of rt.list()) {
    if (other.name === def.name && other.uuid !== def.uuid) {
      throw vmError(ErrorType.DomainExists, `domain '${def.name}' already exists on this host with UUID ${other.uuid}`, { domain: def.name });
    }
    if (other.uuid === def.uuid && other.name !== def.name) {
      throw vmError(ErrorType.DomainExists, `domain '${other.name}' on this host already has UUID ${def.uuid}`, { domain: other.name });
    }
    if (other.name === def.name && other.state !== 'shutoff') {
      throw vmError(ErrorType.OperationInvalid, `domain '${def.name}' is already active on this host`, { domain: def.name });
    }
  }
}

export async function prepare(d: DestinationDeps, a: PrepareArgs): Promise<PrepareResult> {
  const { rt } = d;
  const destName = a.dname ?? a.domain;
  const uuid = normalizeUuid(a.uuid);
  if (uuid === undefined) throw vmError(ErrorType.OperationInvalid, `bad domain UUID '${a.uuid}'`);
  const again = rt.jobs.find(destName, a.jobId, 'migrate-in');
  if (again && (again.flags.includes('offline') || (rt.getRunning(destName)?.pid === again.pid && again.uri !== undefined))) {
    const tunnel = again.tunnel ? { tunnel: { endpoint: again.tunnel.endpoint, token: again.tunnel.token, name: destName } } : {};
    return {
      name: destName,
      uri: again.uri ?? '',
      ...(again.port !== undefined ? { port: again.port } : {}),
      ...(again.cookie ? { cookie: again.cookie } : {}),
      ...(again.postcopyPreempt ? { postcopyPreempt: true } : {}),
      ...tunnel,
    };
  }
  const tunnelled = a.flags.includes('tunnelled') && !a.flags.includes('offline');
  const tls = streamEncrypted(a.flags);
  // Refused before anything on this host changes: no certificates, no tunnel, never a stream in clear.
  const hostTls = tls ? requireTunnel(rt, tunnelled ? 'tunnelled' : 'TLS') : undefined;
  if (tunnelled && (a.sourceHost === undefined || a.uri !== undefined)) {
    throw vmError(ErrorType.OperationInvalid, 'a tunnelled Prepare needs the source host name and takes no URI');
  }
  if (tls && !a.sourceTlsIdentity) throw vmError(ErrorType.OperationInvalid, "a TLS or tunnelled Prepare needs the source certificate's subject");
  // An earlier attempt that died half-way (QEMU started, not yet listening): start over.
  if (again) await abortDestination(d, destName, a.jobId);
  const running = rt.getRunning(destName);

  checkNotSameHost(rt.config.hostUuid, a.sourceHostUuid, 'the source');
  let srcCookie: MigrationCookie | undefined;
  if (a.protocol === 3) {
    if (a.cookie === undefined) throw vmError(ErrorType.OperationInvalid, 'protocol v3 Prepare needs the cookie from Begin');
    srcCookie = parseMigrationCookie(a.cookie, { name: a.domain, uuid, localHostUuid: rt.config.hostUuid });
  }
  // The operator's migrate hook sees the incoming definition first and may replace it; a replacement is checked as the sent one is.
  const def = parseDomainXml(await migrateHook(rt, destName, a.xml));
  if (def.uuid !== uuid) throw vmError(ErrorType.OperationInvalid, `the domain XML has UUID ${def.uuid}, the migration is for ${uuid}`);
  if (def.name !== a.domain && def.name !== destName) {
    throw vmError(ErrorType.OperationInvalid, `target domain name '${def.name}' does not match source '${a.domain}'${a.dname ? ` or dname '${a.dname}'` : ''}`);
  }
  def.name = destName;
  checkBuilt(def);
  checkInterfacesBuildable(def);
  if (!a.flags.includes('offline')) checkOvsAvailable(def, rt.config.name);
  // The disks the source mirrors here: checked now (path free, room, backing file), created after the job is recorded.
  const images = srcCookie?.nbd && !a.flags.includes('offline') ? checkIncomingImages(def, srcCookie.nbd) : [];
  const toCreate = new Set(images.map((i) => i.path));
  // Refused here rather than after the job is taken (launch applies the policy again, once the images exist).
  if (!a.flags.includes('offline')) applyStartupPolicy(def, 'incoming', (p) => toCreate.has(p) || existsSync(p));
  checkDiskSafety(def, a.flags, { copied: new Set(images.map((i) => i.target)) });
  checkEmulator(rt.config.emulators, def);
  checkNoConflict(rt, def);
  // The CPU the source sent, the machine type the guest runs, and the capabilities and commands the flags need must all be
  // this host's QEMU's: refused now, before any record, port or QEMU.
  if (!a.flags.includes('offline')) await rt.checkCpu(def);
  if (!a.flags.includes('offline'))
    checkMigrationEnd(rt.config.name, 'destination', await probeFor(def, rt.config), a.flags, def.os.machine ?? DEFAULT_MACHINE);
  // Each disk's lease is free, or held for this domain by the source (its cookie says so): Finish takes them.
  if (!a.flags.includes('offline')) await rt.leases.checkIncoming(def, { domain: destName, uuid }, srcCookie?.lockState);
  let persistentXml: string | undefined;
  if (srcCookie?.persistentXml !== undefined) {
    const p = parseDomainXml(srcCookie.persistentXml);
    if (p.uuid !== uuid) throw vmError(ErrorType.OperationInvalid, 'the persistent definition in the cookie is for another domain');
    checkEmulator(rt.config.emulators, p);
    checkBuilt(p);
    p.name = destName;
    // It names the source's paths: a copied disk lives on here where this host creates it (the destination XML's path).
    for (const img of images) {
      const pd = p.devices.disks.find((x) => x.target.dev === img.target);
      if (pd?.type === 'file' && pd.source?.file !== undefined) pd.source.file = img.path;
    }
    persistentXml = formatDomainXml(p);
  }
  const override = a.uri === undefined ? undefined : parseMigrationUri(a.uri);
  if (override && override.transport !== 'tcp')
    throw vmError(ErrorType.ConfigUnsupported, `only tcp: migration URIs are supported, got ${override.transport}:`);

  rt.locks.beginJob(destName, a.jobId, 'migrateIn', 'prepare');
  // Registered for auto-destroy before QEMU exists: a crash in between leaves a record, never an orphan.
  rt.jobs.write({
    kind: 'migrate-in',
    name: destName,
    uuid,
    jobId: a.jobId,
    workflowId: a.workflowId,
    runId: a.runId,
    protocol: a.protocol,
    flags: a.flags,
    createdAtMs: Date.now(),
    sourceName: a.domain,
    ...(persistentXml !== undefined ? { persistentXml } : {}),
  });
  let dom: RunningDomain | undefined;
  try {
    if (a.flags.includes('offline')) return { name: destName, uri: '' };
    if (running) throw vmError(ErrorType.OperationInvalid, `domain '${destName}' is already active on this host`);
    if (images.length > 0) await whileHeartbeating(() => createImages(images, (path) => recordImage(rt, destName, a.jobId, path)));
    dom = await rt.launch(def, { incoming: true, requestId: a.jobId, leases: 'later' });
    rt.jobs.patch(destName, a.jobId, 'migrate-in', { pid: dom.pid });
    await faultPoint('migrate.prepare');
    // Both sides or neither: the source asked for it only if its QEMU has it (Begin's probe).
    const preempt = a.postcopyPreempt === true && (await postcopyPreemptFor(dom, a.flags));
    await setCapabilities(dom.qmp, destinationCapabilities(a.flags, { preempt: (await hasCapability(dom.qmp, 'postcopy-preempt')) ? preempt : undefined }));
    if (preempt) rt.jobs.patch(destName, a.jobId, 'migrate-in', { postcopyPreempt: true });
    await applyParallel(dom, a.flags, a.parallelConnections);
    if ((def.devices.interfaces?.length ?? 0) > 0) await ensureSelfAnnounce(dom.qmp);
    await preallocate(rt, dom, def);
    if (hostTls) await enableMigrationTls(rt, dom, hostTls.tls, { role: 'server', peerIdentity: a.sourceTlsIdentity! }, { domain: destName, uuid });
    if (tunnelled && hostTls) {
      // No listening QEMU: the worker's listener takes the data connection and hands it over (tunnel/server.ts),
      // and joins the storage copy's NBD connections to the NBD server's unix socket (nbd-relay.ts).
      if (images.length > 0) await serveImagesTunnelled(d, dom, a.jobId, images, { domain: destName, uuid });
      const { endpoint } = hostTls;
      const uri = `tunnel:${endpoint}`;
      const token = randomBytes(32).toString('base64url');
      rt.jobs.patch(destName, a.jobId, 'migrate-in', { tunnel: { endpoint, token, sourceHost: a.sourceHost! } });
      const cookie = a.protocol === 3 ? await prepareCookie(rt, dom, def, a, uuid, images.length > 0 ? {} : undefined) : undefined;
      rt.jobs.patch(destName, a.jobId, 'migrate-in', { uri, ...(cookie ? { cookie } : {}) });
      rt.log.info({ domain: destName, job: a.jobId, phase: 'prepare', endpoint, source: a.sourceHost, pid: dom.pid }, 'incoming tunnelled migration prepared');
      return { name: destName, uri, tunnel: { endpoint, token, name: destName }, ...(cookie ? { cookie } : {}) };
    }
    // The NBD server takes the same address as the stream and, with TLS, the same credentials and pinned source.
    const nbdPort = images.length > 0 ? await serveImages(d, dom, a.jobId, images, override?.host, hostTls !== undefined) : undefined;
    if (nbdPort !== undefined) rt.jobs.patch(destName, a.jobId, 'migrate-in', { nbdPort });
    const bound = await listenIncoming(d.rt, d.ports, dom, a.jobId, override?.transport === 'tcp' ? override : undefined);
    // A wildcard listen is reached through the host's name.
    const uri = formatMigrationUri({ transport: 'tcp', host: WILDCARDS.has(bound.host) ? osHostname() : bound.host, port: bound.port });
    const cookie = a.protocol === 3 ? await prepareCookie(rt, dom, def, a, uuid, nbdPort !== undefined ? { port: nbdPort } : undefined) : undefined;
    rt.jobs.patch(destName, a.jobId, 'migrate-in', { port: bound.port, uri, ...(cookie ? { cookie } : {}) });
    rt.log.info({ domain: destName, job: a.jobId, phase: 'prepare', uri, pid: dom.pid }, 'incoming migration prepared');
    return { name: destName, uri, port: bound.port, ...(cookie ? { cookie } : {}), ...(preempt ? { postcopyPreempt: true } : {}) };
  } catch (err) {
    await abortDestination(d, destName, a.jobId).catch(() => undefined);
    throw err;
  }
}

/** `nbd`: the NBD server's port, or no port when the tunnel carries the storage copy. */
async function prepareCookie(rt: HostRuntime, dom: RunningDomain, def: DomainDef, a: PrepareArgs, uuid: string, nbd?: { port?: number }): Promise<string> {
  const graphics = await graphicsFor(dom, def);
  const features: MigrationCookie['features'] = [];
  if (graphics) features.push('graphics');
  if (nbd !== undefined) features.push('nbd');
  return formatMigrationCookie({
    name: a.domain,
    uuid,
    hostname: rt.config.name,
    hostuuid: rt.config.hostUuid,
    features,
    mandatory: [],
    ...(graphics ? { graphics } : {}),
    // libvirt's Prepare answer: where the source's mirrors connect.
    ...(nbd !== undefined ? { nbd: { ...nbd, disks: [] } } : {}),
  });
}

function recordImage(rt: HostRuntime, name: string, jobId: string, path: string): void {
  const rec = rt.jobs.find(name, jobId, 'migrate-in');
  rt.jobs.patch(name, jobId, 'migrate-in', { createdImages: [...(rec?.createdImages ?? []), path] });
}

/** The NBD server on a port from the host's range (a second one for the job); a port taken since the probe costs one more try. */
async function serveImages(
  d: DestinationDeps,
  dom: RunningDomain,
  jobId: string,
  images: IncomingImage[],
  host: string | undefined,
  tls: boolean,
): Promise<number> {
  const owner = nbdPortOwner(jobId);
  for (let attempt = 1; ; attempt++) {
    const port = await d.ports.acquire(owner);
    try {
      await exportImages(dom, images, {
        host: host ?? d.rt.config.migration.address,
        port,
        ...(tls ? { tlsCreds: MIGRATION_TLS_CREDS, tlsAuthz: MIGRATION_TLS_AUTHZ } : {}),
      });
      return port;
    } catch (err) {
      const inUse = isVmError(err) && /in use/i.test(err.message);
      if (!inUse || attempt >= 5) throw err;
      d.ports.releaseOwner(owner);
    }
  }
}

/** Tunnelled: the NBD server on a unix socket in the job's private directory, with the same TLS as the stream. */
async function serveImagesTunnelled(d: DestinationDeps, dom: RunningDomain, jobId: string, images: IncomingImage[], sctx: SecurityContext): Promise<void> {
  const nbdSocket = await makeIncomingNbdDir(d.rt, jobId, sctx);
  d.rt.jobs.patch(dom.name, jobId, 'migrate-in', { nbdSocket });
  await exportImages(dom, images, { unixPath: nbdSocket, tlsCreds: MIGRATION_TLS_CREDS, tlsAuthz: MIGRATION_TLS_AUTHZ });
}

function nbdPortOwner(jobId: string): string {
  return `${jobId}/nbd`;
}

async function incomingStatus(dom: RunningDomain): Promise<string | undefined> {
  const info = await queryMigration(dom.qmp).catch(() => undefined);
  return info?.status;
}

/**
 * Runs while the source streams: returns when the incoming side completed,
 * fails when the destination QEMU died or its load failed. Its heartbeats are
 * how the workflow learns this host is still alive.
 */
export async function watchIncoming(d: DestinationDeps, name: string, jobId: string): Promise<void> {
  const { rt } = d;
  const rec = rt.jobs.find(name, jobId, 'migrate-in');
  const dom = rt.getRunning(name);
  if (!rec) throw vmError(ErrorType.OperationFailed, `no incoming migration of '${name}' for job ${jobId} on ${rt.config.name}`);
  if (!dom || dom.pid !== rec.pid) throw vmError(ErrorType.OperationFailed, `the incoming QEMU for '${name}' on ${rt.config.name} is gone`);
  const ctx = activityContext();
  const cancelled = ctx?.cancelled.catch((err: unknown) => err) ?? new Promise<unknown>(() => undefined);
  for (;;) {
    const status = await incomingStatus(dom);
    if (dom.qmp.isClosed) throw vmError(ErrorType.OperationFailed, `the incoming QEMU for '${name}' on ${rt.config.name} exited during the migration`);
    if (status === 'completed') return;
    if (status === 'failed') throw vmError(ErrorType.OperationFailed, `loading the incoming migration of '${name}' failed on ${rt.config.name}`);
    ctx?.heartbeat({ phase: 'perform', status: status ?? 'unknown' });
    const tick = new Promise<'tick'>((r) => setTimeout(() => r('tick'), 1000).unref());
    const outcome = await Promise.race([
      tick,
      dom.gone.then(() => 'gone' as const),
      dom.qmp.waitForEvent('MIGRATION', { timeoutMs: 1000 }).then(
        () => 'event' as const,
        () => 'tick' as const,
      ),
      cancelled.then((e) => ({ cancelled: e })),
    ]);
    if (typeof outcome === 'object') throw outcome.cancelled;
  }
}

async function forgetIncoming(d: DestinationDeps, name: string, jobId: string): Promise<void> {
  d.ports.releaseOwner(jobId);
  d.ports.releaseOwner(nbdPortOwner(jobId));
  const rec = d.rt.jobs.find(name, jobId, 'migrate-in');
  if (rec?.tunnel) hostTunnel(d.rt)?.server?.dropJob(jobId);
  // The job's NBD socket directory, by the job's id: there even if a worker restart lost what made it.
  if (rec) await removeTunnelNbdDir(d.rt, jobId, 'in', { domain: name, uuid: rec.uuid });
  d.rt.jobs.remove(name, jobId);
  if (d.rt.locks.job(name)?.id === jobId) d.rt.locks.endJob(name, jobId);
}

/** Kills the incoming QEMU this job started (and only that one), frees its port, forgets the job. */
export async function abortDestination(d: DestinationDeps, name: string, jobId: string): Promise<void> {
  const rec = d.rt.jobs.find(name, jobId, 'migrate-in');
  const dom = d.rt.getRunning(name);
  if (dom && ((rec?.pid !== undefined && dom.pid === rec.pid) || dom.startRequestId === jobId)) {
    await d.rt.kill(dom);
    d.rt.log.info({ domain: name, job: jobId, pid: dom.pid }, 'incoming QEMU killed');
  }
  // Only once no QEMU of this job holds them: the images this job made, and nothing else.
  const created = rec?.createdImages ?? [];
  if (created.length > 0) {
    deleteCreatedImages(created, (msg, err) => d.rt.log.warn({ domain: name, job: jobId, err: String(err) }, msg));
    d.rt.log.info({ domain: name, job: jobId, images: created }, 'destination images of the storage copy deleted');
  }
  await forgetIncoming(d, name, jobId);
}

/** Post-copy: the source switched, so the guest may run here while its pages still arrive. */
const POSTCOPY_RUNNABLE = new Set(['postcopy-active', 'postcopy-paused', 'postcopy-recover-setup', 'postcopy-recover']);

async function waitIncomingComplete(dom: RunningDomain, name: string, postcopy: boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = await incomingStatus(dom);
    if (status === 'completed' || (postcopy && status !== undefined && POSTCOPY_RUNNABLE.has(status))) return;
    if (dom.qmp.isClosed) throw vmError(ErrorType.OperationFailed, `the incoming QEMU for '${name}' exited before the migration completed`);
    if (status === 'failed') throw vmError(ErrorType.OperationFailed, `loading the incoming migration of '${name}' failed`);
    if (Date.now() > deadline)
      throw vmError(ErrorType.OperationFailed, `the incoming migration of '${name}' did not complete within 30 s of the source finishing (status ${status})`);
    await dom.qmp.waitForEvent('MIGRATION', { timeoutMs: 250 }).catch(() => undefined);
  }
}

export async function finish(d: DestinationDeps, a: FinishArgs): Promise<FinishResult> {
  const { rt } = d;
  const name = a.name;
  if (!a.success) {
    await abortDestination(d, name, a.jobId);
    return { persistent: rt.defs.has(name) };
  }
  const rec = rt.jobs.find(name, a.jobId, 'migrate-in');
  const dom = rt.getRunning(name);
  if (!rec) {
    // A retried Finish whose first attempt completed.
    if (dom && dom.startRequestId === a.jobId) return { domain: rt.info(name), persistent: rt.defs.has(name) };
    throw vmError(ErrorType.OperationFailed, `no incoming migration of '${name}' for job ${a.jobId} on ${rt.config.name}`);
  }
  const srcCookie =
    a.protocol === 3 && a.cookie !== undefined
      ? parseMigrationCookie(a.cookie, { name: a.domain, uuid: a.uuid, localHostUuid: rt.config.hostUuid })
      : undefined;
  const offline = rec.flags.includes('offline');
  if (!offline && (!dom || dom.pid !== rec.pid)) {
    await forgetIncoming(d, name, a.jobId);
    throw vmError(ErrorType.OperationFailed, `the incoming QEMU for '${name}' on ${rt.config.name} is gone`);
  }
  const previousDef = rt.defs.read(name);
  let wrote = false;
  let resumedAtMs: number | undefined;
  try {
    if (dom && !offline) {
      await waitIncomingComplete(dom, name, a.postcopy === true);
      // The source let its leases go at the switchover: taken here before any CPU runs, or refused (DiskLeaseHeld).
      const released = rt.leases.checkReleased(srcCookie?.lockState);
      await rt.leases.ensureHeld(dom);
      if (released) rt.log.info({ domain: name, job: a.jobId, leases: released.leases.length }, 'took the disk leases the source released');
    }
    if (a.flags.includes('persist-dest')) {
      // The source's persistent definition when it sent one, else the one now running (libvirt's rule).
      const xml = rec.persistentXml ?? (dom ? migratableDomainXml(parseDomainXml(dom.domainXml)) : undefined);
      if (xml === undefined) throw vmError(ErrorType.OperationFailed, `no definition of '${name}' to persist`);
      const def = parseDomainXml(xml);
      def.name = name;
      rt.defs.write(name, formatDomainXml(def));
      wrote = true;
    }
    if (dom && !offline && (rec.nbdPort !== undefined || rec.nbdSocket !== undefined)) {
      // The mirrors completed at the switchover; nothing may write the disks behind the guest once it runs.
      await stopNbdServer(dom.qmp).catch((err: unknown) => {
        if (!(isVmError(err) && /not running/i.test(err.message))) throw err;
      });
    }
    if (dom && !offline) {
      if (a.wasRunning && !a.flags.includes('paused')) {
        resumedAtMs = await startCpus(dom);
        dom.setState('running', 'migrated');
      } else {
        dom.setState('paused', 'user');
      }
    }
  } catch (err) {
    if ((a.protocol === 2 || a.postcopy === true) && dom && !offline) {
      // v2: the source is already gone; post-copy: the source can no longer run the guest. This paused QEMU is the copy to keep.
      await forgetIncoming(d, name, a.jobId);
      dom.setState('paused', a.postcopy === true ? 'postcopy-failed' : 'migration-failed');
      const why = a.postcopy === true ? 'post-copy: the source cannot resume it' : 'protocol v2: the source is gone';
      throw vmError(ErrorType.OperationFailed, `${messageOf(err)}; the domain stays paused on ${rt.config.name} (${why})`);
    }
    if (wrote) {
      if (previousDef === undefined) rt.defs.remove(name);
      else rt.defs.write(name, previousDef);
    }
    await abortDestination(d, name, a.jobId).catch(() => undefined);
    throw isVmError(err) ? err : vmError(ErrorType.OperationFailed, messageOf(err));
  }
  // Post-copy: the stream still runs and a recovery needs them; reset when it ends (postcopy-destination.ts).
  if (dom && !offline && a.postcopy !== true && (rec.flags.includes('tunnelled') || rec.flags.includes('tls'))) {
    // The incoming stream's TLS settings would make this QEMU's next outgoing stream (a save, a
    // migration in clear) a TLS server endpoint that cannot dial: back to clear, as libvirt resets them.
    await disableMigrationTls(dom.qmp).catch((err: unknown) =>
      rt.log.warn({ domain: name, err }, 'could not reset migration TLS after the incoming migration'),
    );
  }
  if (dom && !offline && a.postcopy !== true && rec.flags.includes('postcopy')) {
    // Completed in pre-copy: the capabilities the stream was prepared with go (post-copy clears them at its end).
    await clearPostcopyCapabilities(dom.qmp).catch((err: unknown) => rt.log.warn({ domain: name, err }, 'could not clear the post-copy capabilities'));
  }
  if (dom && !offline && srcCookie?.network !== undefined) await relocatePortData(rt, dom, srcCookie.network.interfaces);
  const parallelConnections = dom && !offline ? await endParallelIncoming(rt, dom, rec.flags) : undefined;
  await forgetIncoming(d, name, a.jobId);
  const cookie =
    a.protocol === 3
      ? formatMigrationCookie({ name: a.domain, uuid: a.uuid, hostname: rt.config.name, hostuuid: rt.config.hostUuid, features: [], mandatory: [] })
      : undefined;
  rt.log.info({ domain: name, job: a.jobId, phase: 'finish', state: dom?.state }, 'incoming migration finished');
  return {
    domain: rt.info(name),
    persistent: rt.defs.has(name),
    ...(cookie ? { cookie } : {}),
    ...(resumedAtMs !== undefined ? { resumedAtMs } : {}),
    ...(parallelConnections !== undefined ? { parallelConnections } : {}),
  };
}

/** The source's Open vSwitch PortData on this host's ports; like libvirt, a failure is a warning (the guest runs here now). */
async function relocatePortData(rt: HostRuntime, dom: RunningDomain, sent: CookieNetInterface[]): Promise<void> {
  const list = parseDomainXml(dom.domainXml).devices.interfaces ?? [];
  for (const i of sent) {
    const n = i.index === undefined ? undefined : list[i.index];
    if (i.vporttype !== 'openvswitch' || i.portdata === undefined || n === undefined || !isOvsPort(n) || n.targetDev === undefined) continue;
    await setOvsPortData(n.targetDev, i.portdata).catch((err: unknown) =>
      rt.log.warn({ domain: dom.name, err, tap: n.targetDev }, 'could not set the Open vSwitch port data the source sent'),
    );
  }
}

async function startCpus(dom: RunningDomain): Promise<number> {
  let resumedAtMs: number | undefined;
  const off = dom.qmp.onEvent((ev: QmpEvent) => {
    if (ev.event === 'RESUME') resumedAtMs = eventTimeMs(ev);
  });
  try {
    // Test-only (VMFERRY_FAULTS=migrate.finish=fail): the destination's CPUs "fail to start".
    await faultPoint('migrate.finish');
    await dom.qmp.execute('cont');
  } catch (err) {
    throw vmError(ErrorType.OperationFailed, `cannot start CPUs on the destination: ${messageOf(err)}`);
  } finally {
    off();
  }
  return resumedAtMs ?? Date.now();
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
