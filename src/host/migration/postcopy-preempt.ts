// Whether a post-copy migration runs with postcopy-preempt, probed on each side's QEMU.
import type { MigrateFlag } from '../../common/migration-types.js';
import { hasCapability } from '../../qemu/migration-params.js';
import type { RunningDomain } from '../running-domain.js';

/**
 * postcopy-preempt (QEMU >= 7.1) sends faulted pages on a channel of their own, ahead of
 * the background stream. It opens a second connection to the destination's address:
 * a tunnelled stream (an fd: URI) has none, and TLS on that channel is not tried here.
 */
export async function postcopyPreemptFor(dom: RunningDomain, flags: readonly MigrateFlag[]): Promise<boolean> {
  if (!flags.includes('postcopy') || flags.includes('tunnelled') || flags.includes('tls')) return false;
  return await hasCapability(dom.qmp, 'postcopy-preempt').catch(() => false);
}
