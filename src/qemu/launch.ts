// Spawns QEMU detached from the worker (its own session, so a worker crash or a
// Ctrl-C in the worker's terminal does not take the guest down), with an argument
// vector and no shell, stdout/stderr into the domain's log file.
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { ErrorType, vmError } from '../common/errors.js';
import { isProcessAlive } from '../support/proc.js';
import { QmpClient } from './qmp-client.js';
import { setTimeout as delay } from 'node:timers/promises';
import { childStdio } from './inherited-fds.js';
import { argsWithPaths, envOfPaths, type QemuPaths } from './qemu-paths.js';

export interface LaunchSpec {
  binary: string;
  args: string[];
  qmpSocket: string;
  logFile: string;
  /** How long QEMU has to open its monitor socket. */
  timeoutMs?: number;
  /** Where this QEMU's modules and firmware are, when not its defaults (host config). */
  paths?: QemuPaths;
  /** The uid and gid QEMU runs as from exec on (set in the child before exec; its supplementary groups are dropped). */
  identity?: { uid: number; gid: number };
  /** Called with QEMU's pid as soon as it exists (cgroup placement), before its monitor answers. */
  onSpawned?: (pid: number) => void;
}

export interface LaunchedQemu {
  pid: number;
  qmp: QmpClient;
}

// sun_path is 108 bytes including the NUL; QEMU truncates silently past that.
const MAX_UNIX_PATH = 107;

export function logTail(logFile: string, bytes = 2000): string {
  try {
    const size = statSync(logFile).size;
    const buf = readFileSync(logFile);
    return buf
      .subarray(Math.max(0, size - bytes))
      .toString('utf8')
      .trim();
  } catch {
    return '';
  }
}

export async function launchQemu(spec: LaunchSpec): Promise<LaunchedQemu> {
  if (Buffer.byteLength(spec.qmpSocket) > MAX_UNIX_PATH) {
    throw vmError(ErrorType.ConfigUnsupported, `QMP socket path ${spec.qmpSocket} is longer than ${MAX_UNIX_PATH} bytes; use a shorter run directory`);
  }
  rmSync(spec.qmpSocket, { force: true });
  const logFd = openSync(spec.logFile, 'a', 0o600);
  let pid: number | undefined;
  let spawnError: Error | undefined;
  try {
    // childStdio: QEMU must not hold the worker's other QMP connections (see inherited-fds.ts).
    const child = spawn(spec.binary, argsWithPaths(spec.args, spec.paths), {
      detached: true,
      stdio: childStdio(['ignore', logFd, logFd]),
      env: { ...process.env, ...envOfPaths(spec.paths) },
      ...(spec.identity ? { uid: spec.identity.uid, gid: spec.identity.gid } : {}),
    });
    child.once('error', (err) => (spawnError = err));
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(logFd);
  }
  if (pid === undefined) {
    await delay(0);
    throw vmError(ErrorType.OperationFailed, `cannot run ${spec.binary}: ${spawnError?.message ?? 'spawn failed'}`);
  }
  try {
    spec.onSpawned?.(pid);
  } catch (err) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    throw err;
  }
  const deadline = Date.now() + (spec.timeoutMs ?? 15_000);
  // QEMU creates the socket asynchronously (server=on,wait=off); there is no event to wait on.
  for (;;) {
    if (!isProcessAlive(pid)) {
      throw vmError(ErrorType.OperationFailed, `QEMU exited during start-up: ${logTail(spec.logFile) || 'no output'}`, { pid });
    }
    if (existsSync(spec.qmpSocket)) {
      try {
        const qmp = await QmpClient.connect(spec.qmpSocket, { timeoutMs: Math.max(1000, deadline - Date.now()) });
        // QEMU binds it under the worker's umask 077 (0700); the execute bit means nothing on a socket.
        chmodSync(spec.qmpSocket, 0o600);
        return { pid, qmp };
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      throw vmError(ErrorType.OperationFailed, `QEMU did not open its monitor within the deadline: ${logTail(spec.logFile)}`, { pid });
    }
    await delay(20);
  }
}
