// The TLS side of the tunnel's control channel: both ends present a certificate signed
// by the cluster CA, TLS 1.3 only, and a peer is known by the host name in its
// certificate (CN or a DNS subjectAltName), never by its address.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions, PeerCertificate, TlsOptions } from 'node:tls';
import { ErrorType, vmError } from '../../common/errors.js';

/**
 * The worker-to-worker channel of tunnelled migration: mutual TLS with a
 * certificate per host (CN or a DNS SAN equal to the host name) signed by the
 * cluster CA.
 */
export interface TunnelConfig {
  /** Where this worker's tunnel listener binds, ADDR:PORT ([v6]:PORT); peers dial it. */
  listen: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface TunnelTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Reads the CA, certificate and key once; a missing or unreadable file is a config error. */
export function loadTunnelTls(cfg: TunnelConfig): TunnelTls {
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw vmError(ErrorType.ConfigUnsupported, `cannot read the tunnel ${what} ${path}: ${(err as Error).message}`, { path });
    }
  };
  return { ca: read('CA', cfg.caFile), cert: read('certificate', cfg.certFile), key: read('key', cfg.keyFile) };
}

/** The host names a certificate speaks for: its CN and its DNS subjectAltNames. */
export function certHostNames(cert: PeerCertificate | undefined): string[] {
  if (!cert || Object.keys(cert).length === 0) return [];
  const names = new Set<string>();
  const cn = cert.subject?.CN;
  for (const v of Array.isArray(cn) ? cn : cn ? [cn] : []) names.add(v);
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const m = /^\s*DNS:(.+)$/.exec(part);
    if (m?.[1]) names.add(m[1].trim());
  }
  return [...names];
}

export function serverOptions(t: TunnelTls): TlsOptions {
  return {
    ca: t.ca,
    cert: t.cert,
    key: t.key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    // A peer that connects and never finishes the handshake is dropped soon (Node's default is 2 minutes).
    handshakeTimeout: 10_000,
  };
}

/** Client side: the server must be the expected host, by certificate name (its address proves nothing). */
export function clientOptions(t: TunnelTls, host: string, port: number, expectedHost: string): ConnectionOptions {
  const opts: ConnectionOptions = {
    host,
    port,
    ca: t.ca,
    cert: t.cert,
    key: t.key,
    minVersion: 'TLSv1.3',
    rejectUnauthorized: true,
    servername: /^[\d.]+$|:/.test(expectedHost) ? undefined : expectedHost,
    checkServerIdentity: (_name, cert) => {
      const names = certHostNames(cert);
      if (names.includes(expectedHost)) return undefined;
      return new Error(`the tunnel peer's certificate is for ${names.join(', ') || 'no host name'}, not for destination host '${expectedHost}'`);
    },
  };
  return opts;
}

/** host:port or [v6]:port. */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(endpoint);
  const port = Number(m?.[3]);
  if (!m || !(port > 0 && port < 65536))
    throw vmError(ErrorType.OperationInvalid, `bad tunnel endpoint ${JSON.stringify(endpoint)} (want HOST:PORT or [V6]:PORT)`);
  return { host: (m[1] ?? m[2])!, port };
}

export function formatEndpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
