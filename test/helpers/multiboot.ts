// Tiny hand-assembled guests booted by QEMU's multiboot loader (-kernel,
// <os><kernel>): a 32-byte header that loads the file at 1 MiB and enters the
// code right after it, in protected mode with paging off. Tests need no cross
// compiler for them.
import { writeFileSync } from 'node:fs';

const LOAD_ADDR = 0x100000; // 1 MiB: where multiboot kernels live
const HEADER_BYTES = 32;

export function writeMultibootKernel(path: string, code: Buffer): void {
  const magic = 0x1badb002;
  const flags = 0x00010000; // the load addresses below are valid (no ELF needed)
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(magic, 0);
  header.writeUInt32LE(flags, 4);
  header.writeUInt32LE((0x100000000 - ((magic + flags) % 0x100000000)) % 0x100000000, 8);
  header.writeUInt32LE(LOAD_ADDR, 12); // header_addr (the header is the file's first bytes)
  header.writeUInt32LE(LOAD_ADDR, 16); // load_addr
  header.writeUInt32LE(0, 20); // load_end_addr: the whole file
  header.writeUInt32LE(0, 24); // bss_end_addr: none
  header.writeUInt32LE(LOAD_ADDR + HEADER_BYTES, 28); // entry: right after the header
  writeFileSync(path, Buffer.concat([header, code]));
}
