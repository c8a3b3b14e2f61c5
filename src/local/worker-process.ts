// Starts a worker as its own process (so a test can kill -9 it) and waits for its
// "ready" log line: an event, not a sleep.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT } from './paths.js';

const ROOT = PROJECT_ROOT;

export interface WorkerProcess {
  pid: number;
  /** Every JSON log line the worker printed so far. */
  logs: Record<string, unknown>[];
  /** SIGTERM and wait for exit (graceful: QEMU left running). */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit: the crash a supervisor would see. */
  kill9(): Promise<void>;
  exited: Promise<number | null>;
}

export async function startWorkerProcess(
  entry: 'host' | 'control',
  env: Record<string, string>,
  readyMsg: string,
  /** commandPrefix runs the worker under another program that execs it (e.g. `ip netns exec NAME`), so the PID stays the worker's. */
  /** build: the output folder of `npm run build`, whose compiled worker runs instead of the sources under tsx. */
  opts: { timeoutMs?: number; logFile?: string; commandPrefix?: string[]; build?: string } = {},
): Promise<WorkerProcess> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const logStream = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  const argv = opts.build ? [process.execPath, join(opts.build, 'workers', `${entry}.js`)] : [process.execPath, '--import', 'tsx', `src/workers/${entry}.ts`];
  const [program, ...args] = [...(opts.commandPrefix ?? []), ...argv] as [string, ...string[]];
  const child: ChildProcess = spawn(program, args, {
    cwd: ROOT,
    env: { ...process.env, ...env, VMFERRY_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${entry} worker not ready within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      logStream?.write(`${line}\n`);
      try {
        const rec = JSON.parse(line) as Record<string, unknown>;
        logs.push(rec);
        if (rec.msg === readyMsg) {
          clearTimeout(timer);
          resolve();
        }
      } catch {
        // not JSON: ignore
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${entry} worker exited (${code}) before ready; stderr: ${stderr}`));
    });
  });
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    await exited;
  };
  try {
    await ready;
  } catch (err) {
    await signal('SIGKILL');
    throw err;
  }
  return { pid: child.pid!, logs, stop: () => signal('SIGTERM'), kill9: () => signal('SIGKILL'), exited };
}
