// Connection options with the Temporal CLI's names and environment variables, so
// an operator's existing TEMPORAL_* settings just work.
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { dataConverterFromEnv } from '../codec/key-file.js';
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

export function connectionOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectionOptions {
  return {
    address: env.TEMPORAL_ADDRESS,
    namespace: env.TEMPORAL_NAMESPACE,
    tlsCertPath: env.TEMPORAL_TLS_CLIENT_CERT_PATH ?? env.TEMPORAL_TLS_CERT,
    tlsKeyPath: env.TEMPORAL_TLS_CLIENT_KEY_PATH ?? env.TEMPORAL_TLS_KEY,
    tlsCaPath: env.TEMPORAL_TLS_SERVER_CA_CERT_PATH ?? env.TEMPORAL_TLS_CA,
    tlsServerName: env.TEMPORAL_TLS_SERVER_NAME,
  };
}

export async function connect(opts: ConnectionOptions): Promise<{ client: Client; close: () => Promise<void> }> {
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
  const client = new Client({
    connection,
    namespace: opts.namespace ?? DEFAULT_NAMESPACE,
    // VMFERRY_PAYLOAD_KEY_FILE: the same payload key as the workers, or they could not read what this client sends.
    dataConverter: dataConverterFromEnv(),
    interceptors: { workflow: [requestedByInterceptor(defaultRequester())] },
  });
  return { client, close: () => connection.close() };
}
