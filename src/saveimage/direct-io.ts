// libvirt's --bypass-cache: the image is written and read with O_DIRECT so a
// multi-gigabyte save does not push the host's page cache out. Node cannot do
// aligned I/O (its buffers have no alignment guarantee), so GNU dd is the helper:
// it allocates aligned buffers, and for the final short block it drops O_DIRECT
// itself. The stream must start on an aligned offset, which aligned-header.ts
// guarantees for every image vmferry writes.
import type { FilterCommand } from './compressor.js';
import { requireProgram } from './compressor.js';

/** Logical block size O_DIRECT needs on every common filesystem and device. */
export const DIRECT_IO_ALIGNMENT = 4096;
const BLOCK = '1M';

/** dd writing its stdin into `path` from `offset` on, leaving the header before it alone. */
export function directWriter(path: string, offset: number): FilterCommand {
  return {
    program: 'dd',
    path: requireProgram('dd', 'bypassing the page cache'),
    args: [`of=${path}`, 'oflag=direct,seek_bytes', `seek=${offset}`, 'conv=notrunc', `bs=${BLOCK}`, 'iflag=fullblock', 'status=none'],
  };
}

/** dd copying `path` from `offset` to its stdout. */
export function directReader(path: string, offset: number): FilterCommand {
  return {
    program: 'dd',
    path: requireProgram('dd', 'bypassing the page cache'),
    args: [`if=${path}`, 'iflag=direct,skip_bytes', `skip=${offset}`, `bs=${BLOCK}`, 'status=none'],
  };
}

export function isDirectAligned(offset: number): boolean {
  return offset % DIRECT_IO_ALIGNMENT === 0;
}
