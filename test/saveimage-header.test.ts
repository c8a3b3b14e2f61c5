// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The libvirt QEMU save-image header: pure code, no Temporal or QEMU.
//
// Layout checked against libvirt's src/qemu/qemu_saveimage.h and qemu_saveimage.c
// (libvirt/libvirt blobs at commits 0d3290d1 / 06bdb1b6, the tree with the
// "sparse" format, i.e. 11.x; and 8a88d3e5, a 9.x tree whose format enum ends at
// lzop, as in Debian 12's libvirt 9.0): struct virQEMUSaveHeader is a 16-byte
// magic followed by 19 uint32 words (version, data_len, was_running,
// format/compressed, cookieOffset, unused[14]) = 92 bytes, no padding; the
// data area is XML\0 [cookie\0] + 64 KiB of zeros; QEMU's stream starts right
// after it (no alignment); zstd is format 5.
import { afterEach, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SAVE_HEADER_SIZE,
  SAVE_XML_PADDING_BYTES,
  SaveFormat,
  decodeSaveHeader,
  decodeSaveHeaderAllowPartial,
  encodeSaveHeader,
  markSaveImageComplete,
  readSaveHeader,
  rewriteSaveImageXml,
  type SaveImageHeader,
} from '../src/saveimage/header.js';
import { compressorCommand, saveFormatFromNumber } from '../src/common/save-formats.js';
import { ErrorType, isVmError } from '../src/common/errors.js';

const XML = "<domain type='kvm'><name>vm1</name><uuid>9c4e4b5e-4f0a-4b8e-9d43-0b1d2f6e7a11</uuid><memory unit='KiB'>131072</memory></domain>";
const COOKIE = '<qemu-save-cookie><cpu mode="custom"/></qemu-save-cookie>';
const HOST: 'LE' | 'BE' = endianness();
const OTHER: 'LE' | 'BE' = HOST === 'LE' ? 'BE' : 'LE';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'vmferry-saveimage-'));
  dirs.push(d);
  return d;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function u32(buf: Buffer, off: number, order: 'LE' | 'BE'): number {
  return order === 'LE' ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
}

function setU32(buf: Buffer, off: number, v: number, order: 'LE' | 'BE' = HOST): Buffer {
  if (order === 'LE') buf.writeUInt32LE(v, off);
  else buf.writeUInt32BE(v, off);
  return buf;
}

function expectInvalid(fn: () => unknown, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(isVmError(caught, ErrorType.OperationInvalid), `expected OperationInvalid, got ${String(caught)}`).toBe(true);
  expect((caught as Error).message).toMatch(message);
}

async function expectInvalidAsync(p: Promise<unknown>, message: RegExp): Promise<void> {
  const caught = await p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (err: unknown) => err,
  );
  expect(isVmError(caught, ErrorType.OperationInvalid), `expected OperationInvalid, got ${String(caught)}`).toBe(true);
  expect((caught as Error).message).toMatch(message);
}

/** A header area followed by fake QEMU stream bytes. */
function image(header: Buffer, streamBytes = 4096): { bytes: Buffer; stream: Buffer } {
  const stream = randomBytes(streamBytes);
  return { bytes: Buffer.concat([header, stream]), stream };
}

describe('save image header: layout', () => {
  it('round-trips encode → decode, with and without a cookie, in every format', () => {
    for (const format of Object.keys(SaveFormat) as (keyof typeof SaveFormat)[]) {
      for (const cookie of [undefined, COOKIE]) {
        const buf = encodeSaveHeader({ domainXml: XML, wasRunning: true, format, cookie, complete: true });
        const h = decodeSaveHeader(buf);
        const expected: SaveImageHeader = {
          complete: true,
          version: 2,
          dataLen: Buffer.byteLength(XML) + 1 + (cookie ? Buffer.byteLength(cookie) + 1 : 0) + SAVE_XML_PADDING_BYTES,
          wasRunning: true,
          format,
          cookieOffset: cookie ? Buffer.byteLength(XML) + 1 : 0,
          domainXml: XML,
          streamOffset: buf.length,
          byteOrder: HOST,
        };
        if (cookie) expected.cookie = cookie;
        expect(h).toEqual(expected);
      }
    }
    const paused = decodeSaveHeaderAllowPartial(encodeSaveHeader({ domainXml: XML, wasRunning: false, format: 'raw' }));
    expect(paused.wasRunning).toBe(false);
    expect(paused.complete).toBe(false);
  });

  it("uses libvirt's format numbers (zstd = 5, sparse = 6) and compressor argument vectors", () => {
    expect(SaveFormat).toEqual({ raw: 0, gzip: 1, bzip2: 2, xz: 3, lzop: 4, zstd: 5, sparse: 6 });
    expect(saveFormatFromNumber(5)).toBe('zstd');
    expect(saveFormatFromNumber(6)).toBe('sparse');
    expect(saveFormatFromNumber(7)).toBeUndefined();
    expect(compressorCommand('raw')).toBeUndefined();
    // sparse is QEMU's mapped-ram stream, never piped through a program.
    expect(compressorCommand('sparse')).toBeUndefined();
    expect(compressorCommand('xz')).toEqual({ program: 'xz', compressArgs: ['-c', '-3'], decompressArgs: ['-dc'] });
    expect(compressorCommand('lzop')?.decompressArgs).toEqual(['-dc', '--ignore-warn']);
    expect(compressorCommand('zstd')).toEqual({ program: 'zstd', compressArgs: ['-c'], decompressArgs: ['-dc'] });
  });

  it("places every field where libvirt's struct puts it (92-byte header, XML at 92, stream after 64 KiB padding)", () => {
    expect(SAVE_HEADER_SIZE).toBe(16 + 4 * (5 + 14));
    for (const order of ['LE', 'BE'] as const) {
      const buf = encodeSaveHeader({ domainXml: XML, wasRunning: true, format: 'xz', cookie: COOKIE, byteOrder: order });
      const xmlLen = Buffer.byteLength(XML) + 1;
      const cookieLen = Buffer.byteLength(COOKIE) + 1;
      const dataLen = xmlLen + cookieLen + 64 * 1024;
      expect(buf.subarray(0, 16).toString('latin1')).toBe('LibvirtQemudPart');
      expect(u32(buf, 16, order)).toBe(2);
      expect(u32(buf, 20, order)).toBe(dataLen);
      expect(u32(buf, 24, order)).toBe(1);
      expect(u32(buf, 28, order)).toBe(3);
      expect(u32(buf, 32, order)).toBe(xmlLen);
      expect(buf.subarray(36, 92).every((b) => b === 0)).toBe(true); // unused[14]
      expect(buf.subarray(92, 92 + xmlLen - 1).toString('utf8')).toBe(XML);
      expect(buf[92 + xmlLen - 1]).toBe(0);
      expect(buf.subarray(92 + xmlLen, 92 + xmlLen + cookieLen - 1).toString('utf8')).toBe(COOKIE);
      expect(buf[92 + xmlLen + cookieLen - 1]).toBe(0);
      expect(buf.subarray(92 + xmlLen + cookieLen).every((b) => b === 0)).toBe(true);
      expect(buf.subarray(92 + xmlLen + cookieLen).length).toBe(64 * 1024);
      // The stream begins right after the data area: no page alignment.
      expect(buf.length).toBe(92 + dataLen);
      expect(decodeSaveHeaderAllowPartial(buf).streamOffset).toBe(92 + dataLen);
    }
  });

  it('counts the XML in UTF-8 bytes, not characters', () => {
    const xml = '<domain><description>café ☕ 🚀</description></domain>';
    const buf = encodeSaveHeader({ domainXml: xml, wasRunning: false, format: 'raw', complete: true });
    const h = decodeSaveHeader(buf);
    expect(h.domainXml).toBe(xml);
    expect(h.dataLen).toBe(Buffer.byteLength(xml, 'utf8') + 1 + SAVE_XML_PADDING_BYTES);
    expect(Buffer.byteLength(xml, 'utf8')).toBeGreaterThan(xml.length);
  });

  // Golden bytes written out by hand from the struct definition (see the file
  // header), not produced by our encoder: libvirt is not installed here, and
  // must not be, so this is the compatibility check in both directions.
  it('matches hand-computed golden bytes (little-endian, Part, raw, no cookie)', () => {
    const golden = Buffer.from(
      '4c69627669727451656d756450617274' + // "LibvirtQemudPart"
        '02000000' + // version 2
        '0a000100' + // data_len = 10 + 65536 = 0x0001000a
        '01000000' + // was_running 1
        '00000000' + // format 0 = raw
        '00000000' + // cookieOffset 0 = no cookie
        '00'.repeat(56) + // unused[14]
        '3c646f6d61696e2f3e00', // "<domain/>\0" at offset 92
      'hex',
    );
    const expected = Buffer.concat([golden, Buffer.alloc(65536)]);
    expect(expected.length).toBe(92 + 10 + 65536);
    const ours = encodeSaveHeader({ domainXml: '<domain/>', wasRunning: true, format: 'raw', byteOrder: 'LE' });
    expect(ours.equals(expected)).toBe(true);
    // …and an image libvirt wrote with these bytes decodes as expected.
    const h = decodeSaveHeaderAllowPartial(Buffer.concat([expected, Buffer.from('QEVM')]));
    expect(h).toMatchObject({
      complete: false,
      version: 2,
      dataLen: 65546,
      wasRunning: true,
      format: 'raw',
      cookieOffset: 0,
      domainXml: '<domain/>',
      streamOffset: 65638,
      byteOrder: 'LE',
    });
    expect(h.cookie).toBeUndefined();
  });

  it('matches hand-computed golden bytes (big-endian, Save, gzip, cookie), read the way libvirt reads a foreign-endian image', () => {
    const golden = Buffer.from(
      '4c69627669727451656d756453617665' + // "LibvirtQemudSave"
        '00000002' + // version 2
        '00010014' + // data_len = 10 + 10 + 65536
        '00000000' + // was_running 0
        '00000001' + // format 1 = gzip
        '0000000a' + // cookieOffset 10 = strlen("<domain/>") + 1
        '00'.repeat(56) +
        '3c646f6d61696e2f3e00' + // "<domain/>\0"
        '3c636f6f6b69652f3e00', // "<cookie/>\0"
      'hex',
    );
    const expected = Buffer.concat([golden, Buffer.alloc(65536)]);
    const ours = encodeSaveHeader({ domainXml: '<domain/>', cookie: '<cookie/>', wasRunning: false, format: 'gzip', complete: true, byteOrder: 'BE' });
    expect(ours.equals(expected)).toBe(true);
    const h = decodeSaveHeader(Buffer.concat([expected, randomBytes(16)]));
    expect(h).toEqual({
      complete: true,
      version: 2,
      dataLen: 65556,
      wasRunning: false,
      format: 'gzip',
      cookieOffset: 10,
      domainXml: '<domain/>',
      cookie: '<cookie/>',
      streamOffset: 92 + 65556,
      byteOrder: 'BE',
    });
  });

  it('reads an image from a host of the other byte order by swapping, like libvirt (version > 2 ⇒ swap)', () => {
    const foreign = encodeSaveHeader({ domainXml: XML, cookie: COOKIE, wasRunning: true, format: 'zstd', complete: true, byteOrder: OTHER });
    const native = encodeSaveHeader({ domainXml: XML, cookie: COOKIE, wasRunning: true, format: 'zstd', complete: true });
    expect(foreign.equals(native)).toBe(false);
    expect(u32(foreign, 16, HOST)).toBe(0x02000000); // what a native read sees first
    const a = decodeSaveHeader(foreign);
    const b = decodeSaveHeader(native);
    expect(a.byteOrder).toBe(OTHER);
    expect(b.byteOrder).toBe(HOST);
    expect({ ...a, byteOrder: HOST }).toEqual(b);
    // A swapped version that is still unknown is refused, in either reading.
    expectInvalid(() => decodeSaveHeader(setU32(Buffer.from(foreign), 16, 3, OTHER)), /unsupported save image version/);
  });

  it('reads a version 1 image (pre-compression: the format word is ignored)', () => {
    const buf = encodeSaveHeader({ domainXml: XML, wasRunning: true, format: 'raw', complete: true });
    setU32(buf, 16, 1);
    setU32(buf, 28, 3); // libvirt never decompresses a version 1 image
    expect(decodeSaveHeader(buf)).toMatchObject({ version: 1, format: 'raw', domainXml: XML });
  });

  it('refuses to encode what would not read back identically', () => {
    expectInvalid(() => encodeSaveHeader({ domainXml: '', wasRunning: true, format: 'raw' }), /empty/);
    expectInvalid(() => encodeSaveHeader({ domainXml: '<domain>\0</domain>', wasRunning: true, format: 'raw' }), /NUL/);
    expectInvalid(() => encodeSaveHeader({ domainXml: XML, cookie: 'a\0b', wasRunning: true, format: 'raw' }), /NUL/);
    expectInvalid(() => encodeSaveHeader({ domainXml: '<domain>\uD800</domain>', wasRunning: true, format: 'raw' }), /surrogate/);
    expectInvalid(() => encodeSaveHeader({ domainXml: XML, wasRunning: true, format: 'lz4' as 'raw' }), /unknown save image format "lz4"/);
    expectInvalid(() => encodeSaveHeader({ domainXml: XML, wasRunning: true, format: 'toString' as 'raw' }), /unknown save image format/);
    expectInvalid(() => encodeSaveHeader({ domainXml: 'x'.repeat(17 * 1024 * 1024), wasRunning: true, format: 'raw' }), /too large/);
  });
});

describe('save image header: partial vs complete', () => {
  it('refuses a Part image with a clear error, and reads it only when asked to', () => {
    const part = encodeSaveHeader({ domainXml: XML, wasRunning: true, format: 'raw' });
    expect(part.subarray(0, 16).toString('latin1')).toBe('LibvirtQemudPart');
    expectInvalid(() => decodeSaveHeader(part), /^image is incomplete: header magic is LibvirtQemudPart \(the save did not finish\)$/);
    expect(decodeSaveHeaderAllowPartial(part).complete).toBe(false);
    expect(decodeSaveHeader(part, { allowPartial: true }).domainXml).toBe(XML);
  });

  it('markSaveImageComplete flips Part to Save in a real file and keeps every other byte', async () => {
    const dir = await tempDir();
    const path = join(dir, 'vm1.save');
    const { bytes, stream } = image(encodeSaveHeader({ domainXml: XML, cookie: COOKIE, wasRunning: true, format: 'gzip' }), 256 * 1024);
    await writeFile(path, bytes);
    await expectInvalidAsync(readSaveHeader(path), /image is incomplete/);

    await markSaveImageComplete(path);
    const after = await readFile(path);
    expect(after.length).toBe(bytes.length);
    expect(after.subarray(0, 16).toString('latin1')).toBe('LibvirtQemudSave');
    const changed = [...after.keys()].filter((i) => after[i] !== bytes[i]);
    expect(changed).toEqual([12, 14, 15]); // "Part" → "Save" ('a' is shared), nothing else
    const expected = Buffer.from(bytes);
    expected.write('LibvirtQemudSave', 0, 'latin1');
    expect(after.equals(expected)).toBe(true);
    const h = await readSaveHeader(path);
    expect(h).toMatchObject({ complete: true, domainXml: XML, cookie: COOKIE, format: 'gzip' });
    expect(sha256(after.subarray(h.streamOffset))).toBe(sha256(stream));

    await markSaveImageComplete(path); // idempotent
    expect((await readFile(path)).equals(after)).toBe(true);
  });

  it('markSaveImageComplete refuses an image with no stream, and one that is not a save image', async () => {
    const dir = await tempDir();
    const empty = join(dir, 'nostream.save');
    await writeFile(empty, encodeSaveHeader({ domainXml: XML, wasRunning: true, format: 'raw' }));
    await expectInvalidAsync(markSaveImageComplete(empty), /no migration stream/);
    expect((await readFile(empty)).subarray(0, 16).toString('latin1')).toBe('LibvirtQemudPart');

    const junk = join(dir, 'junk.save');
    await writeFile(junk, randomBytes(200_000));
    const before = await readFile(junk);
    await expectInvalidAsync(markSaveImageComplete(junk), /not a libvirt QEMU save image/);
    expect((await readFile(junk)).equals(before)).toBe(true);
  });
});

describe('save image header: save-image-define (rewrite XML in place)', () => {
  it('changes only the XML area (and cookieOffset), keeps the cookie and the stream bytes identical', async () => {
    for (const order of ['LE', 'BE'] as const) {
      const dir = await tempDir();
      const path = join(dir, 'vm1.save');
      const { bytes, stream } = image(
        encodeSaveHeader({ domainXml: XML, cookie: COOKIE, wasRunning: true, format: 'lzop', complete: true, byteOrder: order }),
        512 * 1024,
      );
      await writeFile(path, bytes);
      const before = await readSaveHeader(path);

      const bigger = XML.replace('</domain>', `<description>${'é'.repeat(20_000)}</description></domain>`);
      await rewriteSaveImageXml(path, bigger);
      const after = await readFile(path);
      const h = await readSaveHeader(path);
      expect(after.length).toBe(bytes.length);
      expect(h).toEqual({ ...before, domainXml: bigger, cookieOffset: Buffer.byteLength(bigger) + 1 });
      expect(h.byteOrder).toBe(order);
      expect(sha256(after.subarray(h.streamOffset))).toBe(sha256(stream));
      expect(after.subarray(0, 32).equals(bytes.subarray(0, 32))).toBe(true); // magic, version, data_len, was_running, format
      expect(after.subarray(36, 92).equals(bytes.subarray(36, 92))).toBe(true); // unused words
      const cookieEnd = 92 + h.cookieOffset + Buffer.byteLength(COOKIE) + 1;
      expect(after.subarray(cookieEnd, h.streamOffset).every((b) => b === 0)).toBe(true);

      // Smaller again: old bytes are zeroed, not left behind.
      await rewriteSaveImageXml(path, XML);
      const back = await readFile(path);
      expect(back.equals(bytes)).toBe(true);
    }
  });

  it('refuses an XML that does not fit, and leaves the file untouched', async () => {
    const dir = await tempDir();
    const path = join(dir, 'vm1.save');
    const { bytes } = image(encodeSaveHeader({ domainXml: XML, cookie: COOKIE, wasRunning: false, format: 'raw', complete: true }));
    await writeFile(path, bytes);
    const h = await readSaveHeader(path);
    const room = h.dataLen - (Buffer.byteLength(COOKIE) + 1) - 1;

    const tooBig = `<domain>${'x'.repeat(room - 17 + 1)}</domain>`;
    expect(Buffer.byteLength(tooBig)).toBe(room + 1);
    await expectInvalidAsync(
      rewriteSaveImageXml(path, tooBig),
      new RegExp(`does not fit in the save image: it is ${room + 1} bytes, the image has room for ${room}`),
    );
    expect((await readFile(path)).equals(bytes)).toBe(true);

    const exact = `<domain>${'x'.repeat(room - 17)}</domain>`;
    await rewriteSaveImageXml(path, exact);
    expect((await readSaveHeader(path)).domainXml).toBe(exact);
    expect(sha256((await readFile(path)).subarray(h.streamOffset))).toBe(sha256(bytes.subarray(h.streamOffset)));
  });

  it('refuses to rewrite a partial image or with a bad XML string', async () => {
    const dir = await tempDir();
    const path = join(dir, 'vm1.save');
    const { bytes } = image(encodeSaveHeader({ domainXml: XML, wasRunning: true, format: 'raw' }));
    await writeFile(path, bytes);
    await expectInvalidAsync(rewriteSaveImageXml(path, XML), /image is incomplete/);
    await expectInvalidAsync(rewriteSaveImageXml(path, 'a\0b'), /NUL/);
    expect((await readFile(path)).equals(bytes)).toBe(true);
  });
});

describe('save image header: hostile input', () => {
  const good = (): Buffer => encodeSaveHeader({ domainXml: XML, cookie: COOKIE, wasRunning: true, format: 'raw', complete: true });

  it('gives a typed error for each kind of damage', () => {
    expectInvalid(() => decodeSaveHeader(good().subarray(0, 50)), /image is truncated: 50 bytes, but the libvirt save header alone is 92 bytes/);
    expectInvalid(() => decodeSaveHeader(Buffer.alloc(0)), /truncated/);

    const wrongMagic = good();
    wrongMagic.write('LibvirtXenSaveXX', 0, 'latin1');
    expectInvalid(() => decodeSaveHeader(wrongMagic), /not a libvirt QEMU save image: magic is "LibvirtXenSaveXX"/);
    const binaryMagic = good();
    binaryMagic.fill(0xff, 0, 16);
    expectInvalid(() => decodeSaveHeader(binaryMagic), /magic is not a libvirt save image magic \(bytes withheld\)/);

    expectInvalid(() => decodeSaveHeader(setU32(good(), 16, 3)), /unsupported save image version 3/);
    expectInvalid(() => decodeSaveHeader(setU32(good(), 16, 0)), /unsupported save image version 0/);
    expectInvalid(() => decodeSaveHeader(setU32(good(), 16, 0xffffffff)), /unsupported save image version/);

    expectInvalid(() => decodeSaveHeader(setU32(good(), 28, 9)), /unknown save image format number 9/);
    expectInvalid(() => decodeSaveHeader(setU32(good(), 28, 7)), /unknown save image format number 7 \(known: .*6 sparse\)/);
    // libvirt 11.2+'s sparse (QEMU mapped-ram) image: format word 6, the rest of the header as ever.
    expect(decodeSaveHeader(setU32(good(), 28, 6))).toMatchObject({ format: 'sparse', version: 2, domainXml: XML });

    const g = good();
    expectInvalid(
      () => decodeSaveHeader(setU32(good(), 20, g.length - 92 + 1)),
      /image is truncated: header says the XML area is \d+ bytes, but only \d+ bytes follow the header/,
    );
    expectInvalid(() => decodeSaveHeader(setU32(good(), 20, 0xffffffff)), /header says the XML area is 4294967295 bytes/);
    expectInvalid(() => decodeSaveHeader(setU32(good(), 20, 0)), /data length is 0/);

    expectInvalid(() => decodeSaveHeader(setU32(good(), 32, 0xffffffff)), /cookie offset 4294967295 lies beyond the data area/);
    expectInvalid(() => decodeSaveHeader(setU32(good(), 32, u32(g, 20, HOST) + 1)), /cookie offset \d+ lies beyond the data area/);
  });

  it('refuses an XML without NUL terminator, non-UTF-8 XML, an empty XML, an unterminated cookie', () => {
    // XML area (no cookie) filled to the end with non-NUL bytes.
    const noNul = Buffer.alloc(92 + 64);
    noNul.write('LibvirtQemudSave', 0, 'latin1');
    setU32(noNul, 16, 2);
    setU32(noNul, 20, 64);
    noNul.fill(0x41, 92);
    expectInvalid(() => decodeSaveHeader(noNul), /domain XML is not NUL-terminated within its 64-byte area/);

    // With a cookie: the XML must end inside [0, cookieOffset).
    const g = good();
    const xmlLen = Buffer.byteLength(XML) + 1;
    const shifted = setU32(Buffer.from(g), 32, xmlLen - 1); // cookie would start on the XML's NUL
    expectInvalid(() => decodeSaveHeader(shifted), /domain XML is not NUL-terminated/);

    const badUtf8 = good();
    badUtf8[92 + 5] = 0xc3;
    badUtf8[92 + 6] = 0x28;
    expectInvalid(() => decodeSaveHeader(badUtf8), /domain XML is not valid UTF-8/);
    const overlong = good();
    overlong[92 + 5] = 0xc0; // overlong encoding of '/'
    overlong[92 + 6] = 0xaf;
    expectInvalid(() => decodeSaveHeader(overlong), /not valid UTF-8/);

    const emptyXml = good();
    emptyXml[92] = 0;
    expectInvalid(() => decodeSaveHeader(emptyXml), /domain XML in the save image is empty/);

    const cookieNoNul = good();
    cookieNoNul.fill(0x42, 92 + xmlLen);
    expectInvalid(() => decodeSaveHeader(cookieNoNul), /save cookie is not NUL-terminated/);

    const badCookie = good();
    badCookie[92 + xmlLen + 1] = 0xff;
    expectInvalid(() => decodeSaveHeader(badCookie), /save cookie is not valid UTF-8/);
  });

  it('readSaveHeader guards the XML area size before reading, and checks it against the file size', async () => {
    const dir = await tempDir();

    const huge = join(dir, 'huge.save');
    const hugeBytes = setU32(good(), 20, 0xffffffff);
    await writeFile(huge, hugeBytes);
    await expectInvalidAsync(readSaveHeader(huge), /claims a 4294967295-byte XML area, above the 16777216-byte limit/);

    const over = join(dir, 'over.save');
    await writeFile(over, setU32(good(), 20, 1024 * 1024));
    await expectInvalidAsync(
      readSaveHeader(over),
      /image is truncated: header says the XML area is 1048576 bytes, but .* holds only \d+ bytes after the header/,
    );
    await expectInvalidAsync(readSaveHeader(over, { maxHeaderBytes: 4096 }), /above the 4096-byte limit/);

    const short = join(dir, 'short.save');
    await writeFile(short, good().subarray(0, 40));
    await expectInvalidAsync(readSaveHeader(short), /image is truncated: .* is 40 bytes/);

    const noStream = join(dir, 'nostream.save');
    await writeFile(noStream, good());
    await expectInvalidAsync(readSaveHeader(noStream), /has no migration stream after its header/);

    await expectInvalidAsync(readSaveHeader(join(dir, 'missing.save')), /does not exist/);
    const sub = join(dir, 'adir');
    await mkdir(sub);
    await expectInvalidAsync(readSaveHeader(sub), /is not a regular file/);

    const unknownFormat = join(dir, 'fmt.save');
    await writeFile(unknownFormat, Buffer.concat([setU32(good(), 28, 42), randomBytes(100)]));
    await expectInvalidAsync(readSaveHeader(unknownFormat), /unknown save image format number 42/);
  });

  it('readSaveHeader reads only the header area of a large image', async () => {
    const dir = await tempDir();
    const path = join(dir, 'big.save');
    const header = encodeSaveHeader({ domainXml: XML, wasRunning: true, format: 'raw', complete: true });
    await writeFile(path, header);
    const fh = await open(path, 'r+');
    try {
      await fh.truncate(1024 * 1024 * 1024); // 1 GiB sparse "stream"
    } finally {
      await fh.close();
    }
    const started = Date.now();
    const h = await readSaveHeader(path);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(h).toMatchObject({ complete: true, domainXml: XML, streamOffset: header.length });
  });
});
