// The header vmferry writes: libvirt's layout (header.ts), with the zero padding
// after the XML stretched so QEMU's stream starts on a DIRECT_IO_ALIGNMENT
// boundary. A larger data area is still a valid libvirt image (readers take
// data_len from the header and skip the zeros); it lets --bypass-cache write the
// stream with O_DIRECT, and leaves a little more room for save-image-define.
import { endianness } from 'node:os';
import { ErrorType, vmError } from '../common/errors.js';
import { decodeSaveHeader, encodeSaveHeader, SAVE_HEADER_SIZE, type EncodeSaveHeaderOptions } from './header.js';
import { DIRECT_IO_ALIGNMENT } from './direct-io.js';

/** Offset of data_len in the fixed header (libvirt's struct layout). */
const DATA_LEN_OFFSET = 20;

export function encodeAlignedSaveHeader(opts: Omit<EncodeSaveHeaderOptions, 'byteOrder'>): Buffer {
  const base = encodeSaveHeader(opts);
  const pad = (DIRECT_IO_ALIGNMENT - (base.length % DIRECT_IO_ALIGNMENT)) % DIRECT_IO_ALIGNMENT;
  if (pad === 0) return base;
  const out = Buffer.concat([base, Buffer.alloc(pad)]);
  const dataLen = out.length - SAVE_HEADER_SIZE;
  if (endianness() === 'LE') out.writeUInt32LE(dataLen, DATA_LEN_OFFSET);
  else out.writeUInt32BE(dataLen, DATA_LEN_OFFSET);
  const check = decodeSaveHeader(out, { allowPartial: true });
  if (check.streamOffset !== out.length || check.domainXml !== opts.domainXml || check.format !== opts.format) {
    throw vmError(ErrorType.InternalError, 'aligned save header does not read back as written');
  }
  return out;
}
