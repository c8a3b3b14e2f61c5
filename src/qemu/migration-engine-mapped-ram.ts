// The migration engine's half for libvirt's sparse image: QEMU's mapped-ram stream to a
// `file:` URI, written (or read) by several multifd channels at once. QEMU never opens the
// image by name (its outgoing file: channel would truncate it, and with it our header): the
// worker opens the image and hands the descriptors over into an fdset (`add-fd`), and the
// URI names `/dev/fdset/N` with the offset where the stream starts. Each multifd channel
// dups a descriptor of the set whose access mode (and O_DIRECT, with direct-io) matches.
// Like the other engine files, the only place these commands are sent from.
import type { QmpClient } from './qmp-client.js';

/** Marks the fdsets a sparse save or restore hands over, so a rollback finds a crashed worker's. */
export const IMAGE_FDSET_OPAQUE = 'vmferry-sparse-image';

export interface MappedRamSettings {
  channels: number;
  /** --bypass-cache: QEMU reads and writes the pages with O_DIRECT (an O_DIRECT descriptor must be in the set). */
  directIo: boolean;
  /** Source only, test fault points: QEMU stops at pre-switchover (RAM written, device state not yet). */
  pauseBeforeSwitchover?: boolean;
}

/** Capabilities and parameters for one sparse stream; written in full (events on, the rest as asked). */
export async function setMappedRam(qmp: QmpClient, s: MappedRamSettings): Promise<void> {
  const caps: Record<string, boolean> = { events: true, 'mapped-ram': true, multifd: true };
  if (s.pauseBeforeSwitchover !== undefined) caps['pause-before-switchover'] = s.pauseBeforeSwitchover;
  await qmp.execute('migrate-set-capabilities', { capabilities: Object.entries(caps).map(([capability, state]) => ({ capability, state })) });
  const params: Record<string, unknown> = { 'multifd-channels': s.channels };
  // Only named when on: a QEMU without direct-io was refused before, and off is its default.
  if (s.directIo) params['direct-io'] = true;
  await qmp.execute('migrate-set-parameters', params);
}

/**
 * Back to a plain stream after a sparse one (or its rollback): a later migration of this QEMU
 * writes only the capabilities it knows about, so mapped-ram and multifd must not stay on.
 */
export async function clearMappedRam(qmp: QmpClient): Promise<void> {
  const known = new Set(((await qmp.execute<{ capability: string }[]>('query-migrate-capabilities')) ?? []).map((c) => c.capability));
  const off = ['mapped-ram', 'multifd', 'pause-before-switchover'].filter((c) => known.has(c));
  await qmp.execute('migrate-set-capabilities', { capabilities: off.map((capability) => ({ capability, state: false })) });
  const params = await qmp.execute<Record<string, unknown>>('query-migrate-parameters');
  if (params['direct-io'] === true) await qmp.execute('migrate-set-parameters', { 'direct-io': false });
}

/** Hands the image's descriptors to QEMU as one fdset; returns its id. */
export async function addImageFdset(qmp: QmpClient, fds: readonly number[]): Promise<number> {
  let fdset: number | undefined;
  for (const fd of fds) {
    const args: Record<string, unknown> = { opaque: IMAGE_FDSET_OPAQUE };
    if (fdset !== undefined) args['fdset-id'] = fdset;
    const r = await qmp.execute<{ 'fdset-id': number }>('add-fd', args, { fds: [fd] });
    fdset = r['fdset-id'];
  }
  if (fdset === undefined) throw new Error('addImageFdset needs at least one descriptor');
  return fdset;
}

/** Lets go of the fdsets handed over for sparse images (QEMU closes each once no channel uses it). */
export async function removeImageFdsets(qmp: QmpClient, only?: number): Promise<void> {
  const sets = await qmp.execute<{ 'fdset-id': number; fds: { opaque?: string }[] }[]>('query-fdsets');
  for (const set of sets ?? []) {
    if (only !== undefined ? set['fdset-id'] !== only : !set.fds.some((f) => f.opaque === IMAGE_FDSET_OPAQUE)) continue;
    await qmp.execute('remove-fd', { 'fdset-id': set['fdset-id'] });
  }
}

/** The file: URI of an fdset, the stream starting `offset` bytes into the image. */
export function fdsetFileUri(fdset: number, offset: number): string {
  return `file:/dev/fdset/${fdset},offset=${offset}`;
}

/** Out of pre-switchover (pause-before-switchover): QEMU writes the device state and completes. */
export async function continueFromPreSwitchover(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-continue', { state: 'pre-switchover' });
}
