// Bytes <-> SaveImageHeader: encoding what precedes QEMU's stream, and decoding
// (with every check a hostile or corrupt image needs) the fixed part and the
// data area behind it.
import { SaveFormat, saveFormatFromNumber, type SaveFormatName } from '../common/save-formats.js';
import {
  DEFAULT_MAX_HEADER_BYTES,
  hostByteOrder,
  invalid,
  MAGIC_LEN,
  OFFSET,
  otherOrder,
  readU32,
  SAVE_HEADER_SIZE,
  SAVE_MAGIC,
  SAVE_MAGIC_PARTIAL,
  SAVE_VERSION,
  SAVE_XML_PADDING_BYTES,
  writeU32,
  type DecodeOptions,
  type EncodeSaveHeaderOptions,
  type SaveHeaderFixed,
  type SaveImageHeader,
} from './header-layout.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** UTF-8 bytes of a string stored NUL-terminated; refuses what would not read back identically. */
export function textBytes(what: string, s: string, allowEmpty: boolean): Buffer {
  if (typeof s !== 'string') throw invalid(`${what} must be a string`);
  if (!allowEmpty && s.length === 0) throw invalid(`${what} is empty`);
  if (s.includes('\0')) throw invalid(`${what} contains a NUL character: it would be cut short in the image`);
  if (LONE_SURROGATE.test(s)) throw invalid(`${what} contains an unpaired UTF-16 surrogate: it has no UTF-8 form`);
  return Buffer.from(s, 'utf8');
}

/** The data area: XML\0 [cookie\0] then zeros up to dataLen. */
export function buildDataArea(xml: Buffer, cookie: Buffer | undefined, dataLen: number): Buffer {
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

// The worker reads as root whatever path a caller names: echoing the first bytes of
// any file (a token, /etc/shadow) in an error would leak them. Only a magic that
// is some libvirt image's is named.
function describeMagic(magic: Buffer): string {
  const text = magic.toString('latin1');
  return /^Libvirt[\x20-\x7e]*$/.test(text) ? JSON.stringify(text) : 'not a libvirt save image magic (bytes withheld)';
}

/** Validates the 92 fixed bytes: magic, byte order, version, data_len > 0, format, cookie offset. */
export function parseFixed(buf: Buffer, opts: DecodeOptions): SaveHeaderFixed {
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

export function decodeWithFixed(buf: Buffer, fixed: SaveHeaderFixed): SaveImageHeader {
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

  const header: SaveImageHeader = { ...fixed, domainXml, streamOffset: SAVE_HEADER_SIZE + fixed.dataLen };
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
