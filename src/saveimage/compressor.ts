// The helper processes of a save or restore pipeline (compressor, decompressor,
// the O_DIRECT copier): found by a PATH lookup before the VM is touched, started
// with an argument vector (never a shell) on descriptors the worker opened, and
// waited for by the worker itself so their exit status and stderr are the job's.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ErrorType, vmError } from '../common/errors.js';
import { which } from '../support/which.js';
import { childStdio } from '../qemu/inherited-fds.js';
import { compressorCommand, type SaveFormatName } from '../common/save-formats.js';

export interface HelperExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** What a restarted worker needs to recognise an orphaned helper (PIDs get reused). */
export interface HelperRef {
  program: string;
  pid: number;
  startTime: string;
}

export interface Helper extends HelperRef {
  /** Settles once the process has exited; never rejects. */
  readonly exited: Promise<HelperExit>;
  hasExited(): boolean;
  kill(): void;
}

export interface FilterCommand {
  program: string;
  path: string;
  args: readonly string[];
}

const STDERR_KEEP = 4096;

/** The program's absolute path, or a ConfigUnsupported error naming what is missing. */
export function requireProgram(program: string, why: string): string {
  const path = which(program);
  if (!path) throw vmError(ErrorType.ConfigUnsupported, `${why} needs '${program}', which is not installed on this host (not found in PATH)`, { program });
  return path;
}

/** The compressor (or decompressor) for a format, looked up now; undefined for raw. */
export function filterCommand(format: SaveFormatName, direction: 'compress' | 'decompress'): FilterCommand | undefined {
  const cmd = compressorCommand(format);
  if (!cmd) return undefined;
  const path = requireProgram(cmd.program, `${format} ${direction === 'compress' ? 'compression' : 'decompression'}`);
  return { program: cmd.program, path, args: direction === 'compress' ? cmd.compressArgs : cmd.decompressArgs };
}

/** Field 22 of /proc/<pid>/stat: the start time in clock ticks, unique per PID incarnation. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    if (state === 'Z' || state === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Kills a helper a previous worker started, if that very process is still alive. */
export function killOrphan(ref: HelperRef): boolean {
  if (processStartTime(ref.pid) !== ref.startTime) return false;
  try {
    process.kill(ref.pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `cmd` reading `stdin` and writing `stdout` (descriptors the caller
 * opened; the child gets duplicates, so the caller closes its own copies).
 */
export function spawnHelper(cmd: FilterCommand, stdin: number | 'ignore', stdout: number | 'ignore'): Helper {
  // A helper can outlive a killed worker: it must not keep the worker's QMP connections open.
  const child = spawn(cmd.path, [...cmd.args], { stdio: childStdio([stdin, stdout, 'pipe']) });
  let stderr = '';
  let exitedFlag = false;
  const exited = new Promise<HelperExit>((resolve) => {
    child.once('error', (err) => {
      exitedFlag = true;
      resolve({ code: null, signal: null, stderr: err.message });
    });
    child.once('close', (code, signal) => {
      exitedFlag = true;
      resolve({ code, signal, stderr: stderr.trim() });
    });
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    stderr = (stderr + s).slice(-STDERR_KEEP);
  });
  const pid = child.pid ?? -1;
  return {
    program: cmd.program,
    pid,
    startTime: pid > 0 ? (processStartTime(pid) ?? '') : '',
    exited,
    hasExited: () => exitedFlag,
    kill: () => {
      if (!exitedFlag && pid > 0) child.kill('SIGKILL');
    },
  };
}

/** The typed error for a helper's non-zero exit (with its stderr), or undefined for success. */
export async function helperFailure(helper: Helper, what: string): Promise<Error | undefined> {
  const r = await helper.exited;
  if (r.code === 0) return undefined;
  const how = r.signal ? `was killed by ${r.signal}` : r.code === null ? 'could not be started' : `exited with status ${r.code}`;
  return vmError(ErrorType.OperationFailed, `${what} (${helper.program}) ${how}${r.stderr ? `: ${r.stderr}` : ''}`, {
    program: helper.program,
    code: r.code,
    signal: r.signal,
  });
}

export async function expectSuccess(helper: Helper, what: string): Promise<void> {
  const err = await helperFailure(helper, what);
  if (err) throw err;
}
