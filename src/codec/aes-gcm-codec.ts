// Opt-in encryption of every Temporal payload (workflow inputs and results,
// activity arguments and results, heartbeats, signals, queries) with AES-256-GCM,
// so secrets in them, such as graphics passwords inside domain XML and migration
// cookies, never reach the server's history in clear. A codec runs where payloads
// are (de)serialised outside the workflow sandbox: in workers, clients and the CLI,
// never in workflow code, which is why it lives here and not in src/common.
//
// Payloads without this codec's encoding pass through decode untouched, so
// workflows started by the Temporal CLI (unencrypted input) still run.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';

export const ENCODING = 'binary/vmferry-aes256gcm';
const KEY_ID = 'vmferry-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A short public fingerprint of a key, stored next to each payload so a wrong key is named, not guessed at. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('vmferry payload key\0').update(key).digest('hex').slice(0, 16);
}

/** The whole payload (metadata and data) as bytes: [u32 n] n x ([u32 len] key [u32 len] value) [data]. */
function serialize(p: Payload): Buffer {
  const parts: Buffer[] = [];
  const entries = Object.entries(p.metadata ?? {});
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  parts.push(u32(entries.length));
  for (const [k, v] of entries) {
    const kb = Buffer.from(k, 'utf8');
    parts.push(u32(kb.length), kb, u32(v?.length ?? 0), Buffer.from(v ?? new Uint8Array()));
  }
  parts.push(Buffer.from(p.data ?? new Uint8Array()));
  return Buffer.concat(parts);
}

function deserialize(b: Buffer): Payload {
  let at = 0;
  const u32 = (): number => {
    if (at + 4 > b.length) throw new Error('encrypted payload is truncated');
    const n = b.readUInt32BE(at);
    at += 4;
    return n;
  };
  const bytes = (n: number): Buffer => {
    if (at + n > b.length) throw new Error('encrypted payload is truncated');
    const out = b.subarray(at, at + n);
    at += n;
    return out;
  };
  const metadata: Record<string, Uint8Array> = {};
  for (let i = u32(); i > 0; i--) {
    const k = bytes(u32()).toString('utf8');
    metadata[k] = new Uint8Array(bytes(u32()));
  }
  return { metadata, data: new Uint8Array(b.subarray(at)) };
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;
  private readonly encryptId: string;

  /** `keys[0]` encrypts; every key decrypts (rotation: put the new key first, keep the old one until histories age out). */
  constructor(keys: Buffer[]) {
    if (keys.length === 0) throw new Error('payload codec needs at least one key');
    for (const k of keys) if (k.length !== 32) throw new Error(`an AES-256 key is 32 bytes, got ${k.length}`);
    this.keys = new Map(keys.map((k) => [keyId(k), k]));
    this.encryptId = keyId(keys[0]!);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.encryptId)!, iv);
      cipher.setAAD(Buffer.from(ENCODING));
      const body = Buffer.concat([cipher.update(serialize(p)), cipher.final()]);
      return {
        metadata: { encoding: enc.encode(ENCODING), [KEY_ID]: enc.encode(this.encryptId) },
        data: new Uint8Array(Buffer.concat([iv, body, cipher.getAuthTag()])),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const encoding = p.metadata?.encoding;
      if (!encoding || dec.decode(encoding) !== ENCODING) return p;
      const id = p.metadata?.[KEY_ID] ? dec.decode(p.metadata[KEY_ID]) : '';
      const key = this.keys.get(id);
      if (!key)
        throw new Error(`payload was encrypted with key ${id || '(unnamed)'}, which this process does not have (it has ${[...this.keys.keys()].join(', ')})`);
      const data = Buffer.from(p.data ?? new Uint8Array());
      if (data.length < IV_BYTES + TAG_BYTES) throw new Error('encrypted payload is truncated');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(ENCODING));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      // final() throws when the tag does not match: a tampered or corrupted payload is never used.
      const clear = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      return deserialize(clear);
    });
  }
}
