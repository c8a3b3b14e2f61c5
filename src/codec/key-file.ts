// Where processes get the payload key: a file of 32 random bytes (raw, or as 64 hex
// digits), e.g. `head -c 32 /dev/urandom`, named by VMFERRY_PAYLOAD_KEY_FILE in each
// process's config. More files add older keys that still decrypt (rotation). None:
// no codec, payloads travel as plain JSON.
import { readFileSync, statSync } from 'node:fs';
import type { DataConverter } from '@temporalio/common';
import { AesGcmPayloadCodec } from './aes-gcm-codec.js';

export class PayloadKeyError extends Error {
  override readonly name = 'PayloadKeyError';
}

export function readPayloadKey(path: string): Buffer {
  let raw: Buffer;
  try {
    if ((statSync(path).mode & 0o007) !== 0) throw new PayloadKeyError(`payload key file ${path} is accessible to every user: chmod o-rwx it`);
    raw = readFileSync(path);
  } catch (err) {
    if (err instanceof PayloadKeyError) throw err;
    throw new PayloadKeyError(`cannot read payload key file ${path}: ${(err as Error).message}`);
  }
  if (raw.length === 32) return raw;
  const text = raw.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  throw new PayloadKeyError(`payload key file ${path} must hold 32 bytes (raw, or 64 hex digits), got ${raw.length} bytes`);
}

/** The codec over these key files, the first encrypting, all decrypting. */
export function payloadCodecFor(keyFiles: readonly string[]): AesGcmPayloadCodec {
  return new AesGcmPayloadCodec(keyFiles.map(readPayloadKey));
}

/** The data converter for a process: with the codec when key files are configured, else Temporal's default. */
export function dataConverterFor(keyFiles: readonly string[] | undefined): DataConverter | undefined {
  return keyFiles ? { payloadCodecs: [payloadCodecFor(keyFiles)] } : undefined;
}
