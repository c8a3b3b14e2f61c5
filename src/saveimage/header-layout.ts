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
import { endianness } from 'node:os';
import { ErrorType, vmError } from '../common/errors.js';
import type { SaveFormatName } from '../common/save-formats.js';

export const SAVE_MAGIC = 'LibvirtQemudSave';
export const SAVE_MAGIC_PARTIAL = 'LibvirtQemudPart';
export const SAVE_VERSION = 2;
/** sizeof the libvirt header struct: 16 magic bytes + 19 uint32 words. */
export const SAVE_HEADER_SIZE = 92;
/** Spare zero bytes libvirt adds after XML (+cookie) when it first writes an image. */
export const SAVE_XML_PADDING_BYTES = 64 * 1024;
/** Upper bound on data_len accepted from a file: beyond it the image is treated as hostile. */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024 * 1024;

export const OFFSET = { magic: 0, version: 16, dataLen: 20, wasRunning: 24, format: 28, cookieOffset: 32, unused: 36 } as const;
export const MAGIC_LEN = 16;

export type ByteOrder = 'LE' | 'BE';

/** The 92 fixed bytes, read and checked. */
export interface SaveHeaderFixed {
  complete: boolean;
  version: number;
  dataLen: number;
  wasRunning: boolean;
  format: SaveFormatName;
  cookieOffset: number;
  byteOrder: ByteOrder;
}

/** The fixed bytes and what the data area holds. */
export interface SaveImageHeader extends SaveHeaderFixed {
  domainXml: string;
  cookie?: string;
  /** byte offset where QEMU's stream starts */
  streamOffset: number;
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

export function hostByteOrder(): ByteOrder {
  return endianness();
}

export function otherOrder(o: ByteOrder): ByteOrder {
  return o === 'LE' ? 'BE' : 'LE';
}

export function readU32(buf: Buffer, offset: number, order: ByteOrder): number {
  return order === 'LE' ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset);
}

export function writeU32(buf: Buffer, offset: number, value: number, order: ByteOrder): void {
  if (order === 'LE') buf.writeUInt32LE(value, offset);
  else buf.writeUInt32BE(value, offset);
}

export function invalid(message: string, details?: Record<string, unknown>): Error {
  return vmError(ErrorType.OperationInvalid, message, details);
}
