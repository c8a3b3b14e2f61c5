// Connecting with resolved settings, and saying what went wrong in the operator's terms:
// the address, whether TLS and a client certificate were used, and the server's refusal.
import type { TemporalSettings, TemporalTls } from './temporal-settings.js';

export class TemporalConnectError extends Error {
  override readonly name = 'TemporalConnectError';
}

export interface TemporalConnectionOptions {
  address: string;
  /** false: plaintext even with an API key (the operator turned TLS off). */
  tls: TemporalTls | false;
  apiKey?: string;
  metadata?: Record<string, string>;
}

/** What NativeConnection.connect and Connection.connect both take. */
export function connectionOptions(s: TemporalSettings): TemporalConnectionOptions {
  return {
    address: s.address,
    tls: s.tls ?? false,
    ...(s.apiKey !== undefined ? { apiKey: s.apiKey } : {}),
    ...(s.metadata ? { metadata: s.metadata } : {}),
  };
}

/** "TLS with client certificate, server CA from the profile" and the like: what was offered, for the error. */
export function describeConnection(s: TemporalSettings): string {
  const m = s.summary;
  const parts = [
    m.tls ? 'TLS' : 'plaintext (no TLS)',
    ...(m.tls ? [m.clientCert ? 'client certificate' : 'no client certificate', m.serverCa ? 'server CA given' : 'system CAs'] : []),
    ...(m.serverName ? [`server name ${m.serverName}`] : []),
    ...(m.apiKey ? ['API key'] : []),
    `namespace ${s.namespace}`,
    ...(m.configFile ? [`profile ${m.profile} of ${m.configFile}`] : []),
  ];
  return `${s.address} (${parts.join(', ')})`;
}

/** The error's message and its causes' (the SDK wraps the server's answer: "Failed to connect" says little alone). */
function messages(err: unknown): string {
  const out: string[] = [];
  for (let e: unknown = err; e instanceof Error && out.length < 5; e = e.cause) if (!out.some((m) => m.includes(e.message))) out.push(e.message);
  return out.length > 0 ? out.join(': ') : String(err);
}

/** `connect` with the settings; a failure names the server and what was offered to it. */
export async function connectTemporal<T>(s: TemporalSettings, connect: (o: TemporalConnectionOptions) => Promise<T>): Promise<T> {
  try {
    return await connect(connectionOptions(s));
  } catch (err) {
    // A server asking for a client certificate ends the handshake with an alert, which the client
    // may only see as a broken pipe or a timeout: say what was missing.
    const hint =
      s.summary.tls && !s.summary.clientCert
        ? " (if the server requires mutual TLS: give a client certificate and key, TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH or the profile's tls.client_cert_path and tls.client_key_path)"
        : '';
    throw new TemporalConnectError(`cannot connect to Temporal at ${describeConnection(s)}: ${messages(err)}${hint}`, { cause: err });
  }
}
