// Starts and stops the Temporal CLI's dev server for the demo and the tests: SQLite
// on disk (so a restart keeps history), our search attributes registered, the Web UI
// on unless headless, no call-home.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { ALL_SEARCH_ATTRIBUTES } from '../common/search-attributes.js';
import { DEFAULT_NAMESPACE } from '../common/constants.js';
import { waitFor } from '../support/wait.js';

export interface DevServerOptions {
  cliPath: string;
  stateDir: string;
  ip?: string;
  port?: number;
  uiPort?: number;
  headless?: boolean;
  dbFilename?: string;
  startTimeoutMs?: number;
}

export interface DevServer {
  address: string;
  uiUrl: string | undefined;
  pid: number;
  dbFilename: string;
  logFile: string;
  stop(): Promise<void>;
}

const TYPE_NAMES: Record<string, string> = {
  KEYWORD: 'Keyword',
  TEXT: 'Text',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

export function searchAttributeArgs(): string[] {
  return ALL_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=${TYPE_NAMES[k.type] ?? 'Keyword'}`]);
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? port + 1000;
  mkdirSync(opts.stateDir, { recursive: true });
  const dbFilename = opts.dbFilename ?? join(opts.stateDir, 'temporal.sqlite');
  const logFile = join(opts.stateDir, 'temporal-server.log');
  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--db-filename',
    dbFilename,
    '--namespace',
    DEFAULT_NAMESPACE,
    '--log-level',
    'warn',
    '--dynamic-config-value',
    'frontend.enableServerVersionCheck=false',
    ...searchAttributeArgs(),
    ...(opts.headless ? ['--headless'] : ['--ui-port', String(uiPort), '--ui-ip', ip]),
  ];
  const logFd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(opts.cliPath, args, { stdio: ['ignore', logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(`temporal dev server exited (${signal ?? `code ${code}`}); see ${logFile}`));
    child.once('error', (err) => resolve(`temporal dev server failed to start: ${err.message}`));
  });
  const address = `${ip}:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await Promise.race([waitUntilServing(address, opts.startTimeoutMs ?? 60_000), exited.then((why) => Promise.reject(new Error(why)))]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, uiUrl: opts.headless ? undefined : `http://${ip}:${uiPort}`, pid: child.pid!, dbFilename, logFile, stop };
}

/** Serving means: frontend answers and our search attributes are visible in the namespace. */
async function waitUntilServing(address: string, timeoutMs: number): Promise<void> {
  await waitFor(
    `Temporal at ${address}`,
    async () => {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        const res = await conn.operatorService.listSearchAttributes({ namespace: DEFAULT_NAMESPACE });
        const have = Object.keys(res.customAttributes ?? {});
        return ALL_SEARCH_ATTRIBUTES.every((k) => have.includes(k.name));
      } finally {
        await conn.close();
      }
    },
    { timeoutMs, intervalMs: 250 },
  );
}
