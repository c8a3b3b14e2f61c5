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

/** `connect` with the settings; a failure names the server and what was offered to it. */
export async function connectTemporal<T>(s: TemporalSettings, connect: (o: TemporalConnectionOptions) => Promise<T>): Promise<T> {
  try {
    return await connect(connectionOptions(s));
  } catch (err) {
    throw new TemporalConnectError(`cannot connect to Temporal at ${describeConnection(s)}: ${(err as Error).message}`, { cause: err });
  }
}
