// What a migration is asked to do and what it reports, shared by the migrate
// workflow, the host activities of each phase and the clients that start it.
// Flag names are libvirt's (virsh migrate --live, --persistent, ...).
import { HOST_NAME_PATTERN } from './constants.js';
import type { DomainInfo } from './domain-types.js';
import { ErrorType, vmError } from './errors.js';
import type { JobHeartbeat, JobProgress } from './job-types.js';
import { invalidDowntime, invalidSpeed } from './job-messages.js';
import { resolvePolicy, type ConvergencePolicy } from './convergence-policy.js';
import { checkParallel } from './parallel-migration.js';

export const MIGRATE_FLAGS = [
  'live',
  'peer2peer',
  'tunnelled',
  'tls',
  'persist-dest',
  'undefine-source',
  'paused',
  'unsafe',
  'change-protection',
  'abort-on-error',
  'auto-converge',
  'postcopy',
  'postcopy-after-precopy',
  'compressed',
  'offline',
  'copy-storage-all',
  'copy-storage-inc',
  'parallel',
] as const;
export type MigrateFlag = (typeof MIGRATE_FLAGS)[number];

/** libvirt's --copy-storage-all / --copy-storage-inc: the local disks move with the guest over NBD. */
export function copiesStorage(flags: readonly MigrateFlag[]): boolean {
  return flags.includes('copy-storage-all') || flags.includes('copy-storage-inc');
}

/** Whether QEMU encrypts the stream: 'tls', or 'tunnelled' (always TLS); an offline migration has no stream. */
export function streamEncrypted(flags: readonly MigrateFlag[]): boolean {
  return (flags.includes('tls') || flags.includes('tunnelled')) && !flags.includes('offline');
}

export type MigrationProtocol = 2 | 3;

export interface MigrateInput {
  /** Domain name on the source host. */
  domain: string;
  /**
   * The domain's UUID, when the caller knows it (it needs it for the workflow ID,
   * jobWorkflowId(uuid)); Begin refuses a domain whose UUID differs.
   */
  domainUuid?: string;
  sourceHost: string;
  destinationHost: string;
  flags?: MigrateFlag[];
  /** Initial speed limit, MiB/s; 0 or absent = unlimited. */
  bandwidthMiBps?: number;
  /** Initial max downtime, ms; absent = QEMU's default (300 ms). */
  maxDowntimeMs?: number;
  /** virsh migrate --postcopy-bandwidth: the speed limit once switched to post-copy, MiB/s; 0 or absent = unlimited. Needs 'postcopy'. */
  postcopyBandwidthMiBps?: number;
  /** The definition the destination should run (ABI-compatible with the source's). */
  destinationXml?: string;
  /** New name on the destination. */
  dname?: string;
  /** Where the destination listens, tcp:HOST[:PORT] (IPv6 in brackets); default: its migration address and a port from its range. */
  uri?: string;
  /** Highest protocol to use; default: the highest both hosts speak. */
  maxProtocol?: MigrationProtocol;
  /**
   * virsh migrate --timeout: when a live migration is still running this many
   * seconds after it started, the source pauses the guest so the stream converges
   * (libvirt's default timeout action, suspend); the destination runs it as usual.
   */
  timeoutSuspendSeconds?: number;
  /**
   * virsh migrate --migrate-disks: the target names (vda, sdb, ...) of the disks to copy with
   * copy-storage-all / -inc; absent: every writable disk with a source on storage this host does not share.
   */
  migrateDisks?: string[];
  /**
   * The convergence policy (src/common/convergence-policy.ts): a built-in's name or a
   * whole policy; changeable while the migration runs (Update setPolicy). Absent: none,
   * QEMU left to itself apart from the host's stall limit, as before policies existed.
   */
  policy?: string | ConvergencePolicy;
  /** virsh migrate --parallel-connections: multifd channels with 'parallel' (parallel-migration.ts); absent: 2, QEMU's default. */
  parallelConnections?: number;
}

/** What QEMU reported at the end of the migration (libvirt's domjobinfo --completed). */
export interface MigrationStats extends JobProgress {
  totalTimeMs?: number;
  /** QEMU's own downtime figure. */
  downtimeMs?: number;
  setupTimeMs?: number;
  transferredBytes?: number;
  /** Wall-clock ms (host clock) of the source's STOP event, when seen. */
  sourceStoppedAtMs?: number;
  postcopy?: boolean;
  /** Wall-clock ms (host clock) at which the --timeout action paused the guest on the source. */
  timeoutSuspendedAtMs?: number;
}

export interface MigrateResult {
  domain: string;
  uuid: string;
  protocol: MigrationProtocol;
  sourceHost: string;
  destinationHost: string;
  /** The domain on the destination after Finish. */
  destination: DomainInfo;
  stats: MigrationStats;
  /** Source STOP to destination RESUME (host clocks; skew between hosts is included). */
  measuredDowntimeMs?: number;
  /** Persistent on the destination. */
  persistent: boolean;
  /** The source definition was removed (undefine-source). */
  sourceUndefined: boolean;
  /** 'parallel': the multifd channels the destination QEMU ran the stream with, as it reported them at Finish. */
  parallelConnections?: number;
}

/** Heartbeat details of the Perform step: the job's progress plus what QEMU is applying right now. */
export interface MigrationHeartbeat extends JobHeartbeat {
  /** QEMU's migration status (setup, active, postcopy-active, completed, ...). */
  status: string;
  /** Applied speed limit, from query-migrate-parameters (0 = unlimited). */
  speedLimitMiBps?: number;
  /** Applied max downtime, from query-migrate-parameters. */
  maxDowntimeMs?: number;
  /** When the --timeout action paused the guest on the source (host clock ms). */
  timeoutSuspendedAtMs?: number;
}

// ---- phase inputs and outputs (they cross the activity boundary) ----------

/** Identifies one migration job on a host; the same for every step and retry of one workflow run. */
export interface MigrationJobRef {
  jobId: string;
  workflowId: string;
  runId: string;
}

export interface BeginArgs extends MigrationJobRef {
  domain: string;
  domainUuid?: string;
  /** The highest protocol the migration may use: v3 gets a cookie (used only if the destination speaks v3). */
  protocol: MigrationProtocol;
  flags: MigrateFlag[];
  destinationXml?: string;
  dname?: string;
  bandwidthMiBps?: number;
  maxDowntimeMs?: number;
  postcopyBandwidthMiBps?: number;
  /** copy-storage: the disks to copy, by target name (MigrateInput.migrateDisks). */
  migrateDisks?: string[];
}

export interface BeginResult {
  /** The definition the destination starts (migratable form, or the caller's, checked). */
  xml: string;
  /** v3 only. */
  cookie?: string;
  uuid: string;
  /** The domain ran when the job began (it is resumed on failure only then). */
  wasRunning: boolean;
  persistent: boolean;
  hostUuid: string;
  hostname: string;
  /** Protocol versions the source speaks. */
  protocolVersions: number[];
  /** The persistent definition differs from the live one (v2, without cookies, could not carry it). */
  persistentDiffers: boolean;
  /** The domain's disks are leased (host/leases/): only a v3 cookie can move the leases, so v2 is refused. */
  lockStateNeeded?: boolean;
  /** What Begin applied to QEMU, so later signals are compared against it. */
  bandwidthMiBps: number;
  maxDowntimeMs?: number;
  /** 'postcopy': the source's QEMU has the postcopy-preempt capability. */
  postcopyPreempt?: boolean;
}

export interface PrepareArgs extends MigrationJobRef {
  /** Name on the source (the cookie's name). */
  domain: string;
  uuid: string;
  xml: string;
  cookie?: string;
  dname?: string;
  flags: MigrateFlag[];
  sourceHostUuid: string;
  uri?: string;
  protocol: MigrationProtocol;
  /** The source host's name: with 'tunnelled', the only certificate name the destination accepts. */
  sourceHost?: string;
  /** 'tls' or 'tunnelled': the source certificate's subject, the only client QEMU's TLS accepts. */
  sourceTlsIdentity?: string;
  /** 'postcopy': the source can run postcopy-preempt (Begin's probe); the destination enables it only if it can too. */
  postcopyPreempt?: boolean;
  /** 'parallel': the multifd channel count, the same at both ends. */
  parallelConnections?: number;
}

/**
 * Where a tunnelled stream goes: the destination worker's tunnel listener and a
 * one-time token binding the connection to this job (it travels in workflow
 * history; the channel itself is authenticated by certificates).
 */
export interface MigrationTunnel {
  endpoint: string;
  token: string;
  /** The domain's name on the destination (its job record's key there). */
  name: string;
}

export interface PrepareResult {
  /** Name on the destination. */
  name: string;
  uri: string;
  port?: number;
  cookie?: string;
  /** 'tunnelled' only. */
  tunnel?: MigrationTunnel;
  /** The destination enabled postcopy-preempt: the source must too (both sides or neither). */
  postcopyPreempt?: boolean;
}

/** What a host offers for tunnelled migration (asked before anything is touched). */
export interface TunnelSupport {
  host: string;
  configured: boolean;
  endpoint?: string;
  /** The host certificate's subject as QEMU's TLS sees it (what a destination pins). */
  identity?: string;
}

export interface PerformArgs extends MigrationJobRef {
  domain: string;
  uuid: string;
  uri: string;
  cookie?: string;
  flags: MigrateFlag[];
  protocol: MigrationProtocol;
  destinationHost: string;
  /** 'tunnelled' only: from Prepare. */
  tunnel?: MigrationTunnel;
  timeoutSuspendSeconds?: number;
  /** From Prepare: enable postcopy-preempt on the source. */
  postcopyPreempt?: boolean;
  /** The convergence policy's settings QEMU needs before the stream starts. */
  tuning?: MigrationTuning;
  /** A migration with a convergence policy: the source signals its workflow progress samples (progress-signal.ts). */
  progressSamples?: boolean;
  /** 'parallel': the multifd channel count, the same at both ends. */
  parallelConnections?: number;
}

/** Auto-converge's throttle (percent) and the xbzrle cache; absent fields keep QEMU's values. */
export interface MigrationTuning {
  throttleInitialPercent?: number;
  throttleIncrementPercent?: number;
  maxThrottlePercent?: number;
  xbzrleCacheBytes?: number;
}

export interface PerformResult {
  stats: MigrationStats;
  cookie?: string;
  /**
   * The source switched to post-copy and Perform returned at the switch: the stream
   * still runs (pages are pulled by the destination), Finish starts the guest there at
   * once, and the source must not be resumed or killed before the stream completes.
   */
  postcopyRunning?: boolean;
}

export interface FinishArgs extends MigrationJobRef {
  /** Name on the destination. */
  name: string;
  /** Name on the source (cookies carry it). */
  domain: string;
  uuid: string;
  success: boolean;
  cookie?: string;
  flags: MigrateFlag[];
  /** The source was running when the job began: the destination starts its CPUs (unless `paused`). */
  wasRunning: boolean;
  protocol: MigrationProtocol;
  /** Perform returned at the post-copy switch: the guest starts while its pages still arrive. */
  postcopy?: boolean;
}

export interface FinishResult {
  domain?: DomainInfo;
  cookie?: string;
  /** Wall-clock ms (host clock) of the destination's RESUME, when it ran. */
  resumedAtMs?: number;
  persistent: boolean;
  /** 'parallel': the multifd channels the incoming QEMU had, read before Finish turned multifd off. */
  parallelConnections?: number;
}

export interface ConfirmArgs extends MigrationJobRef {
  domain: string;
  uuid: string;
  success: boolean;
  cookie?: string;
  flags: MigrateFlag[];
}

export interface ConfirmResult {
  sourceUndefined: boolean;
  /** On failure: the source was resumed. */
  resumed: boolean;
}

export interface OfflineArgs extends MigrationJobRef {
  name: string;
  uuid: string;
  persistentXml: string;
}

// ---- input validation (the workflow's first step; nothing has changed yet) --

const MAX_XML_CHARS = 1024 * 1024;
const MAX_URI_CHARS = 1024;
const FLAG_SET: ReadonlySet<string> = new Set(MIGRATE_FLAGS);

function invalid(message: string): Error {
  return vmError(ErrorType.OperationInvalid, message);
}

function checkName(what: string, v: unknown): void {
  if (typeof v !== 'string' || v.length === 0 || v.length > 255 || /[\u0000-\u001F\u007F/]/.test(v)) {
    throw invalid(`${what} must be 1..255 characters without '/' or control characters, got ${JSON.stringify(v)}`);
  }
}

/** Throws a typed OperationInvalid / ConfigUnsupported for a request that must not start. */
export function validateMigrateInput(input: MigrateInput): MigrateFlag[] {
  if (input === null || typeof input !== 'object') throw invalid('migrate needs an input object');
  checkName('domain name', input.domain);
  for (const [what, h] of [
    ['source host', input.sourceHost],
    ['destination host', input.destinationHost],
  ] as const) {
    if (typeof h !== 'string' || !HOST_NAME_PATTERN.test(h)) throw invalid(`bad ${what} name ${JSON.stringify(h)}`);
  }
  if (input.sourceHost === input.destinationHost) {
    throw invalid(`source and destination are the same host '${input.sourceHost}': migrating to the same host is refused`);
  }
  const flags = input.flags ?? [];
  if (!Array.isArray(flags)) throw invalid('flags must be a list of libvirt flag names');
  for (const f of flags) if (!FLAG_SET.has(f)) throw invalid(`unknown migration flag ${JSON.stringify(f)} (known: ${MIGRATE_FLAGS.join(', ')})`);
  const has = (f: MigrateFlag): boolean => flags.includes(f);
  if (has('offline')) {
    if (has('live')) throw invalid("flags 'live' and 'offline' are mutually exclusive");
    if (has('postcopy')) throw invalid("flags 'postcopy' and 'offline' are mutually exclusive");
    if (!has('persist-dest')) throw invalid("offline migration needs 'persist-dest': only the persistent definition moves");
  }
  // virsh refuses --postcopy-after-precopy without --postcopy the same way.
  if (has('postcopy-after-precopy') && !has('postcopy')) throw invalid("flag 'postcopy-after-precopy' needs 'postcopy'");
  if (has('tunnelled') && input.uri !== undefined) {
    throw invalid("a tunnelled migration takes no URI: the stream goes through the destination worker's tunnel listener");
  }
  if (input.bandwidthMiBps !== undefined) {
    const why = invalidSpeed(input.bandwidthMiBps);
    if (why) throw invalid(why);
  }
  if (input.maxDowntimeMs !== undefined) {
    const why = invalidDowntime(input.maxDowntimeMs);
    if (why) throw invalid(why);
  }
  if (input.postcopyBandwidthMiBps !== undefined) {
    const why = invalidSpeed(input.postcopyBandwidthMiBps);
    if (why) throw invalid(`post-copy ${why}`);
    if (!has('postcopy')) throw invalid("a post-copy bandwidth (postcopyBandwidthMiBps) needs 'postcopy'");
  }
  if (input.dname !== undefined) checkName('dname', input.dname);
  if (input.destinationXml !== undefined && (typeof input.destinationXml !== 'string' || input.destinationXml.length > MAX_XML_CHARS)) {
    throw invalid(`destination XML must be a string of at most ${MAX_XML_CHARS} characters`);
  }
  if (input.uri !== undefined && (typeof input.uri !== 'string' || input.uri.length === 0 || input.uri.length > MAX_URI_CHARS)) {
    throw invalid(`migration URI must be a string of 1..${MAX_URI_CHARS} characters`);
  }
  if (input.domainUuid !== undefined && (typeof input.domainUuid !== 'string' || !/^[0-9a-fA-F-]{32,36}$/.test(input.domainUuid))) {
    throw invalid(`domainUuid ${JSON.stringify(input.domainUuid)} is not a UUID`);
  }
  if (input.maxProtocol !== undefined && input.maxProtocol !== 2 && input.maxProtocol !== 3) throw invalid('maxProtocol must be 2 or 3');
  if (input.timeoutSuspendSeconds !== undefined) {
    const why = invalidTimeout(input.timeoutSuspendSeconds);
    if (why) throw invalid(why);
    // A non-live migration pauses the guest from the start: there is nothing left to suspend.
    if (!flags.includes('live')) throw invalid("a timeout (timeoutSuspendSeconds) needs a live migration (flag 'live')");
  }
  checkStorageCopy(input, flags);
  const byPolicy: MigrateFlag[] = [];
  if (input.policy !== undefined) {
    const live = flags.includes('live') && !flags.includes('offline');
    if (!live) throw invalid("a convergence policy needs a live migration (flag 'live')");
    const p = resolvePolicy(input.policy, flags.includes('postcopy'));
    if (typeof p === 'string') throw invalid(`policy: ${p}`);
    // What the policy needs QEMU to do from the stream's first byte: capabilities cannot change mid-stream.
    if (p.autoConverge) byPolicy.push('auto-converge');
    if (p.xbzrleCacheMiB) byPolicy.push('compressed');
  }
  const all = [...new Set([...flags, ...byPolicy])];
  checkParallel(input.parallelConnections, all);
  return all;
}

/** A disk's target name as libvirt's <target dev=...> spells it (vda, sdb, hdc, xvda1). */
const DISK_TARGET = /^[a-z][a-z0-9]{0,31}$/;
const MAX_MIGRATE_DISKS = 256;

/** libvirt's rules for --copy-storage-all / -inc and --migrate-disks; which disks exist is Begin's check. */
function checkStorageCopy(input: MigrateInput, flags: readonly MigrateFlag[]): void {
  const all = flags.includes('copy-storage-all');
  const inc = flags.includes('copy-storage-inc');
  if (all && inc) throw invalid("flags 'copy-storage-all' and 'copy-storage-inc' are mutually exclusive");
  const disks = input.migrateDisks;
  if (disks !== undefined) {
    if (!Array.isArray(disks) || disks.length === 0 || disks.length > MAX_MIGRATE_DISKS) {
      throw invalid(`migrateDisks must be a list of 1..${MAX_MIGRATE_DISKS} disk target names`);
    }
    for (const d of disks) {
      if (typeof d !== 'string' || !DISK_TARGET.test(d)) throw invalid(`migrateDisks: ${JSON.stringify(d)} is not a disk target name (e.g. vda)`);
    }
    if (new Set(disks).size !== disks.length) throw invalid('migrateDisks names a disk twice');
    if (!all && !inc) throw invalid("migrateDisks needs 'copy-storage-all' or 'copy-storage-inc'");
  }
  if (!all && !inc) return;
  if (flags.includes('offline')) throw invalid("an offline migration moves no disk data: 'copy-storage-all' / 'copy-storage-inc' need a running domain");
  if (flags.includes('postcopy')) {
    throw vmError(
      ErrorType.ConfigUnsupported,
      "'postcopy' with 'copy-storage-all' / 'copy-storage-inc' is not built: the disks are completed at a pre-copy switchover",
    );
  }
  if (input.maxProtocol === 2) throw vmError(ErrorType.ConfigUnsupported, 'copying storage needs protocol v3: the NBD port travels in the migration cookie');
}

/** A day: a guest that has not converged by then will not, and a bigger number is more likely a unit mistake. */
export const MAX_TIMEOUT_SUSPEND_SECONDS = 86_400;

/** Why `s` is not a usable migration timeout (whole seconds, 1..a day), or undefined. */
export function invalidTimeout(s: unknown): string | undefined {
  if (typeof s !== 'number' || !Number.isInteger(s) || s < 1 || s > MAX_TIMEOUT_SUSPEND_SECONDS) {
    return `timeout must be a whole number of seconds from 1 to ${MAX_TIMEOUT_SUSPEND_SECONDS}, got ${JSON.stringify(s) ?? String(s)}`;
  }
  return undefined;
}

/** The protocol both hosts speak (highest first), or undefined. */
export function pickProtocol(source: number[], destination: number[], max: MigrationProtocol = 3): MigrationProtocol | undefined {
  for (const v of [3, 2] as const) if (v <= max && source.includes(v) && destination.includes(v)) return v;
  return undefined;
}
