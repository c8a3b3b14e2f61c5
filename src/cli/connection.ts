// Connection options with the Temporal CLI's names (cli-config.ts reads its
// environment variables), so an operator's existing TEMPORAL_* settings just work.
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { dataConverterFor } from '../codec/key-file.js';
import { DEFAULT_NAMESPACE, DEFAULT_TEMPORAL_ADDRESS } from '../common/constants.js';
import { defaultRequester, requestedByInterceptor } from './requested-by.js';

export interface ConnectionOptions {
  address?: string;
  namespace?: string;
  tlsCertPath?: string;
  tlsKeyPath?: string;
  tlsCaPath?: string;
  tlsServerName?: string;
}

export async function connect(
  opts: ConnectionOptions,
  client: { payloadKeyFiles?: string[]; requestedBy?: string },
): Promise<{ client: Client; close: () => Promise<void> }> {
  const useTls = Boolean(opts.tlsCertPath || opts.tlsCaPath);
  const connection = await Connection.connect({
    address: opts.address ?? DEFAULT_TEMPORAL_ADDRESS,
    connectTimeout: 5000,
    tls: useTls
      ? {
          serverNameOverride: opts.tlsServerName,
          serverRootCACertificate: opts.tlsCaPath ? readFileSync(opts.tlsCaPath) : undefined,
          clientCertPair: opts.tlsCertPath && opts.tlsKeyPath ? { crt: readFileSync(opts.tlsCertPath), key: readFileSync(opts.tlsKeyPath) } : undefined,
        }
      : undefined,
  });
  const c = new Client({
    connection,
    namespace: opts.namespace ?? DEFAULT_NAMESPACE,
    // The same payload key as the workers, or they could not read what this client sends.
    dataConverter: dataConverterFor(client.payloadKeyFiles),
    interceptors: { workflow: [requestedByInterceptor(client.requestedBy ?? defaultRequester())] },
  });
  return { client: c, close: () => connection.close() };
}
