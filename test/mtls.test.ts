// The Temporal connection against a server that requires mutual TLS: the Temporal server
// binary itself (setup builds it; the CLI's dev server cannot serve TLS), its frontend asking
// every client for a certificate from the test's CA. Workers and the CLI read the Temporal
// CLI's profile file. A worker without a certificate is refused at start and never polls; one
// with it serves, and `vmferry --profile` runs real jobs through it. The API key is shown on
// the wire with a TLS gRPC endpoint that records the request's headers (the plain server
// accepts any key, so it cannot show that one was sent).
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer, type IncomingHttpHeaders } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { hostTaskQueue } from '../src/common/constants.js';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { findTemporalServer } from '../src/local/temporal-server.js';
import { startWorkerProcess, type WorkerProcess } from '../src/local/worker-process.js';
import { isProcessAlive } from '../src/support/proc.js';
import { guestXml } from './helpers/guest-xml.js';
import { SERVER_NAME, startMtlsTemporal, type MtlsTemporal } from './helpers/mtls-temporal.js';
import type { CliResult } from './helpers/vmferry-cli.js';

const root = mkdtempSync(join(tmpdir(), 'vmf-mtls-'));
let server: MtlsTemporal;
let profileFile: string;
const workers: WorkerProcess[] = [];
const memoryDirs: string[] = [];
let guestRunning = false;

/** A host worker's own directories; `env` says how it connects. */
function hostEnv(name: string, env: Record<string, string>): Record<string, string> {
  const memoryDir = join('/dev/shm', `vmf-${process.pid}-${root.slice(-6)}-${name}`);
  memoryDirs.push(memoryDir);
  return { VMFERRY_HOST_NAME: name, VMFERRY_HOST_BASE_DIR: join(root, name), VMFERRY_HOST_MEMORY_DIR: memoryDir, ...workerEnv(env) };
}

/**
 * Workers inherit the test run's environment (startWorkerProcess): the address is set here, over any
 * TEMPORAL_ADDRESS of the run's; TLS comes from the profile. (The CLI below takes the address from the profile.)
 */
function workerEnv(env: Record<string, string>): Record<string, string> {
  return { TEMPORAL_ADDRESS: server.address, ...env };
}

/** `vmferry` as an operator runs it: no TEMPORAL_* of the test run's own environment, only what `env` gives. */
async function vmferry(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
  const child = spawn(process.execPath, ['bin/vmferry.js', ...args], {
    cwd: PROJECT_ROOT,
    env: { ...clean, VMFERRY_HOST: 'mtls-a', VMFERRY_REQUESTED_BY: 'mtls-test@ops', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Whether anything polls a host's activity queue, asked of the server with the test's own certificate. */
async function activityPollers(host: string): Promise<number> {
  const conn = await Connection.connect({
    address: server.address,
    tls: {
      serverNameOverride: SERVER_NAME,
      serverRootCACertificate: readFileSync(server.caFile),
      clientCertPair: { crt: readFileSync(server.client.certFile), key: readFileSync(server.client.keyFile) },
    },
  });
  try {
    const r = await conn.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: hostTaskQueue(host) }, taskQueueType: 2 /* ACTIVITY */ });
    return r.pollers?.length ?? 0;
  } finally {
    await conn.close();
  }
}

beforeAll(async () => {
  const binary = findTemporalServer();
  if (!binary) throw new Error('no Temporal server binary: run `node --import tsx scripts/setup.ts --for-tests` (npm test does)');
  server = await startMtlsTemporal(binary, join(root, 'server'));
  // The Temporal CLI's file: "secure" has everything; "no-cert" trusts the server but has no client certificate.
  profileFile = join(root, 'temporal.toml');
  writeFileSync(
    profileFile,
    `[profile.secure]
address = "${server.address}"
namespace = "default"
[profile.secure.tls]
client_cert_path = "${server.client.certFile}"
client_key_path = "${server.client.keyFile}"
server_ca_cert_path = "${server.caFile}"
server_name = "${SERVER_NAME}"

[profile.no-cert]
address = "${server.address}"
[profile.no-cert.tls]
server_ca_cert_path = "${server.caFile}"
server_name = "${SERVER_NAME}"
`,
  );
});

afterAll(async () => {
  if (guestRunning) await vmferry({ TEMPORAL_CONFIG_FILE: profileFile }, '--profile', 'secure', 'destroy', 'mtls1').catch(() => undefined);
  for (const w of workers) await w.stop();
  await server?.stop();
  for (const d of memoryDirs) rmSync(d, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
});

describe('a Temporal server that requires mutual TLS', () => {
  it('refuses a host worker without a client certificate: it stops at start, before touching anything, and never polls', async () => {
    const started = startWorkerProcess('host', hostEnv('mtls-nocert', { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'no-cert' }), 'host worker ready');
    const err = await started.then(
      () => new Error('the worker started'),
      (e: unknown) => e as Error,
    );
    // Exited on its own (not the 60 s "not ready" deadline): refused, not hanging.
    expect(err.message).toMatch(/host worker exited \(1\) before ready/);
    expect(err.message).toMatch(
      /TemporalConnectError: cannot connect to Temporal at 127\.0\.0\.1:\d+ \(TLS, no client certificate, server CA given, server name temporal\.test/,
    );
    // What the client sees varies (the server's CertificateRequired alert, a broken pipe, a closed connection): the hint does not.
    expect(err.message).toMatch(/if the server requires mutual TLS: give a client certificate and key/);
    // It connects first: no status file, no QEMU, and no poller on its queue.
    expect(readdirSync(join(root, 'mtls-nocert', 'run'))).toEqual([]);
    expect(await activityPollers('mtls-nocert')).toBe(0);
  });

  it('stops a host worker at start with a typed error naming an unreadable certificate path', async () => {
    const missing = join(root, 'no-such-dir', 'client.crt');
    const env = hostEnv('mtls-badpath', { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'secure', TEMPORAL_TLS_CLIENT_CERT_PATH: missing });
    const err = await startWorkerProcess('host', env, 'host worker ready').then(
      () => new Error('the worker started'),
      (e: unknown) => e as Error,
    );
    expect(err.message).toMatch(/host worker exited \(1\) before ready/);
    expect(err.message).toContain(`TemporalConfigError: cannot read client certificate ${missing} (TEMPORAL_* environment): ENOENT`);
  });

  it('serves workers with the certificate and the server CA from a profile, and vmferry --profile runs jobs through them', async () => {
    const profile = { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'secure' };
    const [host, control] = await Promise.all([
      startWorkerProcess('host', hostEnv('mtls-a', profile), 'host worker ready'),
      startWorkerProcess('control', workerEnv({ ...profile, VMFERRY_WORKFLOW_BUNDLE: inject('workflowBundle') }), 'control worker ready'),
    ]);
    workers.push(host, control);
    const ready = host.logs.find((l) => l.msg === 'host worker ready') as { temporal?: Record<string, unknown> };
    expect(ready.temporal).toMatchObject({
      address: server.address,
      profile: 'secure',
      configFile: profileFile,
      tls: true,
      clientCert: true,
      serverCa: true,
      apiKey: false,
    });

    const cli = { TEMPORAL_CONFIG_FILE: profileFile };
    const xml = join(root, 'mtls1.xml');
    writeFileSync(xml, guestXml({ name: 'mtls1' }));
    expect((await vmferry(cli, '--profile', 'secure', 'define', xml)).code).toBe(0);
    const start = await vmferry(cli, '--profile', 'secure', 'start', 'mtls1', '--json');
    expect(start.code, start.stderr).toBe(0);
    const { pid } = JSON.parse(start.stdout) as { pid: number };
    expect(isProcessAlive(pid)).toBe(true);
    guestRunning = true;
    expect((await vmferry(cli, '--profile', 'secure', 'list')).stdout).toMatch(/mtls1\s+running/);
    // The server saw this worker poll (the refused one never did).
    expect(await activityPollers('mtls-a')).toBeGreaterThan(0);
    expect((await vmferry(cli, '--profile', 'secure', 'destroy', 'mtls1')).code).toBe(0);
    expect(isProcessAlive(pid)).toBe(false);
    guestRunning = false;
  });

  it('sends the API key (--api-key over TEMPORAL_API_KEY) and gRPC headers, over TLS (to a recording TLS gRPC endpoint that fakes the frontend: the real server accepts any key)', async () => {
    // A TLS gRPC endpoint with the server's certificate that records what a client sends and answers
    // UNIMPLEMENTED; the client keeps asking until its 5 s connect deadline, every request with the headers.
    const certs = join(root, 'server', 'certs');
    const seen: IncomingHttpHeaders[] = [];
    const probe: Http2SecureServer = createSecureServer(
      { cert: readFileSync(join(certs, `${SERVER_NAME}.crt`)), key: readFileSync(join(certs, `${SERVER_NAME}.key`)) },
      (req, res) => {
        seen.push(req.headers);
        res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'not a Temporal server' });
        res.end();
      },
    );
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    try {
      const port = (probe.address() as { port: number }).port;
      const env = { TEMPORAL_ADDRESS: `127.0.0.1:${port}`, TEMPORAL_TLS_SERVER_CA_CERT_PATH: server.caFile, TEMPORAL_TLS_SERVER_NAME: SERVER_NAME };
      // --api-key wins over TEMPORAL_API_KEY (test/temporal-settings.test.ts has the whole order).
      const r = await vmferry({ ...env, TEMPORAL_API_KEY: 'env-key-1', TEMPORAL_GRPC_META_TENANT: 'blue' }, '--api-key', 'cli-key-2', 'list', '--json');
      expect(r.code, r.stdout).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({
        error: { type: 'OperationFailed', message: expect.stringMatching(/^cannot connect to Temporal at .*API key/) },
      });
      expect(seen.length).toBeGreaterThan(0);
      for (const h of seen) expect(h).toMatchObject({ authorization: 'Bearer cli-key-2', tenant: 'blue' });
    } finally {
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    }
  });
});
