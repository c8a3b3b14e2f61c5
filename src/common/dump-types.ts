// Core dump job: memory-only dump of a running guest through QMP
// dump-guest-memory, shared by the workflow, the host activities and the CLI.
import { HOST_NAME_PATTERN } from './constants.js';
import { invalidDomainName } from './domain-name.js';
import { invalidSpeed } from './job-messages.js';

/** QEMU 7.2's memory-only formats; which ones a given QEMU build has is asked at Begin. */
export const CORE_DUMP_FORMATS = ['elf', 'kdump-zlib', 'kdump-lzo', 'kdump-snappy'] as const;
export type CoreDumpFormat = (typeof CORE_DUMP_FORMATS)[number];

export interface CoreDumpInput {
  host: string;
  /** Domain name on that host, and its UUID (the job's workflow ID is derived from it). */
  name: string;
  uuid: string;
  /** Absolute path of the dump file on the host: its directory must exist, the file must not. */
  path: string;
  format?: CoreDumpFormat;
  /**
   * libvirt's --live: do not pause the guest for the dump. QEMU 7.2 stops the vCPUs
   * for the whole of dump-guest-memory anyway, so this only decides whether the
   * domain is reported paused ('dump') by us around it.
   */
  live?: boolean;
  /** Rate limit for writing the dump, MiB/s (0 or absent = unlimited); setSpeed changes it. */
  bandwidthMiBps?: number;
}

export interface DumpBeginResult {
  jobId: string;
  wasRunning: boolean;
  format: CoreDumpFormat;
  /** Formats this QEMU can write. */
  formats: string[];
}

export interface DumpPerformResult {
  sizeBytes: number;
  dataTotalBytes: number;
  durationMs: number;
}

export interface CoreDumpResult {
  path: string;
  format: CoreDumpFormat;
  sizeBytes: number;
  durationMs: number;
  /** The domain's state once the job ended. */
  domainState: string;
}

const UUID_PATTERN = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Why the input cannot be a core dump job, or undefined. The host checks the path against its filesystem. */
export function invalidCoreDumpInput(input: unknown): string | undefined {
  if (typeof input !== 'object' || input === null) return 'core dump input must be an object';
  const i = input as Partial<Record<keyof CoreDumpInput, unknown>>;
  if (typeof i.host !== 'string' || !HOST_NAME_PATTERN.test(i.host)) return `bad host name ${JSON.stringify(i.host)}`;
  const badName = invalidDomainName(i.name);
  if (badName) return badName;
  if (typeof i.uuid !== 'string' || !UUID_PATTERN.test(i.uuid)) return `bad domain uuid ${JSON.stringify(i.uuid)}`;
  const why = invalidDumpPath(i.path);
  if (why) return why;
  if (i.format !== undefined && !(CORE_DUMP_FORMATS as readonly unknown[]).includes(i.format)) {
    return `unknown dump format ${JSON.stringify(i.format)} (one of ${CORE_DUMP_FORMATS.join(', ')})`;
  }
  if (i.live !== undefined && typeof i.live !== 'boolean') return 'live must be a boolean';
  if (i.bandwidthMiBps !== undefined) return invalidSpeed(i.bandwidthMiBps);
  return undefined;
}

/** Shape of the path only: absolute, no NUL, no trailing slash, not too long. */
export function invalidDumpPath(path: unknown): string | undefined {
  if (typeof path !== 'string' || path.length === 0) return 'dump path must be a non-empty string';
  if (!path.startsWith('/')) return `dump path must be absolute, got ${JSON.stringify(path)}`;
  if (path.includes('\0')) return 'dump path must not contain NUL';
  if (path.endsWith('/')) return `dump path names a directory, not a file: ${JSON.stringify(path)}`;
  if (path.length > 4000) return 'dump path is too long';
  return undefined;
}
