// Each side's part in a parallel (multifd) migration: the channel count set before the stream
// starts (the destination before it listens, the source before `migrate`), and multifd off
// again on whichever QEMU lives on once the stream is over, so its next stream (a save to one
// descriptor, a migration in one connection) is not refused. Which flags may be parallel at
// all is common/parallel-migration.ts; the capability is written with the stream's others.
import type { MigrateFlag } from '../../common/migration-types.js';
import { checkParallel } from '../../common/parallel-migration.js';
import { clearMultifd, readMultifd, setMultifdChannels } from '../../qemu/migration-engine-multifd.js';
import type { HostRuntime } from '../host-runtime.js';
import type { RunningDomain } from '../running-domain.js';

/**
 * The channel count for a step's flags (checked again here: a step's arguments are input too),
 * set on this end's QEMU; undefined, and nothing set, when the migration is not parallel.
 */
export async function applyParallel(dom: RunningDomain, flags: readonly MigrateFlag[], connections: number | undefined): Promise<number | undefined> {
  const n = checkParallel(connections, flags);
  if (n !== undefined) await setMultifdChannels(dom.qmp, n);
  return n;
}

/**
 * The destination at Finish: the channels its QEMU ran the stream with (QEMU's own account),
 * then multifd off. A failure to read or reset is logged: the guest runs here now.
 */
export async function endParallelIncoming(rt: HostRuntime, dom: RunningDomain, flags: readonly MigrateFlag[]): Promise<number | undefined> {
  if (!flags.includes('parallel')) return undefined;
  const state = await readMultifd(dom.qmp).catch((err: unknown) => {
    rt.log.warn({ domain: dom.name, err: String(err) }, 'could not read the multifd state of the incoming migration');
    return undefined;
  });
  await resetParallel(rt, dom, flags);
  rt.log.info({ domain: dom.name, multifd: state?.enabled, channels: state?.channels }, 'parallel migration received');
  return state?.enabled ? state.channels : undefined;
}

/** multifd off after a parallel stream on this QEMU ended (the source resumed after a failure, the destination at Finish). */
export async function resetParallel(rt: HostRuntime, dom: RunningDomain, flags: readonly MigrateFlag[]): Promise<void> {
  if (!flags.includes('parallel')) return;
  await clearMultifd(dom.qmp).catch((err: unknown) => rt.log.warn({ domain: dom.name, err: String(err) }, 'could not turn multifd off after the migration'));
}
