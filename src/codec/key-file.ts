// Where processes get the payload key: VMFERRY_PAYLOAD_KEY_FILE names a file of
// 32 random bytes (raw, or as 64 hex digits), e.g. `head -c 32 /dev/urandom`.
// A colon-separated list adds older keys that still decrypt (rotation). Unset:
// no codec, payloads travel as plain JSON.
import { readFileSync, statSync } from 'node:fs';
import type { DataConverter } from '@temporalio/common';
import { AesGcmPayloadCodec } from './aes-gcm-codec.js';

export const PAYLOAD_KEY_FILE_ENV = 'VMFERRY_PAYLOAD_KEY_FILE';

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

/** The data converter for a process: with the codec when a key file is configured, else Temporal's default. */
export function dataConverterFromEnv(env: NodeJS.ProcessEnv = process.env): DataConverter | undefined {
  const spec = env[PAYLOAD_KEY_FILE_ENV];
  if (!spec) return undefined;
  const keys = spec
    .split(':')
    .filter((p) => p.length > 0)
    .map(readPayloadKey);
  return { payloadCodecs: [new AesGcmPayloadCodec(keys)] };
}
