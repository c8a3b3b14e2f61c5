// tcpdump started by a test: it captures nothing until it says so on stderr, so
// a capture that must see a whole exchange waits for that line (an event with a
// reason to fail), never for a fixed time.
import type { ChildProcess } from 'node:child_process';

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
