// A guest that goes quiet: once the firmware has handed over to it, it writes a
// marker word at IDLE_MARKER_ADDR and halts with interrupts off, so nothing in the
// guest touches its RAM again. Tests that hash guest RAM across a save or a
// migration wait for the marker before filling it: with the no-OS guest, SeaBIOS
// was still running (slowly, on a loaded machine) while the test wrote and hashed
// the range, and pages changed under the hash.
import { closeSync, openSync, readSync } from 'node:fs';
import { waitFor } from '../../src/support/wait.js';
import { writeMultibootKernel } from './multiboot.js';

/** 15 MiB: below the range tests fill (FILL_OFFSET, 16 MiB). */
export const IDLE_MARKER_ADDR = 0xf00000;
const MARKER = 0x49464d56; // 'VMFI'

export function writeIdleKernel(path: string): void {
  const code = Buffer.from([0xc7, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0xfa, 0xf4, 0xeb, 0xfd]); // mov dword [addr], MARKER; cli; hlt; jmp hlt
  code.writeUInt32LE(IDLE_MARKER_ADDR, 2);
  code.writeUInt32LE(MARKER, 6);
  writeMultibootKernel(path, code);
}

/** Resolves once the idle kernel runs in the guest whose RAM is `memoryFile`. */
export async function waitGuestIdle(memoryFile: string, timeoutMs = 60_000): Promise<void> {
  const word = Buffer.alloc(4);
  await waitFor(
    'the guest to reach its idle kernel',
    async () => {
      const fd = openSync(memoryFile, 'r');
      try {
        readSync(fd, word, 0, 4, IDLE_MARKER_ADDR);
      } finally {
        closeSync(fd);
      }
      return word.readUInt32LE(0) === MARKER ? true : undefined;
    },
    { timeoutMs, intervalMs: 50 },
  );
}
