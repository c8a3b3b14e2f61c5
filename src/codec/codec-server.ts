// Temporal's codec server protocol over HTTP, so the Web UI (--ui-codec-endpoint)
// and the Temporal CLI (--codec-endpoint) can show encrypted payloads: POST
// /encode and /decode take and return {"payloads":[{"metadata":{k:base64},"data":base64}]}.
// Whoever reaches it can decrypt every payload, so it listens on loopback unless
// told otherwise, and answers cross-origin requests only from the listed UI origins.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Payload, PayloadCodec } from '@temporalio/common';

const MAX_BODY_BYTES = 8 * 1024 * 1024;

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

function fromJson(p: JsonPayload): Payload {
  if (p === null || typeof p !== 'object') throw new Error('each payload must be an object');
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) {
    if (typeof v !== 'string') throw new Error(`metadata ${k} must be base64`);
    metadata[k] = Buffer.from(v, 'base64');
  }
  return { metadata, data: Buffer.from(typeof p.data === 'string' ? p.data : '', 'base64') };
}

function toJson(p: Payload): JsonPayload {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v ?? new Uint8Array()).toString('base64');
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error(`request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function createCodecServer(codec: PayloadCodec, opts: { allowedOrigins: string[] }): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const origin = req.headers.origin;
    if (origin !== undefined && opts.allowedOrigins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'content-type, x-namespace, authorization');
      res.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') return void res.writeHead(204).end();
    const op = req.url?.replace(/\?.*$/, '').replace(/\/+$/, '').split('/').pop();
    if (req.method !== 'POST' || (op !== 'encode' && op !== 'decode'))
      return void res.writeHead(404, { 'content-type': 'text/plain' }).end('POST /encode or /decode\n');
    void (async () => {
      try {
        const parsed = JSON.parse(await body(req)) as { payloads?: JsonPayload[] };
        if (!Array.isArray(parsed?.payloads)) throw new Error('body must be {"payloads":[...]}');
        const payloads = parsed.payloads.map(fromJson);
        const out = op === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ payloads: out.map(toJson) }));
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
      }
    })();
  });
}
