// A Temporal server whose frontend requires mutual TLS: the server binary itself (setup builds
// it, src/local/temporal-server.ts), SQLite in memory, certificates from a CA this test makes.
// The dev server (`temporal server start-dev`) cannot serve TLS. The server's own system worker
// connects to the frontend with a client certificate too, as a production cluster's does.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Connection, type TLSConfig } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { ALL_SEARCH_ATTRIBUTES } from '../../src/common/search-attributes.js';
import { DEFAULT_NAMESPACE } from '../../src/common/constants.js';
import { freePort } from '../../src/local/free-port.js';
import { waitFor } from '../../src/support/wait.js';
import { makeCa, makeHostCert, type HostCert } from './tunnel-certs.js';

/** The name in the server's certificate; clients reach 127.0.0.1 and check this name (TEMPORAL_TLS_SERVER_NAME). */
export const SERVER_NAME = 'temporal.test';

export interface MtlsTemporal {
  address: string;
  caFile: string;
  /** A client certificate the server accepts (signed by its CA). */
  client: HostCert;
  logFile: string;
  stop(): Promise<void>;
}

function sqlite(): Record<string, unknown> {
  return {
    sql: {
      pluginName: 'sqlite',
      databaseName: 'default',
      connectAddr: 'localhost',
      connectProtocol: 'tcp',
      // In memory: the store lives as long as its one connection, i.e. the server.
      connectAttributes: { mode: 'memory', cache: 'private' },
      maxConns: 1,
      maxIdleConns: 1,
      maxConnLifetime: '1h',
    },
  };
}

export async function startMtlsTemporal(serverBinary: string, dir: string): Promise<MtlsTemporal> {
  const certs = join(dir, 'certs');
  mkdirSync(join(dir, 'config'), { recursive: true });
  mkdirSync(certs, { recursive: true });
  const ca = makeCa(certs, 'temporal-ca');
  const server = makeHostCert(certs, ca, SERVER_NAME);
  const client = makeHostCert(certs, ca, 'vmferry-client');
  const ports = { frontend: await freePort(), http: await freePort() } as Record<string, number>;
  for (const s of ['history', 'matching', 'worker']) ports[s] = await freePort();
  const membership: Record<string, number> = {};
  for (const s of ['frontend', 'history', 'matching', 'worker']) membership[s] = await freePort();
  const address = `127.0.0.1:${ports.frontend}`;
  const rpc = (s: string): Record<string, unknown> => ({ grpcPort: ports[s], membershipPort: membership[s], bindOnLocalHost: true });
  // JSON is YAML: no YAML writer needed.
  const config = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'sqlite-default',
      visibilityStore: 'sqlite-visibility',
      numHistoryShards: 1,
      datastores: { 'sqlite-default': sqlite(), 'sqlite-visibility': sqlite() },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
      tls: {
        frontend: {
          server: { certFile: server.certFile, keyFile: server.keyFile, requireClientAuth: true, clientCaFiles: [ca.certFile] },
          client: { serverName: SERVER_NAME, rootCaFiles: [ca.certFile] },
        },
        systemWorker: { certFile: client.certFile, keyFile: client.keyFile, client: { serverName: SERVER_NAME, rootCaFiles: [ca.certFile] } },
      },
    },
    services: {
      frontend: { rpc: { ...rpc('frontend'), httpPort: ports.http } },
      history: { rpc: rpc('history') },
      matching: { rpc: rpc('matching') },
      worker: { rpc: rpc('worker') },
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: address, httpAddress: `127.0.0.1:${ports.http}` },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
  };
  writeFileSync(join(dir, 'config', 'mtls.yaml'), JSON.stringify(config, null, 2));
  const logFile = join(dir, 'temporal-server.log');
  const fd = openSync(logFile, 'a');
  const child = spawn(serverBinary, ['--root', dir, '--config', 'config', '--env', 'mtls', '--allow-no-auth', 'start'], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(`Temporal server exited (${signal ?? `code ${code}`}): ${readFileSync(logFile, 'utf8').slice(-2000)}`));
    child.once('error', (err) => resolve(`Temporal server failed to start: ${err.message}`));
  });
  // A test run that exits without its afterAll (a crash, an error in a hook) takes the server with it.
  const killOnExit = (): void => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  process.once('exit', killOnExit);
  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const tls = {
    serverNameOverride: SERVER_NAME,
    serverRootCACertificate: readFileSync(ca.certFile),
    clientCertPair: { crt: readFileSync(client.certFile), key: readFileSync(client.keyFile) },
  };
  try {
    await Promise.race([ready(address, tls), exited.then((why) => Promise.reject(new Error(why)))]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, caFile: ca.certFile, client, logFile, stop };
}

/** Ready: the namespace registered and our search attributes in it (what start-dev does with its flags). */
async function ready(address: string, tls: TLSConfig): Promise<void> {
  await waitFor(
    `mutual-TLS Temporal at ${address}`,
    async () => {
      const conn = await Connection.connect({ address, tls, connectTimeout: 2000 });
      try {
        await conn.workflowService
          .registerNamespace({ namespace: DEFAULT_NAMESPACE, workflowExecutionRetentionPeriod: msToTs('1 day') })
          .catch((err: { code?: number }) => {
            // 6: ALREADY_EXISTS, from an earlier round of this loop.
            if (err.code !== 6) throw err;
          });
        const have = Object.keys((await conn.operatorService.listSearchAttributes({ namespace: DEFAULT_NAMESPACE })).customAttributes ?? {});
        const missing = ALL_SEARCH_ATTRIBUTES.filter((k) => !have.includes(k.name));
        if (missing.length === 0) return true;
        await conn.operatorService.addSearchAttributes({
          namespace: DEFAULT_NAMESPACE,
          searchAttributes: Object.fromEntries(missing.map((k) => [k.name, 2 /* KEYWORD */])),
        });
        return false;
      } finally {
        await conn.close();
      }
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
}
