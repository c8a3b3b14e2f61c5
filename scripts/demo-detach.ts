// A terminal's Ctrl-C signals its whole foreground process group, so the dev
// server and the workers would stop at the same instant as the demo, before the
// demo could take its guest down through them (QEMU, in its own session, would
// stay). The demo therefore runs as a detached copy of itself, in a process group
// of its own; this process only hands SIGINT / SIGTERM on and exits as the copy does.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

const DETACHED_ENV = 'VMFERRY_DEMO_DETACHED';

/** In the launcher: runs the detached copy and never returns. In the copy (`detached`): returns at once. */
export async function runDetached(detached: boolean): Promise<void> {
  if (detached) return;
  const copy = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, [DETACHED_ENV]: '1' },
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void copy.kill(sig));
  const code = await new Promise<number>((resolve) => copy.once('exit', (c, s) => resolve(c ?? 128 + (s ? constants.signals[s] : 0))));
  process.exit(code);
}
