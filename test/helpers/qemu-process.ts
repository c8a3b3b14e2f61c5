// Starts a bare QEMU (no disks, no devices, TCG) with a QMP socket, for tests that need a real
// monitor to talk to. stop() kills only the process started here, by PID.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BareQemu {
  pid: number;
  qmpPath: string;
  dir: string;
  /** Settles when the QEMU process has exited (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL (if still running), wait for the exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartBareQemuOptions {
  extraArgs?: string[];
  /** Start with -S (vCPUs stopped); default true. */
  paused?: boolean;
  /** Deadline for the QMP socket to be listening; default 10000 ms. */
  timeoutMs?: number;
  qemuBinary?: string;
}

export async function startBareQemu(opts: StartBareQemuOptions = {}): Promise<BareQemu> {
  const dir = await mkdtemp(join(tmpdir(), 'vmferry-qemu-'));
  const qmpPath = join(dir, 'qmp.sock');
  const args = [
    '-nodefaults',
    '-machine',
    'pc,accel=tcg',
    '-m',
    '64',
    '-display',
    'none',
    '-serial',
    'none',
    '-monitor',
    'none',
    '-qmp',
    `unix:${qmpPath},server=on,wait=off`,
    ...(opts.paused === false ? [] : ['-S']),
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(opts.qemuBinary ?? 'qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    stderr += s;
  });
  let hasExited = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      hasExited = true;
      resolve({ code, signal });
    });
    child.once('error', () => {
      hasExited = true;
      resolve({ code: null, signal: null });
    });
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (!hasExited && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await withDeadline(exited, 10_000, `QEMU ${child.pid} did not exit after SIGKILL`);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    // With wait=off QEMU creates the socket asynchronously; the file existing is not enough
    // (bind precedes listen), so wait until the kernel lists it as a listening socket.
    while (!(await isListening(qmpPath))) {
      if (hasExited) throw new Error(`QEMU exited before its QMP socket was ready: ${stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`QMP socket ${qmpPath} not listening within deadline: ${stderr.trim()}`);
      await new Promise((r) => setTimeout(r, 10)); // poll interval for the condition above
    }
    if (child.pid === undefined) throw new Error('QEMU did not start');
    return { pid: child.pid, qmpPath, dir, exited, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function isListening(path: string): Promise<boolean> {
  const table = await readFile('/proc/net/unix', 'utf8');
  // Columns: Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = __SO_ACCEPTCON.
  return table.split('\n').some((line) => {
    const cols = line.trim().split(/\s+/);
    return cols[7] === path && cols[3] === '00010000';
  });
}

export async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
