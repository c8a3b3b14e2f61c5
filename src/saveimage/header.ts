// The libvirt QEMU save-image header: the bytes before QEMU's migration stream.
// Byte-compatible with libvirt so `virsh restore` reads our images and we read
// theirs. Layout (all words uint32 in the writing host's byte order):
//
//   0  magic[16]      "LibvirtQemudPart" while writing, "LibvirtQemudSave" once complete
//  16  version        2 (1 = pre-compression images: the format word is ignored)
//  20  data_len       bytes of the data area that follows the header
//  24  was_running    non-zero: resume the guest after restore
//  28  format         compression, see formats.ts
//  32  cookieOffset   0 = no cookie, else offset of the cookie inside the data area
//  36  unused[14]     zero when written
//  92  data area:     XML\0 [cookie\0] zero padding (64 KiB spare so the XML can be edited in place)
//  92 + data_len      QEMU's stream (compressed if format != raw); no alignment
//
// A reader that finds version > 2 byte-swaps the five words and checks again:
// that is how an image from a host of the other endianness is read.
import { open, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { dirname } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import { LIBVIRT_SPARSE_FORMAT, SaveFormat, saveFormatFromNumber, type SaveFormatName } from '../common/save-formats.js';

export { SaveFormat, type SaveFormatName } from '../common/save-formats.js';

export const SAVE_MAGIC = 'LibvirtQemudSave';
export const SAVE_MAGIC_PARTIAL = 'LibvirtQemudPart';
export const SAVE_VERSION = 2;
/** sizeof the libvirt header struct: 16 magic bytes + 19 uint32 words. */
export const SAVE_HEADER_SIZE = 92;
/** Spare zero bytes libvirt adds after XML (+cookie) when it first writes an image. */
export const SAVE_XML_PADDING_BYTES = 64 * 1024;
/** Upper bound on data_len accepted from a file: beyond it the image is treated as hostile. */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024 * 1024;

const OFFSET = { magic: 0, version: 16, dataLen: 20, wasRunning: 24, format: 28, cookieOffset: 32, unused: 36 } as const;
const MAGIC_LEN = 16;

export type ByteOrder = 'LE' | 'BE';

export interface SaveImageHeader {
  complete: boolean;
  version: number;
  dataLen: number;
  wasRunning: boolean;
  format: SaveFormatName;
  cookieOffset: number;
  domainXml: string;
  cookie?: string;
  /** byte offset where QEMU's stream starts */
  streamOffset: number;
  byteOrder: ByteOrder;
}

export interface EncodeSaveHeaderOptions {
  domainXml: string;
  wasRunning: boolean;
  format: SaveFormatName;
  cookie?: string;
  /** default false: written as Part, flipped by markSaveImageComplete once the stream is flushed */
  complete?: boolean;
  /** default: this host's order, which is what libvirt on this host writes */
  byteOrder?: ByteOrder;
}

export interface DecodeOptions {
  /** Accept a LibvirtQemudPart image (diagnostics only: never restore one). */
  allowPartial?: boolean;
}

export interface ReadSaveHeaderOptions extends DecodeOptions {
  /** Refuse a data area larger than this (default 16 MiB). */
  maxHeaderBytes?: number;
}

function hostByteOrder(): ByteOrder {
  return endianness();
}

function otherOrder(o: ByteOrder): ByteOrder {
  return o === 'LE' ? 'BE' : 'LE';
}

function readU32(buf: Buffer, offset: number, order: ByteOrder): number {
  return order === 'LE' ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset);
}

function writeU32(buf: Buffer, offset: number, value: number, order: ByteOrder): void {
  if (order === 'LE') buf.writeUInt32LE(value, offset);
  else buf.writeUInt32BE(value, offset);
}

function invalid(message: string, details?: Record<string, unknown>): Error {
  return vmError(ErrorType.OperationInvalid, message, details);
}

// ---------------------------------------------------------------- encoding

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** UTF-8 bytes of a string stored NUL-terminated; refuses what would not read back identically. */
function textBytes(what: string, s: string, allowEmpty: boolean): Buffer {
  if (typeof s !== 'string') throw invalid(`${what} must be a string`);
  if (!allowEmpty && s.length === 0) throw invalid(`${what} is empty`);
  if (s.includes('\0')) throw invalid(`${what} contains a NUL character: it would be cut short in the image`);
  if (LONE_SURROGATE.test(s)) throw invalid(`${what} contains an unpaired UTF-16 surrogate: it has no UTF-8 form`);
  return Buffer.from(s, 'utf8');
}

/** The data area: XML\0 [cookie\0] then zeros up to dataLen. */
function buildDataArea(xml: Buffer, cookie: Buffer | undefined, dataLen: number): Buffer {
  const area = Buffer.alloc(dataLen);
  xml.copy(area, 0);
  if (cookie) cookie.copy(area, xml.length + 1);
  return area;
}

/** Header + XML (+cookie) + padding: exactly the bytes that precede QEMU's stream. */
export function encodeSaveHeader(opts: EncodeSaveHeaderOptions): Buffer {
  const order = opts.byteOrder ?? hostByteOrder();
  if (order !== 'LE' && order !== 'BE') throw invalid(`unknown byte order ${String(order)}`);
  const formatNumber: unknown = (SaveFormat as Record<string, unknown>)[opts.format];
  if (!Object.prototype.hasOwnProperty.call(SaveFormat, opts.format) || typeof formatNumber !== 'number') {
    throw invalid(`unknown save image format ${JSON.stringify(opts.format)} (known: ${Object.keys(SaveFormat).join(', ')})`);
  }
  const xml = textBytes('domain XML', opts.domainXml, false);
  const cookie = opts.cookie === undefined ? undefined : textBytes('save cookie', opts.cookie, true);
  const xmlLen = xml.length + 1;
  const used = xmlLen + (cookie ? cookie.length + 1 : 0);
  const dataLen = used + SAVE_XML_PADDING_BYTES;
  if (dataLen > DEFAULT_MAX_HEADER_BYTES) {
    throw invalid(`domain XML and cookie are too large for a save image (${used} bytes; the limit is ${DEFAULT_MAX_HEADER_BYTES - SAVE_XML_PADDING_BYTES})`);
  }

  const out = Buffer.alloc(SAVE_HEADER_SIZE + dataLen);
  out.write(opts.complete === true ? SAVE_MAGIC : SAVE_MAGIC_PARTIAL, OFFSET.magic, MAGIC_LEN, 'latin1');
  writeU32(out, OFFSET.version, SAVE_VERSION, order);
  writeU32(out, OFFSET.dataLen, dataLen, order);
  writeU32(out, OFFSET.wasRunning, opts.wasRunning ? 1 : 0, order);
  writeU32(out, OFFSET.format, formatNumber, order);
  writeU32(out, OFFSET.cookieOffset, cookie ? xmlLen : 0, order);
  // unused[14] stays zero (Buffer.alloc)
  buildDataArea(xml, cookie, dataLen).copy(out, SAVE_HEADER_SIZE);
  return out;
}

// ---------------------------------------------------------------- decoding

interface FixedHeader {
  complete: boolean;
  version: number;
  dataLen: number;
  wasRunning: boolean;
  format: SaveFormatName;
  cookieOffset: number;
  byteOrder: ByteOrder;
}

// The worker reads as root whatever path a caller names: echoing the first bytes of
// any file (a token, /etc/shadow) in an error would leak them. Only a magic that
// is some libvirt image's is named.
function describeMagic(magic: Buffer): string {
  const text = magic.toString('latin1');
  return /^Libvirt[\x20-\x7e]*$/.test(text) ? JSON.stringify(text) : 'not a libvirt save image magic (bytes withheld)';
}

/** Validates the 92 fixed bytes: magic, byte order, version, data_len > 0, format, cookie offset. */
function parseFixed(buf: Buffer, opts: DecodeOptions): FixedHeader {
  if (buf.length < SAVE_HEADER_SIZE) {
    throw invalid(`image is truncated: ${buf.length} bytes, but the libvirt save header alone is ${SAVE_HEADER_SIZE} bytes`, { size: buf.length });
  }
  const magic = buf.subarray(OFFSET.magic, OFFSET.magic + MAGIC_LEN);
  let complete: boolean;
  if (magic.equals(Buffer.from(SAVE_MAGIC, 'latin1'))) {
    complete = true;
  } else if (magic.equals(Buffer.from(SAVE_MAGIC_PARTIAL, 'latin1'))) {
    if (opts.allowPartial !== true) {
      throw invalid(`image is incomplete: header magic is ${SAVE_MAGIC_PARTIAL} (the save did not finish)`, { magic: SAVE_MAGIC_PARTIAL });
    }
    complete = false;
  } else {
    throw invalid(`not a libvirt QEMU save image: magic is ${describeMagic(magic)}, expected ${SAVE_MAGIC}`);
  }

  // Read in this host's order; a version above ours means the image came from a
  // host of the other endianness: swap and look again (what libvirt does).
  let order = hostByteOrder();
  let version = readU32(buf, OFFSET.version, order);
  if (version > SAVE_VERSION) {
    order = otherOrder(order);
    version = readU32(buf, OFFSET.version, order);
  }
  if (version > SAVE_VERSION || version < 1) {
    throw invalid(`unsupported save image version ${readU32(buf, OFFSET.version, hostByteOrder())} (supported: 1 and ${SAVE_VERSION}, either byte order)`, {
      versionLE: buf.readUInt32LE(OFFSET.version),
      versionBE: buf.readUInt32BE(OFFSET.version),
    });
  }

  const dataLen = readU32(buf, OFFSET.dataLen, order);
  if (dataLen === 0) throw invalid('invalid save image header: data length is 0 (no domain XML)', { dataLen });

  const wasRunning = readU32(buf, OFFSET.wasRunning, order) !== 0;

  const formatNumber = readU32(buf, OFFSET.format, order);
  let format: SaveFormatName;
  if (version === 1) {
    // Version 1 predates compression: the word was unused and readers ignore it.
    format = 'raw';
  } else {
    const name = saveFormatFromNumber(formatNumber);
    if (name === undefined) {
      if (formatNumber === LIBVIRT_SPARSE_FORMAT) {
        throw invalid(`unsupported save image format ${formatNumber} (libvirt "sparse", QEMU mapped-ram): vmferry cannot restore it`, { format: formatNumber });
      }
      throw invalid(
        `unknown save image format number ${formatNumber} (known: ${Object.entries(SaveFormat)
          .map(([k, v]) => `${v} ${k}`)
          .join(', ')})`,
        { format: formatNumber },
      );
    }
    format = name;
  }

  const cookieOffset = readU32(buf, OFFSET.cookieOffset, order);
  if (cookieOffset > dataLen) {
    throw invalid(`invalid save image header: cookie offset ${cookieOffset} lies beyond the data area (${dataLen} bytes)`, { cookieOffset, dataLen });
  }
  return { complete, version, dataLen, wasRunning, format, cookieOffset, byteOrder: order };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function nulTerminatedText(what: string, area: Buffer, areaOffset: number): string {
  const nul = area.indexOf(0);
  if (nul < 0) {
    throw invalid(`${what} is not NUL-terminated within its ${area.length}-byte area (image is corrupt)`, { offset: areaOffset, length: area.length });
  }
  try {
    return utf8.decode(area.subarray(0, nul));
  } catch {
    throw invalid(`${what} is not valid UTF-8 (image is corrupt)`, { offset: areaOffset, length: nul });
  }
}

function decodeWithFixed(buf: Buffer, fixed: FixedHeader): SaveImageHeader {
  const available = buf.length - SAVE_HEADER_SIZE;
  if (fixed.dataLen > available) {
    throw invalid(`image is truncated: header says the XML area is ${fixed.dataLen} bytes, but only ${available} bytes follow the header`, {
      dataLen: fixed.dataLen,
      available,
    });
  }
  const area = buf.subarray(SAVE_HEADER_SIZE, SAVE_HEADER_SIZE + fixed.dataLen);
  const xmlEnd = fixed.cookieOffset === 0 ? fixed.dataLen : fixed.cookieOffset;
  const domainXml = nulTerminatedText('domain XML', area.subarray(0, xmlEnd), SAVE_HEADER_SIZE);
  if (domainXml.length === 0) throw invalid('domain XML in the save image is empty', { offset: SAVE_HEADER_SIZE });

  let cookie: string | undefined;
  if (xmlEnd < fixed.dataLen) {
    const text = nulTerminatedText('save cookie', area.subarray(xmlEnd), SAVE_HEADER_SIZE + xmlEnd);
    if (text.length > 0) cookie = text;
  }

  const header: SaveImageHeader = {
    complete: fixed.complete,
    version: fixed.version,
    dataLen: fixed.dataLen,
    wasRunning: fixed.wasRunning,
    format: fixed.format,
    cookieOffset: fixed.cookieOffset,
    domainXml,
    streamOffset: SAVE_HEADER_SIZE + fixed.dataLen,
    byteOrder: fixed.byteOrder,
  };
  if (cookie !== undefined) header.cookie = cookie;
  return header;
}

/**
 * Decodes and validates a header from a buffer holding at least the header and
 * its data area. Refuses a partial (LibvirtQemudPart) image unless
 * `opts.allowPartial`.
 */
export function decodeSaveHeader(buf: Buffer, opts: DecodeOptions = {}): SaveImageHeader {
  if (!Buffer.isBuffer(buf)) throw invalid('save image header must be a Buffer');
  return decodeWithFixed(buf, parseFixed(buf, opts));
}

/** Like decodeSaveHeader but accepts a partial image: for diagnostics, never for restore. */
export function decodeSaveHeaderAllowPartial(buf: Buffer): SaveImageHeader {
  return decodeSaveHeader(buf, { allowPartial: true });
}

// ---------------------------------------------------------------- files

function ioError(path: string, action: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return invalid(`save image ${path} does not exist`, { path });
  return vmError(ErrorType.OperationFailed, `cannot ${action} save image ${path}: ${e.message}`, { path, code: e.code });
}

async function openImage(path: string, flags: 'r' | 'r+'): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, flags);
  } catch (err) {
    throw ioError(path, 'open', err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw invalid(`save image ${path} is not a regular file`, { path });
    return { fh, size: st.size };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

async function readExactly(fh: FileHandle, path: string, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, done, length - done, position + done));
    } catch (err) {
      throw ioError(path, 'read', err);
    }
    if (n === 0) throw invalid(`image is truncated: ${path} ended after ${position + done} bytes while reading its header`, { path });
    done += n;
  }
  return buf;
}

async function writeExactly(fh: FileHandle, path: string, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    try {
      done += (await fh.write(data, done, data.length - done, position + done)).bytesWritten;
    } catch (err) {
      throw ioError(path, 'write', err);
    }
  }
}

async function syncFile(fh: FileHandle, path: string): Promise<void> {
  try {
    await fh.sync();
  } catch (err) {
    throw ioError(path, 'sync', err);
  }
}

async function syncDir(path: string): Promise<void> {
  let dh: FileHandle | undefined;
  try {
    dh = await open(dirname(path), 'r');
    await dh.sync();
  } catch (err) {
    throw ioError(path, 'sync the directory of', err);
  } finally {
    await dh?.close();
  }
}

/** Reads and validates the fixed header and its data area from an open image, never past it. */
async function readHeaderFrom(fh: FileHandle, path: string, size: number, opts: ReadSaveHeaderOptions): Promise<{ header: SaveImageHeader; raw: Buffer }> {
  const limit = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (size < SAVE_HEADER_SIZE) {
    throw invalid(`image is truncated: ${path} is ${size} bytes, but the libvirt save header alone is ${SAVE_HEADER_SIZE} bytes`, { path, size });
  }
  const fixedBytes = await readExactly(fh, path, SAVE_HEADER_SIZE, 0);
  const fixed = parseFixed(fixedBytes, opts);
  if (fixed.dataLen > limit) {
    throw invalid(`save image header of ${path} claims a ${fixed.dataLen}-byte XML area, above the ${limit}-byte limit (corrupt or hostile image)`, {
      path,
      dataLen: fixed.dataLen,
      limit,
    });
  }
  if (SAVE_HEADER_SIZE + fixed.dataLen > size) {
    throw invalid(
      `image is truncated: header says the XML area is ${fixed.dataLen} bytes, but ${path} holds only ${size - SAVE_HEADER_SIZE} bytes after the header`,
      { path, dataLen: fixed.dataLen, size },
    );
  }
  const raw = Buffer.concat([fixedBytes, await readExactly(fh, path, fixed.dataLen, SAVE_HEADER_SIZE)]);
  return { header: decodeWithFixed(raw, fixed), raw };
}

/**
 * Reads only the header area of a save image file (never QEMU's stream) and
 * validates it; a complete image must also have stream bytes after it.
 */
export async function readSaveHeader(path: string, opts: ReadSaveHeaderOptions = {}): Promise<SaveImageHeader> {
  const { fh, size } = await openImage(path, 'r');
  try {
    const { header } = await readHeaderFrom(fh, path, size, opts);
    if (header.complete && size <= header.streamOffset) {
      throw invalid(`save image ${path} has no migration stream after its header (file ends at byte ${size})`, {
        path,
        size,
        streamOffset: header.streamOffset,
      });
    }
    return header;
  } finally {
    await fh.close();
  }
}

/**
 * Rewrites the 16 magic bytes from Part to Save in place and makes it durable
 * (file, then directory). Call only after QEMU finished and the stream is
 * flushed. Idempotent: an image already marked complete is left untouched.
 */
export async function markSaveImageComplete(path: string): Promise<void> {
  const { fh, size } = await openImage(path, 'r+');
  try {
    const { header } = await readHeaderFrom(fh, path, size, { allowPartial: true });
    if (header.complete) return;
    if (size <= header.streamOffset) {
      throw invalid(`refusing to mark ${path} complete: there is no migration stream after its header`, { path, size, streamOffset: header.streamOffset });
    }
    await writeExactly(fh, path, Buffer.from(SAVE_MAGIC, 'latin1'), OFFSET.magic);
    await syncFile(fh, path);
  } finally {
    await fh.close();
  }
  await syncDir(path);
}

/**
 * save-image-define: replaces the domain XML of a complete image in place, the
 * way libvirt does: the new XML (and the existing cookie, moved right after
 * it) must fit in the existing data area; the rest of the area is zeroed.
 * The header keeps its magic, byte order and every other field; only
 * cookieOffset follows the XML. Bytes from streamOffset on are never written.
 */
export async function rewriteSaveImageXml(path: string, newXml: string): Promise<void> {
  const xml = textBytes('new domain XML', newXml, false);
  const { fh, size } = await openImage(path, 'r+');
  try {
    const { header, raw } = await readHeaderFrom(fh, path, size, {});
    let cookie: Buffer | undefined;
    if (header.cookieOffset !== 0 && header.cookieOffset < header.dataLen) {
      const area = raw.subarray(SAVE_HEADER_SIZE + header.cookieOffset, SAVE_HEADER_SIZE + header.dataLen);
      cookie = Buffer.from(area.subarray(0, area.indexOf(0)));
    }
    const cookieBytes = cookie ? cookie.length + 1 : 0;
    if (xml.length + 1 + cookieBytes > header.dataLen) {
      const room = header.dataLen - cookieBytes - 1;
      throw invalid(
        `new domain XML does not fit in the save image: it is ${xml.length} bytes, the image has room for ${room} (the XML area is sized when the image is written)`,
        {
          path,
          xmlBytes: xml.length,
          room,
          dataLen: header.dataLen,
        },
      );
    }
    const out = Buffer.from(raw);
    writeU32(out, OFFSET.cookieOffset, cookie ? xml.length + 1 : 0, header.byteOrder);
    buildDataArea(xml, cookie, header.dataLen).copy(out, SAVE_HEADER_SIZE);
    // What we write must read back as the same image with the new XML.
    const check = decodeWithFixed(out, parseFixed(out, {}));
    if (check.domainXml !== newXml || check.cookie !== header.cookie || check.streamOffset !== header.streamOffset) {
      throw vmError(ErrorType.InternalError, `rewriting the XML of ${path} would not read back identically; nothing was written`, { path });
    }
    await writeExactly(fh, path, out, 0);
    await syncFile(fh, path);
  } finally {
    await fh.close();
  }
}
