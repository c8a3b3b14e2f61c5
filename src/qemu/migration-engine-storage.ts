// The storage half of QEMU's migration engine (libvirt's NBD path): the
// destination exports the images it created from its NBD server, the source
// mirrors each copied disk into that export (blockdev-mirror onto an NBD
// client node) until every mirror is ready, and at the switchover the ready
// mirrors are completed while the guest is paused before its device state
// goes (pause-before-switchover, then migrate-continue). With
// migration-engine.ts this is the only code that sends these commands
// (test/migration-engine-boundary.test.ts). Disks are -drive backends named
// drive-<target> (devices/disk.ts); the export and the mirror job take that name.
import type { QmpClient, QmpExecuteOptions } from './qmp-client.js';

type Deadline = Pick<QmpExecuteOptions, 'timeoutMs'>;

/** The -drive backend of a disk, the name of its NBD export, and of its mirror job. */
export function driveName(target: string): string {
  return `drive-${target}`;
}

/** The source's NBD client node for a disk's destination export. */
export function mirrorTargetNode(target: string): string {
  return `migration-${target}-storage`;
}

export interface BlockImageInfo {
  target: string;
  /** The node QEMU opened for the disk (its format layer), what an export names. */
  nodeName?: string;
  format?: string;
  virtualSizeBytes?: number;
  /** Bytes the image takes on its host (what the copy needs room for). */
  actualSizeBytes?: number;
  clusterSizeBytes?: number;
  /** The backing file as the image names it, and its format. */
  backingFile?: string;
  backingFormat?: string;
}

interface QueryBlockEntry {
  device?: string;
  inserted?: {
    'node-name'?: string;
    image?: {
      format?: string;
      'virtual-size'?: number;
      'actual-size'?: number;
      'cluster-size'?: number;
      'backing-filename'?: string;
      'backing-filename-format'?: string;
    };
  };
}

/** What QEMU has open for each disk (query-block), by target name. */
export async function queryBlockImages(qmp: QmpClient): Promise<Map<string, BlockImageInfo>> {
  const out = new Map<string, BlockImageInfo>();
  for (const b of await qmp.execute<QueryBlockEntry[]>('query-block')) {
    if (typeof b.device !== 'string' || !b.device.startsWith('drive-')) continue;
    const target = b.device.slice('drive-'.length);
    const img = b.inserted?.image;
    const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);
    const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
    const info: BlockImageInfo = { target };
    const fields: Partial<BlockImageInfo> = {
      nodeName: str(b.inserted?.['node-name']),
      format: str(img?.format),
      virtualSizeBytes: num(img?.['virtual-size']),
      actualSizeBytes: num(img?.['actual-size']),
      clusterSizeBytes: num(img?.['cluster-size']),
      backingFile: str(img?.['backing-filename']),
      backingFormat: str(img?.['backing-filename-format']),
    };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) (info as unknown as Record<string, unknown>)[k] = v;
    out.set(target, info);
  }
  return out;
}

// ---- destination: the NBD server ------------------------------------------

/** Where an NBD server listens or a client connects: a TCP address, or a unix socket (tunnelled: the workers carry it). */
export type NbdAddress = { host: string; port: number } | { unixPath: string };

export type NbdServerOptions = NbdAddress & {
  /** The tls-creds-x509 object (server endpoint) and the authz object that pins the source. */
  tlsCreds?: string;
  tlsAuthz?: string;
};

export async function startNbdServer(qmp: QmpClient, o: NbdServerOptions): Promise<void> {
  await qmp.execute('nbd-server-start', {
    addr: 'unixPath' in o ? { type: 'unix', data: { path: o.unixPath } } : { type: 'inet', data: { host: o.host, port: String(o.port) } },
    ...(o.tlsCreds ? { 'tls-creds': o.tlsCreds } : {}),
    ...(o.tlsAuthz ? { 'tls-authz': o.tlsAuthz } : {}),
  });
}

/** Exports a disk's image writable under its drive name; QEMU activates the incoming image for it. */
export async function exportDisk(qmp: QmpClient, target: string, nodeName: string): Promise<void> {
  const name = driveName(target);
  await qmp.execute('block-export-add', { type: 'nbd', id: name, 'node-name': nodeName, name, writable: true });
}

/** Stops the server and with it every export (QEMU drops them); an error if none runs is the caller's to ignore. */
export async function stopNbdServer(qmp: QmpClient, deadline?: Deadline): Promise<void> {
  await qmp.execute('nbd-server-stop', undefined, deadline);
}

export interface BlockExportInfo {
  id: string;
  'node-name'?: string;
  type?: string;
}

export async function queryBlockExports(qmp: QmpClient): Promise<BlockExportInfo[]> {
  return await qmp.execute<BlockExportInfo[]>('query-block-exports');
}

// ---- source: the mirrors ---------------------------------------------------

export type MirrorOptions = NbdAddress & {
  target: string;
  sync: 'full' | 'top';
  /** bytes/s; 0 = unlimited. */
  speedBytes: number;
  /** The tls-creds-x509 object (client endpoint) and the name the destination's certificate must carry. */
  tlsCreds?: string;
  tlsHostname?: string;
};

/** Opens the destination's export as an NBD client node and mirrors the disk into it. Repeatable for one disk only after abortMirror. */
export async function startMirror(qmp: QmpClient, o: MirrorOptions): Promise<void> {
  const node = mirrorTargetNode(o.target);
  await qmp.execute('blockdev-add', {
    driver: 'nbd',
    'node-name': node,
    server: 'unixPath' in o ? { type: 'unix', path: o.unixPath } : { type: 'inet', host: o.host, port: String(o.port) },
    export: driveName(o.target),
    ...(o.tlsCreds ? { 'tls-creds': o.tlsCreds } : {}),
    ...(o.tlsHostname ? { 'tls-hostname': o.tlsHostname } : {}),
  });
  try {
    await qmp.execute('blockdev-mirror', {
      'job-id': driveName(o.target),
      device: driveName(o.target),
      target: node,
      sync: o.sync,
      speed: o.speedBytes,
      // The job stays listed after it ends, so its outcome is read before it goes.
      'auto-dismiss': false,
    });
  } catch (err) {
    await removeMirrorTarget(qmp, o.target).catch(() => undefined);
    throw err;
  }
}

export interface BlockJobInfo {
  device: string;
  type?: string;
  len: number;
  offset: number;
  ready: boolean;
  status?: string;
  speed?: number;
  error?: string;
}

export async function queryBlockJobs(qmp: QmpClient, deadline?: Deadline): Promise<BlockJobInfo[]> {
  return await qmp.execute<BlockJobInfo[]>('query-block-jobs', undefined, deadline);
}

/** A ready mirror cancelled without force completes cleanly: the target holds every write made before (libvirt's way). */
export async function completeMirror(qmp: QmpClient, target: string): Promise<void> {
  await qmp.execute('block-job-cancel', { device: driveName(target) });
}

/** Stops a mirror at once, whatever the target holds. */
export async function abortMirror(qmp: QmpClient, target: string, deadline?: Deadline): Promise<void> {
  await qmp.execute('block-job-cancel', { device: driveName(target), force: true }, deadline);
}

/** Removes a concluded job from QEMU's list (auto-dismiss is off). */
export async function dismissMirror(qmp: QmpClient, target: string): Promise<void> {
  await qmp.execute('job-dismiss', { id: driveName(target) });
}

export async function setMirrorSpeed(qmp: QmpClient, target: string, speedBytes: number): Promise<void> {
  await qmp.execute('block-job-set-speed', { device: driveName(target), speed: speedBytes });
}

/** Drops the NBD client node once its mirror has ended. */
export async function removeMirrorTarget(qmp: QmpClient, target: string): Promise<void> {
  await qmp.execute('blockdev-del', { 'node-name': mirrorTargetNode(target) });
}

/** The last step of a switchover paused for the disks: QEMU sends the device state and completes. */
export async function continueAfterPreSwitchover(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-continue', { state: 'pre-switchover' });
}
