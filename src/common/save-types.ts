// Save to file, restore, managed save: what the workflows take and return, and
// the plans their host activities hand each other. Plain JSON only: these cross
// the activity boundary and sit in workflow history.
//
// Every job on a domain runs as workflow jobWorkflowId(uuid) with
// workflowIdConflictPolicy FAIL (design §3); a client that knows only the name
// asks the host for the UUID first (domainOperation info), and for a restore
// reads it from the image (saveImageXml dumpxml).
import type { SaveFormatName } from './save-formats.js';
import { HOST_NAME_PATTERN } from './constants.js';
import { invalidDomainName } from './domain-name.js';
import type { DomainInfo } from './domain-types.js';
import { ErrorType, vmError } from './errors.js';
import type { JobHeartbeat } from './job-types.js';

export type { SaveFormatName } from './save-formats.js';
export const SAVE_FORMAT_NAMES: readonly SaveFormatName[] = ['raw', 'gzip', 'bzip2', 'xz', 'lzop', 'zstd', 'sparse'];
/** QEMU's multifd-channels is a uint8 from 1. */
export const MAX_PARALLEL_CHANNELS = 255;

/** libvirt's --running / --paused: override the state the domain comes back in. */
export interface RunStateOverride {
  running?: boolean;
  paused?: boolean;
}

export interface SaveInput extends RunStateOverride {
  host: string;
  /** Domain name on that host. */
  name: string;
  /** When given, Begin refuses a domain with another UUID. */
  domainUuid?: string;
  /** Absolute path on the host; its directory must exist. */
  path: string;
  /** Default raw. */
  format?: SaveFormatName;
  /** Replace an existing file at `path` (libvirt always does; vmferry asks). */
  overwrite?: boolean;
  /** libvirt's --bypass-cache: the image is written with O_DIRECT. */
  bypassCache?: boolean;
  /** An ABI-compatible definition to store in the image instead of the live one (save --xml). */
  xml?: string;
  /** libvirt's --parallel-channels: a sparse image written by this many multifd channels (implies format sparse). */
  parallelChannels?: number;
}

export interface RestoreInput extends RunStateOverride {
  host: string;
  path: string;
  /** An ABI-compatible definition to start instead of the one in the image (restore --xml). */
  xml?: string;
  bypassCache?: boolean;
  /** libvirt's --parallel-channels: a sparse image is read by this many multifd channels (default 1). */
  parallelChannels?: number;
}

export interface ManagedSaveInput extends RunStateOverride {
  host: string;
  name: string;
  domainUuid?: string;
  format?: SaveFormatName;
  bypassCache?: boolean;
}

export interface ManagedStartInput {
  host: string;
  name: string;
  domainUuid?: string;
  paused?: boolean;
  bypassCache?: boolean;
  /** libvirt's start --force-boot: discard the managed-save image and boot afresh. */
  forceBoot?: boolean;
}

export interface ManagedSaveRemoveInput {
  host: string;
  name: string;
}

export type SaveImageXmlInput =
  /** securityInfo: keep graphics passwords in the answer (libvirt's --security-info); stripped otherwise. */
  { host: string; op: 'dumpxml'; path: string; securityInfo?: boolean } | { host: string; op: 'define'; path: string; xml: string };

// ---- host activity plans ---------------------------------------------------

/** Identifies one job on a host: the same for every step and retry of one workflow run. */
export interface SaveJobRef {
  jobId: string;
}

export interface SaveBeginArgs extends SaveJobRef, RunStateOverride {
  name: string;
  domainUuid?: string;
  /** Absent for a managed save: the host picks its own path. */
  path?: string;
  managed?: boolean;
  format: SaveFormatName;
  overwrite: boolean;
  bypassCache: boolean;
  xml?: string;
  /** Sparse only (checkSaveFormat): how many multifd channels write the image. */
  parallelChannels?: number;
}

export interface SavePlan extends SaveJobRef {
  name: string;
  uuid: string;
  path: string;
  format: SaveFormatName;
  bypassCache: boolean;
  /** Sparse only: how many multifd channels write the image. */
  parallelChannels?: number;
  /** The header's was_running word: the state a restore brings the domain back in. */
  wasRunning: boolean;
  /** The XML that goes into the image. */
  xml: string;
  managed: boolean;
  /** An existing file at `path` may be replaced. */
  overwrite: boolean;
}

export interface SaveResult {
  name: string;
  uuid: string;
  path: string;
  format: SaveFormatName;
  sizeBytes: number;
  /** QEMU's stream before compression. */
  streamBytes: number;
  durationMs: number;
}

export interface RestoreBeginArgs extends SaveJobRef, RunStateOverride {
  path: string;
  xml?: string;
  bypassCache: boolean;
  /** Sparse images only: how many multifd channels read the image (default 1). */
  parallelChannels?: number;
  /** Managed start: the image is the domain's managed-save image, removed after success. */
  managedName?: string;
  domainUuid?: string;
}

export interface RestorePlan extends SaveJobRef {
  name: string;
  uuid: string;
  path: string;
  format: SaveFormatName;
  bypassCache: boolean;
  /** Sparse only: how many multifd channels read the image. */
  parallelChannels?: number;
  streamOffset: number;
  /** Start the CPUs once the stream is in. */
  startRunning: boolean;
  /** The definition QEMU starts from (the image's, or the caller's checked one). */
  xml: string;
  managed: boolean;
}

export interface RestoreResult {
  domain: DomainInfo;
  path: string;
  format: SaveFormatName;
  durationMs: number;
  /** Managed start only: the domain booted without an image (none, or --force-boot). */
  bootedFresh?: boolean;
}

export interface ManagedSaveState {
  name: string;
  path: string;
  exists: boolean;
  /** managedSaveRemove: an image was there and is gone now. */
  removed?: boolean;
}

export interface ManagedStartBeginArgs extends SaveJobRef {
  name: string;
  domainUuid?: string;
  paused?: boolean;
  bypassCache: boolean;
  forceBoot: boolean;
}

/** A managed start restores from the image (plan) or boots afresh. */
export interface ManagedStartBeginResult {
  plan?: RestorePlan;
  /** Why there is no plan: no image, or --force-boot discarded it. */
  bootReason?: 'no image' | 'force boot';
}

export interface SaveImageXmlResult {
  path: string;
  xml: string;
}

/** What the heartbeats of savePerform / restorePerform carry (JobHeartbeat plus QEMU's stream status). */
export interface SaveJobHeartbeat extends JobHeartbeat {
  status: string;
}

// ---- input checks the workflows make before any activity ---------------------

function invalid(message: string): Error {
  return vmError(ErrorType.OperationInvalid, message);
}

export function checkHost(host: unknown): string {
  if (typeof host !== 'string' || !HOST_NAME_PATTERN.test(host)) throw invalid(`bad host name ${JSON.stringify(host)}`);
  return host;
}

export function checkName(name: unknown): string {
  const why = invalidDomainName(name);
  if (why) throw invalid(why);
  return name as string;
}

export function checkPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) throw invalid('missing image path');
  return path;
}

export function checkFormat(format: unknown): SaveFormatName {
  if (format === undefined) return 'raw';
  if (typeof format !== 'string' || !(SAVE_FORMAT_NAMES as readonly string[]).includes(format)) {
    throw invalid(`unknown save image format ${JSON.stringify(format)} (one of ${SAVE_FORMAT_NAMES.join(', ')})`);
  }
  return format as SaveFormatName;
}

/** --parallel-channels: a whole number of channels QEMU can run, or absent. */
export function checkParallelChannels(n: unknown): number | undefined {
  if (n === undefined) return undefined;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_PARALLEL_CHANNELS) {
    throw invalid(`parallel channels must be a whole number from 1 to ${MAX_PARALLEL_CHANNELS}, not ${JSON.stringify(n)}`);
  }
  return n;
}

/**
 * The image format and channel count a save asks for, as libvirt reads them: --parallel-channels
 * alone means a sparse image; sparse alone has one channel; channels with a compressed (or raw)
 * format are refused, since compression stays on the classic single stream.
 */
export function checkSaveFormat(format: unknown, channels: unknown): { format: SaveFormatName; parallelChannels?: number } {
  const n = checkParallelChannels(channels);
  if (format === undefined && n !== undefined) return { format: 'sparse', parallelChannels: n };
  const f = checkFormat(format);
  if (f === 'sparse') return { format: f, parallelChannels: n ?? 1 };
  if (n !== undefined) {
    throw vmError(
      ErrorType.ConfigUnsupported,
      `parallel channels need the sparse image format; the ${f} format is one classic stream (compressors cannot write a mapped-ram image)`,
      { format: f, parallelChannels: n },
    );
  }
  return { format: f };
}

export function checkRunState(o: RunStateOverride): void {
  if (o.running === true && o.paused === true) throw invalid('running and paused are mutually exclusive');
}

/** The UUID a job workflow ID names, when the ID has the job form. */
export function uuidOfJobWorkflowId(workflowId: string): string | undefined {
  const m = /^vmferry-job-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(workflowId);
  return m?.[1];
}
