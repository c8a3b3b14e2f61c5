// tcpdump started by a test: it captures nothing until it says so on stderr, so
// a capture that must see a whole exchange waits for that line (an event with a
// reason to fail), never for a fixed time.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

/** Resolves once `child` (a tcpdump) prints "listening on"; rejects if it ends first. */
export async function tcpdumpListening(child: ChildProcess): Promise<void> {
  let err = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on/.test(err)) resolve();
    });
    child.once('close', () => reject(new Error(`tcpdump ended before it listened: ${err}`)));
  });
}

/**
 * Runs `argv` (a tcpdump writing whole packets to `file`, possibly behind `ip netns exec`)
 * while `during` runs, and returns the pcap it wrote; the file is removed.
 */
export async function capture(argv: [string, ...string[]], file: string, during: () => Promise<void>): Promise<Buffer> {
  const [program, ...args] = argv;
  const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    await tcpdumpListening(child);
    await during();
  } finally {
    child.kill('SIGINT');
    await exited;
  }
  const pcap = readFileSync(file);
  rmSync(file, { force: true });
  return pcap;
}

/** How many times `needle` occurs in a capture (non-overlapping). */
export function countOf(hay: Buffer, needle: Buffer): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}
