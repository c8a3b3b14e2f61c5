// A guest that never lets a migration converge on its own: a 25-byte loop,
// booted by QEMU's multiboot loader (-kernel, <os><kernel>), that increments one
// word in every 4 KiB page of a range, over and over, so the whole range is dirty
// again long before a bandwidth-limited pass has sent it. Hand-assembled (the
// machine code is below, with its assembly), so the tests need no cross compiler.
import { writeMultibootKernel } from './multiboot.js';

/**
 * Writes the kernel to `path`. It dirties [startBytes, endBytes) of guest RAM;
 * the word at `startBytes` counts the passes, so a host reading the RAM file sees
 * it change while the guest runs.
 */
export function writeDirtyingKernel(path: string, startBytes: number, endBytes: number): void {
  const code = Buffer.from([
    0xbf,
    0,
    0,
    0,
    0, //        mov edi, START
    0x89,
    0xfe, //              outer: mov esi, edi
    0xff,
    0x06, //              inner: inc dword [esi]
    0x81,
    0xc6,
    0x00,
    0x10,
    0x00,
    0x00, // add esi, 4096
    0x81,
    0xfe,
    0,
    0,
    0,
    0, //  cmp esi, END
    0x72,
    0xf0, //              jb inner
    0xeb,
    0xec, //              jmp outer
  ]);
  code.writeUInt32LE(startBytes, 1);
  code.writeUInt32LE(endBytes, 17);
  writeMultibootKernel(path, code);
}
