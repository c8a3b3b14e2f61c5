// A running domain's disk leases live in its QEMU: the worker takes each lease
// (lockspace.ts) on a descriptor it opened, hands that descriptor to QEMU with
// QMP `getfd` (SCM_RIGHTS) under a name derived from the lease, and closes its
// own copy. The lease then lasts exactly as long as QEMU keeps the descriptor:
// a worker that crashes or restarts releases nothing, and a QEMU that dies, or
// is killed after a save or a completed migration, releases everything.
// Releasing while QEMU runs on (the source paused at the switchover) is QMP
// `closefd`. Not `add-fd`/`remove-fd`: QEMU 7.2 closes a removed fdset member
// only while the guest's CPUs run, so a paused source would keep its leases.
//
// Whether QEMU holds a lease is read from /proc/<pid>/fd (a descriptor open on
// the lease file is one the worker handed over locked): it stays true across
// worker restarts, with nothing to keep in sync.
import { closeSync, readdirSync, readlinkSync } from 'node:fs';
import type { Logger } from 'pino';
import { ErrorType, vmError } from '../../common/errors.js';
import type { DomainDef } from '../../domain/domain-model.js';
import { parseDomainXml } from '../../domain/index.js';
import { formatLockState, parseLockState, type LockState } from '../../migration/lock-state.js';
import type { QmpClient } from '../../qemu/qmp-client.js';
import type { SecurityDriver } from '../../security/index.js';
import type { RunningDomain } from '../running-domain.js';
import { Lockspace, type DiskLease, type LeaseTaker } from './lockspace.js';

/** Long enough to outwait another host's momentary probe of a free lease; a lease really held is refused after it. */
const ACQUIRE_WAIT_MS = 2000;

/** Leases taken before QEMU exists, until they are handed to it (or dropped). */
export interface TakenLeases {
  handTo(qmp: QmpClient): Promise<void>;
  /** Closes the worker's descriptors: releases every lease not yet handed to QEMU. */
  close(): void;
}

const NONE: TakenLeases = { handTo: async () => undefined, close: () => undefined };

function fdName(lease: DiskLease): string {
  return `vmf-lease-${lease.key}`;
}

/** QEMU keeps the descriptor for good: labelled for the domain first (SELinux checks a received file against it). */
async function handOver(security: SecurityDriver, qmp: QmpClient, taker: LeaseTaker, held: Map<DiskLease, number>): Promise<void> {
  for (const [lease, fd] of held) {
    await security.labelHandedFd(fd, { domain: taker.domain, uuid: taker.uuid });
    await qmp.execute('getfd', { fdname: fdName(lease) }, { fds: [fd] });
  }
}

/** Whether QEMU (`pid`) holds the lease: a descriptor of its own is open on the lease file. */
export function qemuHolds(pid: number, lease: DiskLease): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === lease.path;
    } catch {
      return false;
    }
  });
}

export class DiskLeases {
  readonly lockspace?: Lockspace;

  constructor(
    config: { name: string; hostUuid: string; lockspaceDir?: string },
    private readonly security: SecurityDriver,
    private readonly log: Logger,
  ) {
    if (config.lockspaceDir !== undefined) this.lockspace = new Lockspace(config.lockspaceDir, { host: config.name, hostUuid: config.hostUuid });
  }

  leasesOf(def: DomainDef): DiskLease[] {
    return this.lockspace?.leasesOf(def) ?? [];
  }

  /** What a v3 cookie carries for this domain; none when leases are off or its disks need none (then v2 may carry it). */
  lockState(def: DomainDef): { driver: string; leases: string } | undefined {
    const leases = this.leasesOf(def);
    if (!this.lockspace || leases.length === 0) return undefined;
    return formatLockState({ lockspace: this.lockspace.id(), leases: leases.map((l) => ({ key: l.key, mode: l.mode })) });
  }

  /** Takes the leases of a domain about to be spawned (start, restore), refusing with DiskLeaseHeld before anything starts. */
  async take(def: DomainDef): Promise<TakenLeases> {
    const leases = this.leasesOf(def);
    if (!this.lockspace || leases.length === 0) return NONE;
    const held = await this.lockspace.acquire(leases, { domain: def.name, uuid: def.uuid }, ACQUIRE_WAIT_MS);
    const close = (): void => {
      for (const fd of held.values()) closeSync(fd);
      held.clear();
    };
    return {
      handTo: async (qmp) => {
        await handOver(this.security, qmp, { domain: def.name, uuid: def.uuid }, held);
        this.log.info({ domain: def.name, leases: [...held.keys()].map((l) => l.disk) }, 'disk leases handed to QEMU');
        close();
      },
      close,
    };
  }

  /** A lockspace other hosts may not share with this one is no lockspace for a migration: both must name the same. */
  private sameLockspace(lock: { driver: string; leases?: string } | undefined): LockState | undefined {
    if (lock === undefined) return undefined;
    const state = parseLockState(lock);
    if (!this.lockspace) {
      throw vmError(
        ErrorType.ConfigUnsupported,
        'the source holds disk leases but this host has no lockspace (VMFERRY_LOCKSPACE_DIR): the leases could not move with the domain',
      );
    }
    if (state.lockspace !== this.lockspace.id()) {
      throw vmError(
        ErrorType.ConfigUnsupported,
        `the source's lockspace (${state.lockspace}) is not this host's (${this.lockspace.id()} in ${this.lockspace.dir}): hosts that migrate to each other must share one lockspace`,
      );
    }
    return state;
  }

  /**
   * Prepare: every lease the incoming domain needs is free, or is one the
   * source's cookie lists and held for this same domain (the source runs until
   * the switchover). Nothing is taken here: Finish takes them.
   */
  async checkIncoming(def: DomainDef, taker: LeaseTaker, cookieLock: { driver: string; leases?: string } | undefined): Promise<void> {
    const state = this.sameLockspace(cookieLock);
    if (!this.lockspace) return;
    const moving = new Set(state?.leases.map((l) => l.key));
    for (const lease of this.leasesOf(def)) {
      if (moving.has(lease.key) && this.lockspace.holder(lease)?.uuid === taker.uuid) continue;
      if (!(await this.lockspace.isFree(lease))) throw this.lockspace.heldError(lease, taker);
    }
  }

  /** Finish: the lock state the source released, checked against this host's lockspace. */
  checkReleased(cookieLock: { driver: string; leases?: string } | undefined): LockState | undefined {
    return this.sameLockspace(cookieLock);
  }

  /** Refuses when a lease this domain would take is held by someone else (restore, before it begins anything). */
  async checkFree(def: DomainDef): Promise<void> {
    for (const lease of this.leasesOf(def)) {
      if (!(await this.lockspace!.isFree(lease))) throw this.lockspace!.heldError(lease, { domain: def.name, uuid: def.uuid });
    }
  }

  /**
   * Makes the domain's QEMU hold every lease it needs, taking the missing ones
   * (Finish before the CPUs start, a source resuming after its switchover
   * failed, resume, reconnect). DiskLeaseHeld when another holder has one.
   */
  async ensureHeld(dom: RunningDomain): Promise<void> {
    const missing = this.leasesOf(parseDomainXml(dom.domainXml)).filter((l) => !qemuHolds(dom.pid, l));
    if (!this.lockspace || missing.length === 0) return;
    const taken = await this.lockspace.acquire(missing, { domain: dom.name, uuid: dom.uuid }, ACQUIRE_WAIT_MS);
    try {
      await handOver(this.security, dom.qmp, { domain: dom.name, uuid: dom.uuid }, taken);
    } finally {
      for (const fd of taken.values()) closeSync(fd);
    }
    this.log.info({ domain: dom.name, leases: missing.map((l) => l.disk) }, 'disk leases taken by QEMU');
  }

  /**
   * A restarted worker finds its QEMUs holding their leases (they never left
   * them). A running guest that lacks one (a worker killed between taking a
   * lease and handing it over) takes it now; when someone else has it, the
   * guest is paused rather than left writing beside another holder.
   */
  async reconnected(dom: RunningDomain): Promise<void> {
    if (!this.lockspace || dom.state !== 'running') return;
    try {
      await this.ensureHeld(dom);
    } catch (err) {
      await dom.qmp.execute('stop');
      dom.setState('paused', 'lease-lost');
      this.log.error({ domain: dom.name, err: String(err) }, 'a running domain had lost a disk lease to another holder: paused');
    }
  }

  /** The source at the switchover, paused: QEMU lets go of every lease; the lock state says which, for the destination. */
  async release(dom: RunningDomain): Promise<{ driver: string; leases: string } | undefined> {
    const def = parseDomainXml(dom.domainXml);
    for (const lease of this.leasesOf(def)) {
      if (!qemuHolds(dom.pid, lease)) continue;
      await dom.qmp.execute('closefd', { fdname: fdName(lease) }).catch(() => undefined);
      if (qemuHolds(dom.pid, lease)) {
        throw vmError(ErrorType.OperationFailed, `QEMU of '${dom.name}' still holds the lease of ${lease.disk} after closefd`, { domain: dom.name });
      }
      this.log.info({ domain: dom.name, disk: lease.disk }, 'disk lease released');
    }
    return this.lockState(def);
  }
}
