// Migration flags and limits in QEMU's terms: which capabilities a migration
// runs with (migrate-set-capabilities) and its speed and downtime limits
// (migrate-set-parameters). Capabilities are always written in full, so one
// migration's choice never leaks into the next.
import { ErrorType, isVmError, vmError } from '../common/errors.js';
import type { MigrateFlag } from '../common/migration-types.js';
import type { QmpClient } from '../qemu/qmp-client.js';

/** libvirt's "unlimited": the largest MiB/s whose byte count QEMU's int64 holds, capped to JS's exact integers. */
export const UNLIMITED_BANDWIDTH_BYTES = Number.MAX_SAFE_INTEGER;

export function bandwidthBytes(mibps: number): number {
  return mibps === 0 ? UNLIMITED_BANDWIDTH_BYTES : Math.min(mibps * 1024 * 1024, UNLIMITED_BANDWIDTH_BYTES);
}

export type CapabilityName = 'events' | 'auto-converge' | 'xbzrle' | 'postcopy-ram';

/** The source's capabilities for these flags. `events` always: the monitor waits on MIGRATION events. */
export function sourceCapabilities(flags: readonly MigrateFlag[]): Record<CapabilityName, boolean> {
  return {
    events: true,
    'auto-converge': flags.includes('auto-converge'),
    xbzrle: flags.includes('compressed'),
    'postcopy-ram': flags.includes('postcopy'),
  };
}

/** The destination must agree to post-copy before the stream starts; the rest is the source's business. */
export function destinationCapabilities(flags: readonly MigrateFlag[]): Partial<Record<CapabilityName, boolean>> {
  return { events: true, 'postcopy-ram': flags.includes('postcopy') };
}

export async function setCapabilities(qmp: QmpClient, caps: Partial<Record<CapabilityName, boolean>>): Promise<void> {
  const capabilities = Object.entries(caps).map(([capability, state]) => ({ capability, state }));
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

/** migrate-set-parameters arguments for a speed (MiB/s, 0 = unlimited) and max downtime (ms). */
export function limitParameters(limits: { bandwidthMiBps?: number; maxDowntimeMs?: number }): Record<string, number> {
  const out: Record<string, number> = {};
  // QEMU's default is 32 MiB/s; libvirt's (and ours) is unlimited unless asked.
  out['max-bandwidth'] = bandwidthBytes(limits.bandwidthMiBps ?? 0);
  if (limits.maxDowntimeMs !== undefined) out['downtime-limit'] = limits.maxDowntimeMs;
  return out;
}

export async function setLimits(qmp: QmpClient, limits: { bandwidthMiBps?: number; maxDowntimeMs?: number }): Promise<void> {
  await qmp.execute('migrate-set-parameters', limitParameters(limits));
}

export interface AppliedLimits {
  speedLimitMiBps: number;
  maxDowntimeMs: number;
}

/** What QEMU applies now, in our units (query-migrate-parameters). */
export async function readLimits(qmp: QmpClient): Promise<AppliedLimits> {
  const p = await qmp.execute<{ 'max-bandwidth'?: number; 'downtime-limit'?: number }>('query-migrate-parameters');
  const bytes = p['max-bandwidth'] ?? 0;
  return {
    speedLimitMiBps: bytes >= bandwidthBytes(0) ? 0 : Math.round(bytes / (1024 * 1024)),
    maxDowntimeMs: p['downtime-limit'] ?? 0,
  };
}
