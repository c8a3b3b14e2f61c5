// Migration flags and parameters in QEMU's terms: which capabilities a migration
// runs with (migrate-set-capabilities), its speed and downtime limits and TLS
// settings (migrate-set-parameters), and what QEMU applies now
// (query-migrate-parameters). A migration's capabilities are written in full,
// so one migration's choice never leaks into the next.
import { ErrorType, isVmError, vmError } from '../common/errors.js';
import type { MigrateFlag, MigrationTuning } from '../common/migration-types.js';
import type { QmpClient } from './qmp-client.js';

/** libvirt's "unlimited": the largest MiB/s whose byte count QEMU's int64 holds, capped to JS's exact integers. */
export const UNLIMITED_BANDWIDTH_BYTES = Number.MAX_SAFE_INTEGER;

export function bandwidthBytes(mibps: number): number {
  return mibps === 0 ? UNLIMITED_BANDWIDTH_BYTES : Math.min(mibps * 1024 * 1024, UNLIMITED_BANDWIDTH_BYTES);
}

export type CapabilityName = 'events' | 'auto-converge' | 'xbzrle' | 'postcopy-ram' | 'pause-before-switchover' | 'postcopy-preempt' | 'multifd';

/**
 * `preempt`: undefined when this QEMU has no postcopy-preempt capability (the key is then
 * left out, as QEMU refuses a capability it does not know); else whether to enable it.
 */
function preemptCapability(preempt: boolean | undefined): Partial<Record<CapabilityName, boolean>> {
  return preempt === undefined ? {} : { 'postcopy-preempt': preempt };
}

/**
 * The source's capabilities for these flags. `events` always: the monitor waits on MIGRATION events.
 * `pauseBeforeSwitchover` (storage copy): QEMU stops at pre-switchover, guest paused, until the disk
 * mirrors are completed and migrate-continue lets the device state go.
 */
export function sourceCapabilities(
  flags: readonly MigrateFlag[],
  o: { pauseBeforeSwitchover?: boolean; preempt?: boolean } = {},
): Partial<Record<CapabilityName, boolean>> {
  return {
    events: true,
    'auto-converge': flags.includes('auto-converge'),
    xbzrle: flags.includes('compressed'),
    'postcopy-ram': flags.includes('postcopy'),
    'pause-before-switchover': o.pauseBeforeSwitchover === true,
    // Always written: off, it is left out on a QEMU that lacks it (setCapabilities).
    multifd: flags.includes('parallel'),
    ...preemptCapability(o.preempt),
  };
}

/** The destination must agree to post-copy (and its preempt channel) before the stream starts; the rest is the source's business. */
export function destinationCapabilities(flags: readonly MigrateFlag[], o: { preempt?: boolean } = {}): Partial<Record<CapabilityName, boolean>> {
  return { events: true, 'postcopy-ram': flags.includes('postcopy'), multifd: flags.includes('parallel'), ...preemptCapability(o.preempt) };
}

/** Whether this QEMU knows migration capability `name` (query-migrate-capabilities lists every one it has). */
export async function hasCapability(qmp: QmpClient, name: CapabilityName): Promise<boolean> {
  const caps = await qmp.execute<{ capability?: unknown }[]>('query-migrate-capabilities');
  return Array.isArray(caps) && caps.some((c) => c?.capability === name);
}

/** The names query-migrate-capabilities lists, in QEMU's order. */
export function parseMigrationCapabilities(raw: unknown): string[] {
  if (!Array.isArray(raw)) throw vmError(ErrorType.InternalError, 'query-migrate-capabilities did not return a list');
  return raw.map((c: unknown) => {
    const name = (c as { capability?: unknown } | null)?.capability;
    if (typeof name !== 'string') throw vmError(ErrorType.InternalError, 'query-migrate-capabilities listed a capability without a name');
    return name;
  });
}

/** Every migration capability this QEMU knows (what migrate-set-capabilities accepts), in its order. */
export async function migrationCapabilityNames(qmp: QmpClient): Promise<string[]> {
  return parseMigrationCapabilities(await qmp.execute('query-migrate-capabilities'));
}

/**
 * Writes `caps` as this QEMU can take them: a capability to turn off that the running QEMU does
 * not know is left out (another QEMU version has another list, and off is what it is anyway);
 * one to turn on that it does not know is refused, as Begin and Prepare refuse it from the probe.
 */
export async function setCapabilities(qmp: QmpClient, caps: Partial<Record<CapabilityName, boolean>>): Promise<void> {
  const known = new Set(await migrationCapabilityNames(qmp));
  const unknownOn = Object.entries(caps)
    .filter(([c, on]) => on === true && !known.has(c))
    .map(([c]) => c);
  if (unknownOn.length > 0) {
    throw vmError(ErrorType.ConfigUnsupported, `this QEMU has no migration capability ${unknownOn.map((c) => `'${c}'`).join(', ')}`, {
      capabilities: unknownOn,
    });
  }
  const capabilities = Object.entries(caps)
    .filter(([c]) => known.has(c))
    .map(([capability, state]) => ({ capability, state }));
  try {
    await qmp.execute('migrate-set-capabilities', { capabilities });
  } catch (err) {
    // QEMU refuses a capability the host cannot do (post-copy without userfaultfd): a configuration problem, not a fault.
    if (isVmError(err, ErrorType.QmpError)) {
      throw vmError(ErrorType.ConfigUnsupported, `QEMU refused migration capabilities ${JSON.stringify(caps)}: ${err.message}`, { capabilities: caps });
    }
    throw err;
  }
}

/**
 * After an incoming stream with post-copy: off again, so this QEMU's next stream (a save to a
 * file, a migration that sets fewer capabilities) does not run with them; preempt would want a
 * second channel that a file has not.
 */
export async function clearPostcopyCapabilities(qmp: QmpClient): Promise<void> {
  const preempt = await hasCapability(qmp, 'postcopy-preempt');
  await setCapabilities(qmp, { 'postcopy-ram': false, ...preemptCapability(preempt ? false : undefined) });
}

/**
 * Only `events`, for a save or restore stream (its progress is watched through
 * MIGRATION events). QEMU has no reason to refuse it, so its error stays as QEMU's.
 */
export async function enableMigrationEvents(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
}

export interface MigrationLimits {
  /** 0 or absent = unlimited. */
  bandwidthMiBps?: number;
  maxDowntimeMs?: number;
  /** After the switch to post-copy; 0 or absent = unlimited. */
  postcopyBandwidthMiBps?: number;
}

/** migrate-set-parameters arguments for a speed (MiB/s, 0 = unlimited) and max downtime (ms). */
function limitParameters(limits: MigrationLimits): Record<string, number> {
  const out: Record<string, number> = {};
  // QEMU's default is 32 MiB/s; libvirt's (and ours) is unlimited unless asked.
  out['max-bandwidth'] = bandwidthBytes(limits.bandwidthMiBps ?? 0);
  if (limits.maxDowntimeMs !== undefined) out['downtime-limit'] = limits.maxDowntimeMs;
  // QEMU's 0 is unlimited here; set every time so an earlier migration's limit does not stay.
  out['max-postcopy-bandwidth'] = limits.postcopyBandwidthMiBps ? bandwidthBytes(limits.postcopyBandwidthMiBps) : 0;
  return out;
}

/** A migration's limits before it starts: an absent speed is unlimited, an absent downtime is left as QEMU has it. */
export async function setLimits(qmp: QmpClient, limits: MigrationLimits): Promise<void> {
  await qmp.execute('migrate-set-parameters', limitParameters(limits));
}

/** The speed limit alone, in bytes/s as QEMU takes it (a save stores and restores the caller's value this way). */
export async function setMaxBandwidthBytes(qmp: QmpClient, bytes: number): Promise<void> {
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': bytes });
}

/** The speed limit alone, in MiB/s (0 = unlimited), e.g. a running job's migrate-setspeed. */
export async function setSpeedLimit(qmp: QmpClient, mibps: number): Promise<void> {
  await setMaxBandwidthBytes(qmp, bandwidthBytes(mibps));
}

/** The max downtime alone, e.g. a running job's migrate-setmaxdowntime. */
/** Auto-converge's throttle and the xbzrle cache; the throttle may change while the stream runs. */
export async function setTuning(qmp: QmpClient, t: MigrationTuning): Promise<void> {
  const p: Record<string, number> = {};
  if (t.throttleInitialPercent !== undefined) p['cpu-throttle-initial'] = t.throttleInitialPercent;
  if (t.throttleIncrementPercent !== undefined) p['cpu-throttle-increment'] = t.throttleIncrementPercent;
  if (t.maxThrottlePercent !== undefined) p['max-cpu-throttle'] = t.maxThrottlePercent;
  if (t.xbzrleCacheBytes !== undefined) p['xbzrle-cache-size'] = t.xbzrleCacheBytes;
  if (Object.keys(p).length > 0) await qmp.execute('migrate-set-parameters', p);
}

export async function setDowntimeLimit(qmp: QmpClient, ms: number): Promise<void> {
  await qmp.execute('migrate-set-parameters', { 'downtime-limit': ms });
}

/** QEMU's migration TLS settings; empty strings turn each one off. */
export interface MigrationTlsParameters {
  creds: string;
  hostname: string;
  authz: string;
}

export async function setTlsParameters(qmp: QmpClient, p: MigrationTlsParameters): Promise<void> {
  await qmp.execute('migrate-set-parameters', { 'tls-creds': p.creds, 'tls-hostname': p.hostname, 'tls-authz': p.authz });
}

interface QueriedParameters {
  'max-bandwidth'?: number;
  'downtime-limit'?: number;
}

async function queryParameters(qmp: QmpClient): Promise<QueriedParameters> {
  return await qmp.execute<QueriedParameters>('query-migrate-parameters');
}

/** QEMU's speed limit in bytes/s as it stands, to be put back later with setMaxBandwidthBytes. */
export async function readMaxBandwidthBytes(qmp: QmpClient): Promise<number | undefined> {
  return (await queryParameters(qmp))['max-bandwidth'];
}

export interface AppliedLimits {
  speedLimitMiBps: number;
  maxDowntimeMs: number;
}

/** What QEMU applies now, in our units. */
export async function readLimits(qmp: QmpClient): Promise<AppliedLimits> {
  const p = await queryParameters(qmp);
  const bytes = p['max-bandwidth'] ?? 0;
  return {
    speedLimitMiBps: bytes >= bandwidthBytes(0) ? 0 : Math.round(bytes / (1024 * 1024)),
    maxDowntimeMs: p['downtime-limit'] ?? 0,
  };
}

/**
 * Self-announce: when an incoming migration completes QEMU sends a RARP from
 * every NIC's MAC (and asks a virtio-net guest to announce itself), so switches
 * learn where the guest went; it does so announce-rounds times. QEMU's default
 * is on (5 rounds); a destination never runs with it off.
 */
export async function ensureSelfAnnounce(qmp: QmpClient): Promise<number> {
  const p = await qmp.execute<{ 'announce-rounds'?: number }>('query-migrate-parameters');
  const rounds = p['announce-rounds'] ?? 0;
  if (rounds > 0) return rounds;
  await qmp.execute('migrate-set-parameters', { 'announce-rounds': 5 });
  return 5;
}
