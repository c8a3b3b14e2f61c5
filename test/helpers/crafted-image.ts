// Save images made by hand, valid or broken in one chosen way, for what a
// restore must refuse before it starts anything.
import { writeFileSync } from 'node:fs';
import { encodeSaveHeader, SAVE_HEADER_SIZE } from '../../src/saveimage/header.js';

/** Byte offsets in libvirt's fixed header (virQEMUSaveHeader). */
export const HEADER_OFFSET = { magic: 0, version: 16, dataLen: 20, wasRunning: 24, format: 28, cookieOffset: 32 } as const;

/** A complete raw image: header with `xml`, then a few bytes standing in for QEMU's stream. */
export function craftImage(xml: string): Buffer {
  const header = encodeSaveHeader({ domainXml: xml, wasRunning: true, format: 'raw', complete: true });
  return Buffer.concat([header, Buffer.alloc(4096, 0x5a)]);
}

/** Writes `craftImage(xml)` changed by `edit` to `path`. */
export function writeCraftedImage(path: string, xml: string, edit: (img: Buffer) => Buffer = (b) => b): void {
  writeFileSync(path, edit(craftImage(xml)));
}

/** Replaces the first occurrence of `marker` inside the XML area with raw bytes (same length). */
export function patchXmlBytes(img: Buffer, marker: string, bytes: Buffer): Buffer {
  const at = img.indexOf(Buffer.from(marker, 'utf8'), SAVE_HEADER_SIZE);
  if (at < 0 || bytes.length !== Buffer.byteLength(marker)) throw new Error(`cannot patch ${marker}`);
  bytes.copy(img, at);
  return img;
}
