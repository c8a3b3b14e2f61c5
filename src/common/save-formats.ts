// Compression formats of a libvirt QEMU save image: the number stored in the
// header's format word and the program libvirt runs for it. The numbers are
// on-disk ABI shared with libvirt (enum virQEMUSaveFormat): never renumber.
//
// Compatibility: libvirt 9.0 (Debian 12) knows 0..4 only; format 5 (zstd) and
// 6 (sparse) were added in later releases (sparse in 11.2). An image meant for
// `virsh restore` on an older libvirt must use raw, gzip, bzip2, xz or lzop.
//
// "sparse" is not a compressor: QEMU's mapped-ram stream, each RAM page at a
// fixed offset of the file, written and read by several multifd channels at
// once (libvirt's --parallel-channels). It needs a QEMU with the mapped-ram
// capability at both ends (save-needs.ts).

export const SaveFormat = { raw: 0, gzip: 1, bzip2: 2, xz: 3, lzop: 4, zstd: 5, sparse: 6 } as const;
export type SaveFormatName = keyof typeof SaveFormat;

const BY_NUMBER: ReadonlyMap<number, SaveFormatName> = new Map((Object.entries(SaveFormat) as [SaveFormatName, number][]).map(([name, n]) => [n, name]));

export function saveFormatFromNumber(n: number): SaveFormatName | undefined {
  return BY_NUMBER.get(n);
}

export function isSaveFormatName(s: string): s is SaveFormatName {
  return Object.prototype.hasOwnProperty.call(SaveFormat, s);
}

export interface CompressorCommand {
  /** Program looked up in PATH; the same name libvirt uses. */
  program: string;
  /** Filter stdin → stdout, compressing. */
  compressArgs: readonly string[];
  /** Filter stdin → stdout, decompressing. */
  decompressArgs: readonly string[];
}

/**
 * Argument vectors matching what libvirt runs (qemu_saveimage.c): compress with
 * `<prog> -c` (xz adds `-3`), decompress with `<prog> -dc` (lzop adds
 * `--ignore-warn`). `undefined` for raw and sparse: the stream is stored as QEMU wrote it.
 */
export function compressorCommand(format: SaveFormatName): CompressorCommand | undefined {
  switch (format) {
    case 'raw':
    case 'sparse':
      return undefined;
    case 'xz':
      return { program: 'xz', compressArgs: ['-c', '-3'], decompressArgs: ['-dc'] };
    case 'lzop':
      return { program: 'lzop', compressArgs: ['-c'], decompressArgs: ['-dc', '--ignore-warn'] };
    case 'gzip':
    case 'bzip2':
    case 'zstd':
      return { program: format, compressArgs: ['-c'], decompressArgs: ['-dc'] };
  }
}
