// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The Temporal connection settings every process resolves the same way: the Temporal CLI's
// profile file and TEMPORAL_* variables (through @temporalio/envconfig), vmferry's own settings,
// and their order; wrong or unsupported settings refused at start with their names.
// The server's side of it (a frontend that requires mutual TLS) is test/mtls.test.ts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCliConfig } from '../src/cli/cli-config.js';
import { connectionOptions, describeConnection } from '../src/connection/temporal-connect.js';
import { resolveTemporalSettings, TemporalConfigError, type ResolveOptions } from '../src/connection/temporal-settings.js';
import { loadHostConfig } from '../src/host/host-config.js';
import { loadControlConfig } from '../src/workers/control-config.js';

const tmp = mkdtempSync(join(tmpdir(), 'vmf-tsettings-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const pem = (kind: string, body: string): string => `-----BEGIN ${kind}-----\n${Buffer.from(body).toString('base64')}\n-----END ${kind}-----\n`;
function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}
const caFile = file('ca.crt', pem('CERTIFICATE', 'the CA'));
const certFile = file('client.crt', pem('CERTIFICATE', 'the client'));
const keyFile = file('client.key', pem('PRIVATE KEY', 'the key'));
const envCert = file('env.crt', pem('CERTIFICATE', 'from the environment'));
const envKey = file('env.key', pem('EC PRIVATE KEY', 'its key'));
const toml = file(
  'temporal.toml',
  `[profile.default]
address = "default.example:7233"

[profile.secure]
address = "secure.example:7233"
namespace = "vms"
api_key = "profile-key"
[profile.secure.tls]
client_cert_path = "${certFile}"
client_key_path = "${keyFile}"
server_ca_cert_path = "${caFile}"
server_name = "temporal.internal"
[profile.secure.grpc_meta]
tenant = "blue"
`,
);
// No HOME: the Temporal CLI's default file (~/.config/temporalio/temporal.toml) is never read by accident.
const resolve = (env: Record<string, string>, opts?: ResolveOptions) => resolveTemporalSettings({ HOME: tmp, ...env }, opts);
const text = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);

function failure(f: () => unknown): TemporalConfigError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(TemporalConfigError);
    return err as TemporalConfigError;
  }
  throw new Error('expected an error');
}

describe('Temporal connection settings', () => {
  it('without any setting: plaintext to 127.0.0.1:7233, namespace default', () => {
    const s = resolve({});
    expect(s).toMatchObject({ address: '127.0.0.1:7233', namespace: 'default', summary: { tls: false, profile: 'default' } });
    expect(s.tls).toBeUndefined();
    expect(connectionOptions(s)).toEqual({ address: '127.0.0.1:7233', tls: false });
  });

  it('reads a named profile of the TOML file: mTLS files read, server name, API key, gRPC headers', () => {
    const s = resolve({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'secure' });
    expect(s).toMatchObject({ address: 'secure.example:7233', namespace: 'vms', apiKey: 'profile-key', metadata: { tenant: 'blue' } });
    expect(s.tls?.serverNameOverride).toBe('temporal.internal');
    expect(text(s.tls?.serverRootCACertificate)).toBe(pem('CERTIFICATE', 'the CA'));
    expect(text(s.tls?.clientCertPair?.crt)).toBe(pem('CERTIFICATE', 'the client'));
    expect(text(s.tls?.clientCertPair?.key)).toBe(pem('PRIVATE KEY', 'the key'));
    expect(s.summary).toEqual({
      profile: 'secure',
      configFile: toml,
      tls: true,
      clientCert: true,
      serverCa: true,
      serverName: 'temporal.internal',
      apiKey: true,
    });
    // What a log line or an error says: no key, no certificate content.
    expect(describeConnection(s)).toBe(
      `secure.example:7233 (TLS, client certificate, server CA given, server name temporal.internal, API key, namespace vms, profile secure of ${toml})`,
    );
    expect(JSON.stringify(s.summary)).not.toMatch(/profile-key/);
    // The "default" profile when none is named, and the default file under $HOME when none is given.
    expect(resolve({ TEMPORAL_CONFIG_FILE: toml }).address).toBe('default.example:7233');
    const home = join(tmp, 'home');
    const cfgDir = join(home, '.config', 'temporalio');
    mkdirSync(cfgDir, { recursive: true });
    writeFileSync(join(cfgDir, 'temporal.toml'), '[profile.default]\nnamespace = "from-home"\n');
    expect(resolveTemporalSettings({ HOME: home }).namespace).toBe('from-home');
  });

  it('orders the sources: profile, then vmferry config, then TEMPORAL_* variables, then the command line', () => {
    const base = { TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'secure' };
    expect(resolve(base, { below: { address: 'file.example:1', namespace: 'file-ns' } })).toMatchObject({ address: 'file.example:1', namespace: 'file-ns' });
    const env = { ...base, TEMPORAL_ADDRESS: 'env.example:2', TEMPORAL_TLS_CLIENT_CERT_PATH: envCert, TEMPORAL_TLS_CLIENT_KEY_PATH: envKey };
    const s = resolve(env, { below: { address: 'file.example:1', namespace: 'file-ns' } });
    expect(s).toMatchObject({ address: 'env.example:2', namespace: 'file-ns' });
    expect(text(s.tls?.clientCertPair?.crt)).toMatch(/BEGIN CERTIFICATE/);
    expect(text(s.tls?.clientCertPair?.crt)).toBe(pem('CERTIFICATE', 'from the environment'));
    // The rest of the profile's TLS stays (one setting overrides one setting).
    expect(s.tls?.serverNameOverride).toBe('temporal.internal');
    const top = resolve(env, { above: { address: 'cli.example:3', apiKey: 'cli-key', tlsServerName: 'other.internal' } });
    expect(top).toMatchObject({ address: 'cli.example:3', apiKey: 'cli-key', tls: { serverNameOverride: 'other.internal' } });
    // --profile wins over TEMPORAL_PROFILE.
    expect(resolve(base, { profile: 'default' }).address).toBe('default.example:7233');
  });

  it('turns TLS on for an API key (as the Temporal CLI does) and leaves it off when told, refusing certificates then', () => {
    const k = resolve({ TEMPORAL_API_KEY: 'k1' });
    expect(k).toMatchObject({ apiKey: 'k1', tls: {} });
    expect(connectionOptions(k)).toEqual({ address: '127.0.0.1:7233', tls: {}, apiKey: 'k1' });
    expect(connectionOptions(resolve({ TEMPORAL_API_KEY: 'k1', TEMPORAL_TLS: 'false' }))).toEqual({ address: '127.0.0.1:7233', tls: false, apiKey: 'k1' });
    expect(resolve({ TEMPORAL_TLS: 'true' }).tls).toEqual({});
    expect(failure(() => resolve({ TEMPORAL_TLS: '0', TEMPORAL_TLS_SERVER_CA_CERT_PATH: caFile })).message).toMatch(/TLS is turned off .* while a certificate/);
    expect(failure(() => resolve({ TEMPORAL_TLS: 'yes' })).message).toMatch(/TEMPORAL_TLS="yes": must be true, false, 1 or 0/);
  });

  it('keeps the shorter TLS variable names, the long ones winning', () => {
    const s = resolve({ TEMPORAL_TLS_CERT: envCert, TEMPORAL_TLS_KEY: envKey, TEMPORAL_TLS_CA: caFile, TEMPORAL_TLS_CLIENT_CERT_PATH: certFile });
    expect(text(s.tls?.clientCertPair?.crt)).toBe(pem('CERTIFICATE', 'the client'));
    expect(text(s.tls?.clientCertPair?.key)).toBe(pem('EC PRIVATE KEY', 'its key'));
    expect(s.summary.serverCa).toBe(true);
  });

  it('refuses at start, naming the file and where it was set: a missing or unreadable certificate, a key without its certificate, a non-PEM file', () => {
    const missing = join(tmp, 'nope', 'client.crt');
    expect(failure(() => resolve({ TEMPORAL_TLS_CLIENT_CERT_PATH: missing, TEMPORAL_TLS_CLIENT_KEY_PATH: keyFile })).message).toBe(
      `cannot read client certificate ${missing} (TEMPORAL_* environment): ENOENT`,
    );
    // Tests run as root, who reads a mode-000 file anyway; a directory is unreadable as a file for everyone.
    expect(failure(() => resolve({ TEMPORAL_TLS_CLIENT_CERT_PATH: certFile, TEMPORAL_TLS_CLIENT_KEY_PATH: tmp })).message).toMatch(
      new RegExp(`cannot read client key ${tmp} \\(TEMPORAL_\\* environment\\): EISDIR`),
    );
    expect(failure(() => resolve({ TEMPORAL_TLS_CLIENT_KEY_PATH: keyFile })).message).toMatch(
      /client key is set \(TEMPORAL_\* environment\) without its certificate/,
    );
    expect(failure(() => resolve({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: keyFile })).message).toMatch(
      /server CA certificate .*client\.key .* is not PEM \(no -----BEGIN CERTIFICATE----- block\)/,
    );
    expect(failure(() => resolve({}, { above: { tlsCaPath: missing } })).message).toMatch(/cannot read server CA certificate .* \(command line\): ENOENT/);
  });

  it('refuses a named profile or file that is not there, and a profile key envconfig does not know', () => {
    expect(failure(() => resolve({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod' })).message).toMatch(
      /has no profile "prod" \(it has default, secure\)/,
    );
    expect(failure(() => resolve({ TEMPORAL_CONFIG_FILE: join(tmp, 'missing.toml') })).message).toMatch(
      /cannot read Temporal config file .*missing\.toml.*ENOENT/,
    );
    expect(failure(() => resolve({}, { profile: 'prod' })).message).toMatch(/profile "prod" asked for, but there is no Temporal config file/);
    const typo = file('typo.toml', '[profile.default]\nadress = "x:1"\n');
    expect(failure(() => resolve({ TEMPORAL_CONFIG_FILE: typo })).message).toMatch(/typo\.toml.*unrecognized in profile\.default: adress/);
  });

  it('refuses what the TypeScript SDK cannot do as ConfigUnsupported', () => {
    const e = failure(() => resolve({ TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true' }));
    expect(e.type).toBe('ConfigUnsupported');
    expect(e.message).toMatch(/TEMPORAL_TLS_SERVER_NAME/);
    expect(resolve({ TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'false' }).tls).toBeUndefined();
  });

  it('is what the host worker, the control worker and the CLI each resolve', () => {
    const env = { HOME: tmp, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'secure', TEMPORAL_NAMESPACE: 'env-ns' };
    const hostFile = file('host.json', JSON.stringify({ temporal: { address: 'host-file.example:7233', namespace: 'file-ns' } }));
    const host = loadHostConfig({
      ...env,
      VMFERRY_HOST_NAME: 'ts',
      VMFERRY_HOST_BASE_DIR: join(tmp, 'base'),
      VMFERRY_HOST_MEMORY_DIR: join(tmp, 'mem'),
      VMFERRY_HOST_CONFIG: hostFile,
    });
    expect(host.temporal).toMatchObject({
      address: 'host-file.example:7233',
      namespace: 'env-ns',
      apiKey: 'profile-key',
      tls: { serverNameOverride: 'temporal.internal' },
    });
    expect(loadControlConfig(env).temporal).toMatchObject({ address: 'secure.example:7233', namespace: 'env-ns', summary: { clientCert: true } });
    const cli = loadCliConfig(env).temporal({ overrides: { namespace: 'cli-ns' } });
    expect(cli).toMatchObject({ address: 'secure.example:7233', namespace: 'cli-ns' });
    expect(loadCliConfig(env).temporal({ profile: 'default', overrides: {} }).address).toBe('default.example:7233');
  });
});
