// The CLI's client, on the connection settings cli-config.ts resolved (the Temporal CLI's
// profile and TEMPORAL_* variables, then the command line).
import { Client, Connection } from '@temporalio/client';
import { dataConverterFor } from '../codec/key-file.js';
import { connectTemporal } from '../connection/temporal-connect.js';
import type { TemporalSettings } from '../connection/temporal-settings.js';
import { defaultRequester, requestedByInterceptor } from './requested-by.js';

export async function connect(
  settings: TemporalSettings,
  client: { payloadKeyFiles?: string[]; requestedBy?: string },
): Promise<{ client: Client; close: () => Promise<void> }> {
  const connection = await connectTemporal(settings, (o) => Connection.connect({ ...o, connectTimeout: 5000 }));
  const c = new Client({
    connection,
    namespace: settings.namespace,
    // The same payload key as the workers, or they could not read what this client sends.
    dataConverter: dataConverterFor(client.payloadKeyFiles),
    interceptors: { workflow: [requestedByInterceptor(client.requestedBy ?? defaultRequester())] },
  });
  return { client: c, close: () => connection.close() };
}
