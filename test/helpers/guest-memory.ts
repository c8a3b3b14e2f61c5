// Guest RAM seen from the host through the domain's shared memory-backing file:
// fill a range with random bytes, hash it on either side of a save or migration.
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';

/** Above the first 16 MiB, where firmware and the real-mode IVT live. */
export const FILL_OFFSET = 16 * 1024 * 1024;

export function fillRandom(file: string, length: number, offset = FILL_OFFSET): void {
  const fd = openSync(file, 'r+');
  try {
    const chunk = Buffer.alloc(4 * 1024 * 1024);
    for (let done = 0; done < length; done += chunk.length) {
      const n = Math.min(chunk.length, length - done);
      randomFillSync(chunk, 0, n);
      writeSync(fd, chunk, 0, n, offset + done);
    }
  } finally {
    closeSync(fd);
  }
}

export function hashRange(file: string, length: number, offset = FILL_OFFSET): string {
  const fd = openSync(file, 'r');
  try {
    const h = createHash('sha256');
    const chunk = Buffer.alloc(4 * 1024 * 1024);
    for (let done = 0; done < length;) {
      const n = readSync(fd, chunk, 0, Math.min(chunk.length, length - done), offset + done);
      if (n === 0) throw new Error(`${file} ended at ${offset + done}`);
      h.update(chunk.subarray(0, n));
      done += n;
    }
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}
