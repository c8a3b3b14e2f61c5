// Process facts from /proc. QEMU outlives the worker that started it, so after a
// restart the worker is no longer its parent: it cannot wait() for it, and the
// container's init may reap slowly, leaving zombies that kill(pid, 0) calls alive.
import { readFileSync } from 'node:fs';
import { waitFor } from './wait.js';

export function isProcessAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 follows the parenthesised command name, which may itself hold spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function processCmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** True when pid is alive and its command line mentions `marker` (guards against PID reuse). */
export function isOurProcess(pid: number, marker: string): boolean {
  if (!isProcessAlive(pid)) return false;
  return processCmdline(pid)?.some((arg) => arg.includes(marker)) ?? false;
}

export async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  await waitFor(`process ${pid} to exit`, () => !isProcessAlive(pid), { timeoutMs, intervalMs: 20 });
}

/** SIGTERM, a grace period, then SIGKILL: what libvirt's destroy does. */
export async function terminate(pid: number, graceMs = 3000): Promise<void> {
  if (!isProcessAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  try {
    await waitForExit(pid, graceMs);
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    await waitForExit(pid, 10_000);
  }
}
