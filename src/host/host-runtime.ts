// Everything one host worker knows: persistent definitions on disk, the running
// domains it talks to over QMP, and the locks that keep two operations off one
// domain. Activities are thin wrappers over these methods.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { BlockStats, DomainInfo, DomainSummary, HostInfo } from '../common/domain-types.js';
import { ErrorType, vmError } from '../common/errors.js';
import { assignAddresses, checkBuilt, parseDomainXml, formatDomainXml, migratableDomainXml, withoutSecrets, type DomainDef } from '../domain/index.js';
import { buildQemuArgs } from '../qemu/command-line.js';
import { launchQemu } from '../qemu/launch.js';
import { argsWithPaths } from '../qemu/qemu-paths.js';
import { applyGraphicsPasswords, applyLinkStates, readLiveFacts } from '../qemu/live-config.js';
import { findFreePort } from './graphics-ports.js';
import type { QmpClient, QmpEvent } from '../qemu/qmp-client.js';
import { DefinitionStore } from './definition-store.js';
import { DomainLocks } from './domain-lock.js';
import { JobRecords } from './jobs/records.js';
import type { HostConfig } from './host-config.js';
import { terminate } from '../support/proc.js';
import { RunningDomain } from './running-domain.js';
import type { DomainStatus } from './status-file.js';
import { reconnectAll } from './reconnect.js';
import type { Logger } from 'pino';
import { createSecurityDriver, type SecurityDriver } from '../security/index.js';
import { checkEmulator } from './emulators.js';
import { happeningOf, reactTo, type LifecycleHost } from './guest-lifecycle.js';
import { checkCpuOnHost, qemuInfo, startingDef } from './host-cpu.js';
import { probeBinary } from './host-capabilities.js';
import { HostTaps } from './taps.js';
import { checkInterfacesBuildable } from '../qemu/devices/interface.js';
import type { QemuProbe } from '../qemu/probe.js';
import { checkCpuBuildable } from '../qemu/devices/cpu.js';
import { applyStartupPolicy } from './startup-policy.js';
import { createChannelDir, prepareDevices, removeChannelDir } from './device-setup.js';
import { runEndHooks, spawnWithHooks } from './hooks.js';
import { checkOvsAvailable } from './openvswitch.js';
import { DiskLeases } from './leases/domain-leases.js';
import { Confinement } from './confinement.js';

export class HostRuntime implements LifecycleHost {
  readonly defs: DefinitionStore;
  readonly locks = new DomainLocks();
  /** Work in flight, on disk: what a restarted worker or the reaper must finish or undo (jobs/recovery.ts). */
  readonly jobs: JobRecords;
  /** Labels what QEMU touches (images, sockets, descriptors); one per host so remembered labels are shared. */
  readonly security: SecurityDriver;
  /** Taps of ethernet / bridge interfaces this worker created (host/taps.ts). */
  readonly taps: HostTaps;
  /** Disk leases in the shared lockspace, held by each domain's QEMU (host/leases/); inert without a lockspace. */
  readonly leases: DiskLeases;
  /** QEMU's uid, seccomp sandbox and cgroup (host/confinement.ts). */
  readonly confinement: Confinement;
  private readonly running = new Map<string, RunningDomain>();
  /** Why each domain stopped last (destroyed, shutdown, crashed), for dominfo; in memory, as libvirt keeps it. */
  private readonly stopReasons = new Map<string, string>();
  /** Domains whose QEMU is gone and whose end hooks and host clean-up still run (onGone). */
  private readonly stopping = new Map<string, Promise<void>>();
  private qemuVersion?: string;
  private qemuProbe?: QemuProbe;

  constructor(
    readonly config: HostConfig,
    readonly log: Logger,
  ) {
    this.defs = new DefinitionStore(config.stateDir);
    this.jobs = new JobRecords(config.stateDir);
    this.security = createSecurityDriver(config.security);
    this.taps = new HostTaps(config.runDir, log);
    this.leases = new DiskLeases(config, this.security, log);
    this.confinement = new Confinement(
      { runDir: config.runDir, memoryBackingDir: config.memoryBackingDir, sandbox: config.qemuSandbox, cgroups: config.cgroups },
      this.security,
      log,
    );
  }

  // ---- recovery --------------------------------------------------------

  /** Reattach to every QEMU that outlived a previous worker; forget the dead ones (host/reconnect.ts). */
  async reconnectAll(): Promise<void> {
    await reconnectAll(this);
  }

  /** Tracks a QEMU that outlived a previous worker, from its status file. */
  adopt(name: string, status: DomainStatus, qmp: QmpClient): RunningDomain {
    const def = parseDomainXml(status.domainXml);
    return this.track(
      new RunningDomain(
        { ...status, name, uuid: def.uuid, qmp },
        this.config.runDir,
        (d) => this.onGone(d),
        (d, ev) => this.onGuestEvent(d, ev),
      ),
    );
  }

  private onGuestEvent(dom: RunningDomain, ev: QmpEvent): void {
    this.log.info({ domain: dom.name, event: ev.event, data: ev.data }, 'guest lifecycle event');
    void reactTo(this, dom, happeningOf(ev), { event: ev.event, data: ev.data });
  }

  recordStop(name: string, reason: string): void {
    this.stopReasons.set(name, reason);
  }

  private track(dom: RunningDomain): RunningDomain {
    this.running.set(dom.name, dom);
    return dom;
  }

  /**
   * libvirt's order: the stopped hook, then the host resources go (taps, OVS
   * ports), then release. A start of the same name waits for it (launch), so the
   * ledgers cleared here are this QEMU's.
   */
  private async onGone(dom: RunningDomain): Promise<void> {
    const current = this.running.get(dom.name);
    if (current === dom) this.running.delete(dom.name);
    removeChannelDir(this.config.runDir, dom);
    await this.confinement.release(parseDomainXml(dom.domainXml), dom.memoryBackingFile);
    // A newer QEMU of the same name owns the ledgers now.
    if (current !== undefined && current !== dom) {
      this.log.info({ domain: dom.name, pid: dom.pid }, 'QEMU is gone');
      await runEndHooks(this, dom.name, dom.domainXml);
      return;
    }
    const done = (async () => {
      this.log.info({ domain: dom.name, pid: dom.pid }, 'QEMU is gone');
      await runEndHooks(this, dom.name, dom.domainXml, ['stopped']);
      this.taps.removeCreated(dom.name);
      await runEndHooks(this, dom.name, dom.domainXml, ['release']);
    })();
    this.stopping.set(dom.name, done);
    try {
      await done;
    } finally {
      if (this.stopping.get(dom.name) === done) this.stopping.delete(dom.name);
    }
  }

  /** Worker shutdown: let go of every QEMU and leave it running. */
  async detachAll(): Promise<void> {
    await Promise.all([...this.running.values()].map((d) => d.detach()));
    this.running.clear();
  }

  // ---- lookups ---------------------------------------------------------

  getRunning(name: string): RunningDomain | undefined {
    return this.running.get(name);
  }

  requireRunning(name: string): RunningDomain {
    const dom = this.running.get(name);
    if (dom) return dom;
    if (this.defs.has(name)) throw vmError(ErrorType.OperationInvalid, `domain '${name}' is not running`, { domain: name });
    throw this.notFound(name);
  }

  notFound(name: string): Error {
    return vmError(ErrorType.DomainNotFound, `no domain with name '${name}' on host ${this.config.name}`, { domain: name, host: this.config.name });
  }

  /** The persistent definition, or the live one of a transient domain. */
  definition(name: string, opts: { inactive?: boolean } = {}): DomainDef {
    const live = this.running.get(name);
    if (live && !opts.inactive) return parseDomainXml(live.domainXml);
    const xml = this.defs.read(name);
    if (xml !== undefined) return parseDomainXml(xml);
    if (live) return parseDomainXml(live.domainXml);
    throw this.notFound(name);
  }

  info(name: string): DomainInfo {
    const live = this.running.get(name);
    const def = this.definition(name);
    const base = {
      name: def.name,
      uuid: def.uuid,
      persistent: this.defs.has(name),
      memoryKiB: def.memoryKiB,
      currentMemoryKiB: def.currentMemoryKiB,
      vcpus: def.vcpus,
      host: this.config.name,
    };
    if (!live) return { ...base, state: 'shutoff', reason: this.stopReasons.get(name) ?? 'shutdown' };
    return { ...base, state: live.state, reason: live.reason, pid: live.pid, qmpSocket: live.qmpSocket, memoryBackingFile: live.memoryBackingFile };
  }

  list(): DomainSummary[] {
    const names = new Set([...this.defs.names(), ...this.running.keys()]);
    return [...names].sort().map((n) => {
      const i = this.info(n);
      return { name: i.name, uuid: i.uuid, state: i.state, persistent: i.persistent };
    });
  }

  hostInfo(): HostInfo {
    return {
      name: this.config.name,
      hostUuid: this.config.hostUuid,
      hostname: hostname(),
      protocolVersions: this.config.protocolVersions,
      qemuVersion: this.qemuVersion ?? this.qemuProbe?.version,
      ...(this.qemuProbe ? { qemu: qemuInfo(this.qemuProbe) } : {}),
    };
  }

  /** Probes the host's QEMU (at worker start; cached per binary and mtime). */
  async probeQemu(): Promise<QemuProbe> {
    this.qemuProbe = await probeBinary(this.config.qemuBinary, this.config);
    return this.qemuProbe;
  }

  /** Refuses a definition whose CPU this host's QEMU cannot run (before anything is touched). */
  async checkCpu(def: DomainDef): Promise<QemuProbe | undefined> {
    return await checkCpuOnHost(def, this.config);
  }

  /** Read-only, so it answers during a job (a migration's Perform included). */
  async blockStats(name: string): Promise<BlockStats[]> {
    const dom = this.requireRunning(name);
    const raw = await dom.qmp.execute<{ device?: string; qdev?: string; stats: Record<string, number> }[]>('query-blockstats');
    return raw
      .filter((b) => b.device?.startsWith('drive-'))
      .map((b) => ({
        device: b.device!.slice('drive-'.length),
        rdBytes: b.stats.rd_bytes ?? 0,
        wrBytes: b.stats.wr_bytes ?? 0,
        rdOps: b.stats.rd_operations ?? 0,
        wrOps: b.stats.wr_operations ?? 0,
        flushOps: b.stats.flush_operations ?? 0,
      }));
  }

  /** Graphics passwords are left out unless `securityInfo` (libvirt's dumpxml --security-info). */
  dumpXml(name: string, opts: { inactive?: boolean; migratable?: boolean; securityInfo?: boolean } = {}): string {
    const full = this.definition(name, opts);
    const def = opts.securityInfo === true ? full : withoutSecrets(full);
    return opts.migratable ? migratableDomainXml(def) : formatDomainXml(def);
  }

  // ---- definitions -----------------------------------------------------

  define(xml: string): DomainSummary {
    // Device addresses are settled at define and kept in the definition, as libvirt does.
    const def = assignAddresses(parseDomainXml(xml));
    checkEmulator(this.config.emulators, def);
    checkBuilt(def);
    checkCpuBuildable(def);
    checkInterfacesBuildable(def);
    for (const other of new Set([...this.defs.names(), ...this.running.keys()])) {
      const o = this.definition(other);
      if (o.name === def.name && o.uuid !== def.uuid) {
        throw vmError(ErrorType.DomainExists, `domain '${def.name}' already exists with uuid ${o.uuid}`, { domain: def.name });
      }
      if (o.uuid === def.uuid && o.name !== def.name) {
        throw vmError(ErrorType.DomainExists, `domain '${o.name}' is already defined with uuid ${def.uuid}`, { domain: o.name });
      }
    }
    return this.locks.withSync(def.name, () => {
      this.defs.write(def.name, formatDomainXml(def));
      return { name: def.name, uuid: def.uuid, state: this.running.get(def.name)?.state ?? 'shutoff', persistent: true };
    });
  }

  undefine(name: string): DomainInfo {
    if (!this.defs.has(name)) {
      if (this.running.has(name)) throw vmError(ErrorType.OperationInvalid, `domain '${name}' is transient: nothing to undefine`);
      throw this.notFound(name);
    }
    return this.locks.withSync(name, () => {
      const before = this.info(name);
      this.defs.remove(name);
      return { ...before, persistent: false };
    });
  }

  // ---- lifecycle -------------------------------------------------------

  async start(name: string, opts: { paused?: boolean; requestId?: string }): Promise<DomainInfo> {
    return await this.locks.with(name, opts.requestId ?? 'start', async () => {
      const live = this.running.get(name);
      if (live) {
        // A retried start whose first attempt got QEMU running: same request, same answer.
        if (opts.requestId && live.startRequestId === opts.requestId) return this.info(name);
        throw vmError(ErrorType.OperationInvalid, `domain '${name}' is already running`, { domain: name });
      }
      const xml = this.defs.read(name);
      if (xml === undefined) throw this.notFound(name);
      await this.launch(parseDomainXml(xml), { paused: opts.paused, requestId: opts.requestId });
      return this.info(name);
    });
  }

  /**
   * Starts QEMU for a definition (persistent or not) and tracks it. With
   * `incoming`, QEMU waits for `migrate-incoming` (restore, migration Prepare) and
   * stays paused; the caller holds whatever lock or job covers the domain.
   */
  async launch(
    requested: DomainDef,
    /** leases 'later': an incoming migration's QEMU, whose leases the source holds until Finish. */
    opts: { paused?: boolean; incoming?: boolean; requestId?: string; extraArgs?: string[]; leases?: 'later' },
  ): Promise<RunningDomain> {
    const name = requested.name;
    // The previous QEMU of this name is still being cleaned up (its stopped hook may take a while).
    await this.stopping.get(name);
    if (this.running.has(name)) throw vmError(ErrorType.OperationInvalid, `domain '${name}' is already running`, { domain: name });
    // Every spawn passes here (start, restore, Prepare), whatever its caller checked earlier.
    checkEmulator(this.config.emulators, requested);
    // Missing disk sources as the disks' startupPolicy says; the live definition shows what was dropped.
    const { def: present, dropped } = applyStartupPolicy(requested, opts.incoming ? 'incoming' : 'start');
    if (dropped.length > 0) this.log.warn({ domain: name, disks: dropped }, 'missing disk sources dropped (startupPolicy)');
    // Addresses the definition lacks (one defined before they were assigned, a restored or incoming one) and channel sockets.
    const prepared = prepareDevices(present, this.config.runDir);
    const probe = await this.checkCpu(prepared);
    // host-model starts as the concrete CPU standing for this host: what runs, and so what migrates and is saved.
    let def = startingDef(prepared, probe);
    const qmpSocket = this.confinement.qmpSocketFor(def);
    this.confinement.checkUidFree(def, [...this.running.values()]);
    const memoryBackingFile = def.memoryBacking?.sourceType === 'file' ? join(this.config.memoryBackingDir, `${def.uuid}.ram`) : undefined;
    const spicePorts: number[] = [];
    for (const g of def.devices.graphics) {
      if (g.type === 'spice') spicePorts.push(g.autoport || g.port === undefined || g.port < 0 ? await findFreePort(5900, 65535, spicePorts) : g.port);
    }
    const extra = [...(opts.incoming ? ['-incoming', 'defer'] : []), ...(opts.extraArgs ?? [])];
    // Refused before a tap is made: nothing of the domain exists yet.
    checkInterfacesBuildable(def);
    checkOvsAvailable(def, this.config.name);
    // Refused with DiskLeaseHeld before anything of the domain exists; held by the worker until QEMU takes them.
    const leases = opts.leases === 'later' ? undefined : await this.leases.take(def);
    const cpuFacts = probe?.accels[def.type === 'kvm' ? 'kvm' : 'tcg'];
    let taps: (string | undefined)[] = [];
    let removeChannelDirMade = (): void => undefined;
    let released: Promise<void> | undefined;
    const launched = await spawnWithHooks(this, def, {
      setUp: async () => {
        removeChannelDirMade = createChannelDir(this.config.runDir, def);
        taps = await this.taps.prepare(name, def);
      },
      spawn: async () => {
        const args = buildQemuArgs(def, { qmpSocket, memoryBackingFile, spicePorts, extra, taps, ...(cpuFacts ? { cpuFacts } : {}) });
        // -L goes in QEMU's own arguments before a wrapper (systemd-run) is put in front of them.
        const qemuArgs = argsWithPaths(args, this.config.qemuPaths);
        const confined = await this.confinement.prepare(def, memoryBackingFile, def.devices.emulator ?? this.config.qemuBinary, qemuArgs);
        this.log.info({ domain: name, binary: confined.binary, args: confined.args, identity: confined.identity }, 'starting QEMU');
        return await launchQemu({
          binary: confined.binary,
          args: confined.args,
          qmpSocket,
          logFile: join(this.config.logDir, `${name}.log`),
          ...(confined.identity ? { identity: confined.identity } : {}),
          paths: { ...this.config.qemuPaths, firmwareDirs: [] },
          onSpawned: (pid) => this.confinement.placeSpawned(confined.placement, pid, name),
        });
      },
      tearDown: () => {
        removeChannelDirMade();
        this.taps.removeCreated(name);
        released = this.confinement.release(def, memoryBackingFile);
      },
    }).catch(async (err: unknown) => {
      leases?.close();
      await released;
      throw err;
    });
    const { pid, qmp } = launched;
    // The live definition names the taps in use, as libvirt's does (the migratable form drops generated names).
    def = structuredClone(def);
    (def.devices.interfaces ?? []).forEach((n, i) => {
      if (taps[i] !== undefined) n.targetDev = taps[i];
    });
    const dom = this.track(
      new RunningDomain(
        {
          name,
          uuid: def.uuid,
          pid,
          qmp,
          qmpSocket,
          memoryBackingFile,
          startRequestId: opts.requestId,
          state: 'paused',
          reason: opts.incoming ? 'incoming migration' : 'starting up',
          domainXml: formatDomainXml(def),
        },
        this.config.runDir,
        (d) => this.onGone(d),
        (d, ev) => this.onGuestEvent(d, ev),
      ),
    );
    this.stopReasons.delete(name);
    dom.persist();
    try {
      await leases?.handTo(qmp);
      this.qemuVersion ??= `${qmp.version.qemu.major}.${qmp.version.qemu.minor}.${qmp.version.qemu.micro}`;
      await applyGraphicsPasswords(qmp, def);
      await applyLinkStates(qmp, def);
      dom.domainXml = formatDomainXml(await readLiveFacts(qmp, def));
      if (opts.incoming) {
        dom.persist();
      } else if (opts.paused) {
        dom.setState('paused', 'user');
      } else {
        await qmp.execute('cont');
        dom.setState('running', 'booted');
      }
    } catch (err) {
      await this.kill(dom);
      throw err;
    } finally {
      leases?.close();
    }
    return dom;
  }

  /** Stops QEMU (SIGTERM, then SIGKILL) and waits until its files are cleaned up. */
  async kill(dom: RunningDomain): Promise<void> {
    await terminate(dom.pid);
    await dom.gone;
  }

  async destroy(name: string): Promise<DomainInfo> {
    const dom = this.requireRunning(name);
    return await this.locks.with(name, 'destroy', async () => {
      this.recordStop(name, 'destroyed');
      await this.kill(dom);
      return this.infoAfterStop(name, dom);
    });
  }

  /** A stopped domain's info, also for a transient one (gone from every list once QEMU is). */
  infoAfterStop(name: string, dom: RunningDomain): DomainInfo {
    if (this.defs.has(name)) return this.info(name);
    const def = parseDomainXml(dom.domainXml);
    return {
      name,
      uuid: def.uuid,
      persistent: false,
      state: 'shutoff',
      reason: this.stopReasons.get(name) ?? 'shutdown',
      memoryKiB: def.memoryKiB,
      currentMemoryKiB: def.currentMemoryKiB,
      vcpus: def.vcpus,
      host: this.config.name,
    };
  }

  async suspend(name: string): Promise<DomainInfo> {
    const dom = this.requireRunning(name);
    return await this.locks.with(name, 'suspend', async () => {
      if (dom.state === 'paused') throw vmError(ErrorType.OperationInvalid, `domain '${name}' is already paused`);
      await dom.qmp.execute('stop');
      dom.setState('paused', 'user');
      return this.info(name);
    });
  }

  async resume(name: string): Promise<DomainInfo> {
    const dom = this.requireRunning(name);
    return await this.locks.with(name, 'resume', async () => {
      if (dom.state === 'running') throw vmError(ErrorType.OperationInvalid, `domain '${name}' is already running`);
      // A guest paused because its leases could not be taken back takes them now, or stays paused.
      await this.leases.ensureHeld(dom);
      await dom.qmp.execute('cont');
      dom.setState('running', 'unpaused');
      return this.info(name);
    });
  }

  /** For tests and diagnostics: is any file of this domain still on disk? */
  leftovers(name: string, uuid: string): string[] {
    return [join(this.config.runDir, `${name}.xml`), join(this.config.runDir, `${name}.qmp`), join(this.config.memoryBackingDir, `${uuid}.ram`)].filter((p) =>
      existsSync(p),
    );
  }
}
