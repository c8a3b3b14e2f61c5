// A save image on disk: read its header (never QEMU's stream), mark it complete
// once the stream is flushed, and replace its domain XML in place
// (save-image-define), each durable before it returns.
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import { buildDataArea, decodeWithFixed, parseFixed, textBytes } from './header-codec.js';
import {
  DEFAULT_MAX_HEADER_BYTES,
  invalid,
  OFFSET,
  SAVE_HEADER_SIZE,
  SAVE_MAGIC,
  writeU32,
  type ReadSaveHeaderOptions,
  type SaveImageHeader,
} from './header-layout.js';

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
