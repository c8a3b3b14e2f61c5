// multifd for a migration stream (libvirt's parallel migration): the channel count both
// ends must share, what a QEMU runs with now, and multifd off again once its stream is over.
// The capability itself is written with the stream's others (migration-params.ts), so one
// migration's choice never leaks into the next; the channel count is set only when multifd
// is on. Part of the migration engine (test/migration-engine-boundary.test.ts).
import { ErrorType, vmError } from '../common/errors.js';
import { setCapabilities } from './migration-params.js';
import type { QmpClient } from './qmp-client.js';

/** multifd-channels for the next stream; both ends must have the same (the destination waits for that many). */
export async function setMultifdChannels(qmp: QmpClient, channels: number): Promise<void> {
  await qmp.execute('migrate-set-parameters', { 'multifd-channels': channels });
}

export interface MultifdState {
  /** The multifd capability is on. */
  enabled: boolean;
  /** multifd-channels as QEMU applies it (absent on a QEMU without the parameter). */
  channels?: number;
}

/** What this QEMU runs its next (or current) stream with, from query-migrate-capabilities and query-migrate-parameters. */
export async function readMultifd(qmp: QmpClient): Promise<MultifdState> {
  const caps = await qmp.execute<{ capability?: unknown; state?: unknown }[]>('query-migrate-capabilities');
  if (!Array.isArray(caps)) throw vmError(ErrorType.InternalError, 'query-migrate-capabilities did not return a list');
  const enabled = caps.some((c) => c?.capability === 'multifd' && c.state === true);
  const params = await qmp.execute<{ 'multifd-channels'?: unknown }>('query-migrate-parameters');
  const channels = params?.['multifd-channels'];
  return { enabled, ...(typeof channels === 'number' ? { channels } : {}) };
}

/**
 * multifd off once the stream it was on for has ended (completed here, or undone): this QEMU's
 * next stream may be a save to one descriptor, which QEMU refuses to run with multifd.
 */
export async function clearMultifd(qmp: QmpClient): Promise<void> {
  await setCapabilities(qmp, { multifd: false });
}
