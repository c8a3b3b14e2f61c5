// The tunnel's only framing: one JSON line before anything else. On the TLS
// control channel the source names the job and its token from Prepare, and the
// destination answers ok (with a one-time ticket for the data connection) or
// why not. The data connection is plain TCP whose first line carries that
// ticket; after it the connection belongs to the two QEMUs, which speak TLS
// to each other. A storage copy's NBD connections are TLS connections of their
// own ('nbd'): the job's token, the source host's certificate, then the bytes
// of the QEMUs' NBD session (itself TLS between them).
// A line, not a binary frame, so `openssl s_client` can speak it too.
import { timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';

/** The control channel's message that the data connection is in the destination QEMU's hands. */
export const DATA_READY = 0x52; // 'R'

/** Tokens and tickets are compared in constant time. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Longest line either side accepts: a hello is a few hundred bytes. */
export const MAX_LINE = 4096;

export type TunnelChannel = 'data' | 'control' | 'nbd';

export interface TunnelHello {
  v: 1;
  /** The migration job (the workflow's job id). */
  jobId: string;
  /** The domain's name on the destination. */
  name: string;
  /** control and nbd: the job's token from Prepare; data: the ticket the control channel's answer carried. */
  token: string;
  channel: TunnelChannel;
}

export interface TunnelAnswer {
  ok: boolean;
  error?: string;
  /** An accepted control channel: what the data connection must present, once. */
  ticket?: string;
}

export function writeLine(sock: Duplex, msg: TunnelHello | TunnelAnswer): void {
  sock.write(`${JSON.stringify(msg)}\n`);
}

/**
 * Reads one line, leaving whatever followed it unread in the stream (paused),
 * so the raw bytes after it are piped intact.
 */
export function readLine(sock: Duplex, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err: Error | undefined, line?: string, rest?: Buffer): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('error', onError);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.pause();
      if (rest && rest.length > 0) sock.unshift(rest);
      if (err) reject(err);
      else resolve(line!);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl >= 0) return done(undefined, buf.subarray(0, nl).toString('utf8'), buf.subarray(nl + 1));
      if (buf.length > MAX_LINE) done(new Error(`tunnel greeting longer than ${MAX_LINE} bytes`));
    };
    const onError = (err: Error): void => done(err);
    const onEnd = (): void => done(new Error('the tunnel peer closed the connection before answering'));
    const timer = setTimeout(() => done(new Error(`no tunnel greeting within ${timeoutMs} ms`)), timeoutMs);
    sock.on('data', onData);
    sock.once('error', onError);
    sock.once('end', onEnd);
    sock.once('close', onEnd);
  });
}

export function parseHello(line: string): TunnelHello {
  const v = JSON.parse(line) as Partial<TunnelHello>;
  if (v === null || typeof v !== 'object' || v.v !== 1) throw new Error('not a version 1 tunnel greeting');
  for (const k of ['jobId', 'name', 'token'] as const) {
    if (typeof v[k] !== 'string' || v[k].length === 0 || v[k].length > 1024) throw new Error(`tunnel greeting without a valid ${k}`);
  }
  if (v.channel !== 'data' && v.channel !== 'control' && v.channel !== 'nbd') throw new Error('tunnel greeting names no channel');
  return v as TunnelHello;
}

export function parseAnswer(line: string): TunnelAnswer {
  const v = JSON.parse(line) as Partial<TunnelAnswer>;
  if (v === null || typeof v !== 'object' || typeof v.ok !== 'boolean') throw new Error('malformed tunnel answer');
  return {
    ok: v.ok,
    ...(typeof v.error === 'string' ? { error: v.error.slice(0, 500) } : {}),
    ...(typeof v.ticket === 'string' && v.ticket.length > 0 && v.ticket.length <= 128 ? { ticket: v.ticket } : {}),
  };
}
