// The Temporal connection every vmferry process makes (host worker, control worker, CLI),
// from the same settings and profiles as the Temporal CLI: a TOML profile file read by
// @temporalio/envconfig, then vmferry's own settings, then the TEMPORAL_* environment, then
// a command line. Certificates are read here, at start, so a bad path stops the process
// with its name instead of surfacing later as a failed or hanging connection.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadClientConfig, loadClientConfigProfile, type ClientConfigProfile, type ConfigDataSource } from '@temporalio/envconfig';
import { ConfigError, parseEnv, temporalConnectionEnvShape, type Env } from '../common/config-schema.js';
import { DEFAULT_NAMESPACE, DEFAULT_TEMPORAL_ADDRESS } from '../common/constants.js';
import { ErrorType } from '../common/errors.js';

export class TemporalConfigError extends ConfigError {
  override readonly name = 'TemporalConfigError';
  constructor(
    message: string,
    /** OperationInvalid (a wrong setting) or ConfigUnsupported (a setting vmferry cannot honour). */
    readonly type: ErrorType = ErrorType.OperationInvalid,
  ) {
    super(message);
  }
}

/** vmferry's own connection settings: the host config file's `temporal` section, the CLI's options. */
export interface TemporalOverrides {
  address?: string;
  namespace?: string;
  apiKey?: string;
  /** Force TLS on (true) or off (false), as the Temporal CLI's --tls. */
  tls?: boolean;
  tlsCertPath?: string;
  tlsKeyPath?: string;
  tlsCaPath?: string;
  tlsServerName?: string;
}

/** The SDK's TLS options (both NativeConnection and Connection take this shape). */
export interface TemporalTls {
  serverNameOverride?: string;
  serverRootCACertificate?: Uint8Array;
  clientCertPair?: { crt: Uint8Array; key: Uint8Array };
}

export interface TemporalSettings {
  address: string;
  namespace: string;
  apiKey?: string;
  /** Absent: a plaintext connection. */
  tls?: TemporalTls;
  /** gRPC headers (the profile's grpc_meta, TEMPORAL_GRPC_META_*). */
  metadata?: Record<string, string>;
  /** What a log line may say about the connection (no secret). */
  summary: { profile: string; configFile?: string; tls: boolean; clientCert: boolean; serverCa: boolean; serverName?: string; apiKey: boolean };
}

export interface ResolveOptions {
  /** --profile; else TEMPORAL_PROFILE; else "default". */
  profile?: string;
  /** --config-file; else TEMPORAL_CONFIG_FILE; else the Temporal CLI's default path. */
  configFile?: string;
  /** Settings that win over the profile but not over the environment (the host worker's config file). */
  below?: TemporalOverrides;
  belowName?: string;
  /** Settings that win over everything (the CLI's command line). */
  above?: TemporalOverrides;
  aboveName?: string;
}

type Source = { data: ConfigDataSource; from: string };

/** The environment envconfig sees: only what was checked, with the short TLS names folded into the long ones. */
function envconfigEnv(e: ReturnType<typeof parseEnv<typeof temporalConnectionEnvShape>>, env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  const set = (name: string, v: string | boolean | undefined): void => {
    if (v !== undefined) out[name] = String(v);
  };
  set('TEMPORAL_ADDRESS', e.TEMPORAL_ADDRESS);
  set('TEMPORAL_NAMESPACE', e.TEMPORAL_NAMESPACE);
  set('TEMPORAL_API_KEY', e.TEMPORAL_API_KEY);
  set('TEMPORAL_TLS', e.TEMPORAL_TLS);
  set('TEMPORAL_TLS_CLIENT_CERT_PATH', e.TEMPORAL_TLS_CLIENT_CERT_PATH ?? e.TEMPORAL_TLS_CERT);
  set('TEMPORAL_TLS_CLIENT_CERT_DATA', e.TEMPORAL_TLS_CLIENT_CERT_DATA);
  set('TEMPORAL_TLS_CLIENT_KEY_PATH', e.TEMPORAL_TLS_CLIENT_KEY_PATH ?? e.TEMPORAL_TLS_KEY);
  set('TEMPORAL_TLS_CLIENT_KEY_DATA', e.TEMPORAL_TLS_CLIENT_KEY_DATA);
  set('TEMPORAL_TLS_SERVER_CA_CERT_PATH', e.TEMPORAL_TLS_SERVER_CA_CERT_PATH ?? e.TEMPORAL_TLS_CA);
  set('TEMPORAL_TLS_SERVER_CA_CERT_DATA', e.TEMPORAL_TLS_SERVER_CA_CERT_DATA);
  set('TEMPORAL_TLS_SERVER_NAME', e.TEMPORAL_TLS_SERVER_NAME);
  // Headers by prefix, as the Temporal CLI reads them; where the default profile file lives.
  for (const [k, v] of Object.entries(env)) if (v !== undefined && k.startsWith('TEMPORAL_GRPC_META_')) out[k] = v;
  for (const k of ['HOME', 'XDG_CONFIG_HOME']) set(k, env[k]);
  return out;
}

/** Where the Temporal CLI looks when no file is named (Linux: $XDG_CONFIG_HOME or ~/.config). */
function defaultConfigFile(env: Record<string, string>): string | undefined {
  const dir = env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : env.HOME ? join(env.HOME, '.config') : undefined;
  return dir === undefined ? undefined : join(dir, 'temporalio', 'temporal.toml');
}

function guarded<T>(where: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw new TemporalConfigError(`${where}: ${(err as Error).message}`);
  }
}

function overridesAsProfile(o: TemporalOverrides | undefined): ClientConfigProfile {
  if (!o) return {};
  const tlsGiven = o.tls !== undefined || o.tlsCertPath || o.tlsKeyPath || o.tlsCaPath || o.tlsServerName;
  return {
    ...(o.address !== undefined ? { address: o.address } : {}),
    ...(o.namespace !== undefined ? { namespace: o.namespace } : {}),
    ...(o.apiKey !== undefined ? { apiKey: o.apiKey } : {}),
    ...(tlsGiven
      ? {
          tls: {
            ...(o.tls !== undefined ? { disabled: !o.tls } : {}),
            ...(o.tlsServerName ? { serverName: o.tlsServerName } : {}),
            ...(o.tlsCertPath ? { clientCert: { path: o.tlsCertPath } } : {}),
            ...(o.tlsKeyPath ? { clientKey: { path: o.tlsKeyPath } } : {}),
            ...(o.tlsCaPath ? { serverCACert: { path: o.tlsCaPath } } : {}),
          },
        }
      : {}),
  };
}

/** The named profile of the Temporal CLI's TOML file; keys it does not know are refused, as vmferry's own config file does. */
function profileFromFile(file: string | undefined, name: string, asked: boolean): ClientConfigProfile {
  const from = (f: string): string => `Temporal config file ${f} (TEMPORAL_CONFIG_FILE)`;
  if (file === undefined) {
    if (asked)
      throw new TemporalConfigError(
        `profile ${JSON.stringify(name)} asked for, but there is no Temporal config file (TEMPORAL_CONFIG_FILE, --config-file, or ~/.config/temporalio/temporal.toml)`,
      );
    return {};
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TemporalConfigError(`cannot read ${from(file)}: ${e.code ?? e.message}`);
  }
  // A file without any [profile.*] table holds no profile (envconfig would fail on it with a TypeError).
  if (!/^\s*\[?\s*profile\b/m.test(text)) {
    if (asked) throw new TemporalConfigError(`${from(file)} has no profile ${JSON.stringify(name)}`);
    return {};
  }
  const profiles = guarded(from(file), () => loadClientConfig({ configSource: { data: text }, configFileStrict: true }).profiles);
  const p = profiles[name];
  if (p === undefined && asked)
    throw new TemporalConfigError(`${from(file)} has no profile ${JSON.stringify(name)} (it has ${Object.keys(profiles).join(', ') || 'none'})`);
  return p ?? {};
}

/** A certificate or key, read now; `pem` is the marker its text must hold. */
function readPem(src: Source, what: string, pem: RegExp): Uint8Array {
  let bytes: Uint8Array;
  const named = 'path' in src.data ? `${what} ${src.data.path} (${src.from})` : `${what} (${src.from}, inline data)`;
  if ('path' in src.data) {
    try {
      bytes = readFileSync(src.data.path);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new TemporalConfigError(`cannot read ${named}: ${e.code ?? e.message}`);
    }
  } else {
    bytes = typeof src.data.data === 'string' ? new TextEncoder().encode(src.data.data) : src.data.data;
  }
  if (!pem.test(new TextDecoder().decode(bytes))) throw new TemporalConfigError(`${named} is not PEM (no ${pem.source.replace(/\\/g, '')} block)`);
  return bytes;
}

/**
 * The connection a process makes. Lowest to highest: the defaults, the Temporal CLI profile,
 * `below` (vmferry's config file), the TEMPORAL_* environment, `above` (a command line).
 */
export function resolveTemporalSettings(env: Env, opts: ResolveOptions = {}): TemporalSettings {
  const e = parseEnv(temporalConnectionEnvShape, env, (m) => new TemporalConfigError(m));
  if (e.TEMPORAL_TLS_DISABLE_HOST_VERIFICATION) {
    throw new TemporalConfigError(
      "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION=true: Temporal's TypeScript SDK always checks the server's certificate; set TEMPORAL_TLS_SERVER_NAME to a name it holds instead",
      ErrorType.ConfigUnsupported,
    );
  }
  const clean = envconfigEnv(e, env);
  const profile = opts.profile ?? e.TEMPORAL_PROFILE;
  const named = opts.configFile ?? e.TEMPORAL_CONFIG_FILE;
  // envconfig treats a missing file as no file; one the operator named must exist (profileFromFile reads it).
  const fallback = defaultConfigFile(clean);
  const configFile = named ?? (fallback !== undefined && existsSync(fallback) ? fallback : undefined);
  const profileName = profile ?? 'default';
  const fromFile = profileFromFile(configFile, profileName, profile !== undefined);
  const fromEnv = guarded('TEMPORAL_* environment', () => loadClientConfigProfile({ disableFile: true, overrideEnvVars: clean }));
  const layers: { from: string; p: ClientConfigProfile }[] = [
    { from: configFile ? `profile ${JSON.stringify(profileName)} in ${configFile}` : 'profile', p: fromFile },
    { from: opts.belowName ?? 'vmferry config', p: overridesAsProfile(opts.below) },
    { from: 'TEMPORAL_* environment', p: fromEnv },
    { from: opts.aboveName ?? 'command line', p: overridesAsProfile(opts.above) },
  ];
  let address = DEFAULT_TEMPORAL_ADDRESS;
  let namespace = DEFAULT_NAMESPACE;
  let apiKey: string | undefined;
  const metadata: Record<string, string> = {};
  let tlsMentioned = false;
  let tlsDisabled: boolean | undefined;
  let serverName: string | undefined;
  let cert: Source | undefined;
  let key: Source | undefined;
  let ca: Source | undefined;
  for (const { from, p } of layers) {
    address = p.address ?? address;
    namespace = p.namespace ?? namespace;
    apiKey = p.apiKey ?? apiKey;
    Object.assign(metadata, p.grpcMeta ?? {});
    if (!p.tls) continue;
    tlsMentioned = true;
    tlsDisabled = p.tls.disabled ?? tlsDisabled;
    serverName = p.tls.serverName ?? serverName;
    if (p.tls.clientCert) cert = { data: p.tls.clientCert, from };
    if (p.tls.clientKey) key = { data: p.tls.clientKey, from };
    if (p.tls.serverCACert) ca = { data: p.tls.serverCACert, from };
  }
  if (address === '') throw new TemporalConfigError('the Temporal address is empty');
  if (namespace === '') throw new TemporalConfigError('the Temporal namespace is empty');
  // As the Temporal CLI: TLS once anything about it (or an API key) is given, unless turned off.
  const tlsOn = tlsDisabled !== true && (tlsMentioned || apiKey !== undefined);
  if (!tlsOn && (cert || key || ca || serverName)) {
    throw new TemporalConfigError('TLS is turned off (TEMPORAL_TLS=false, --tls=false or tls.disabled) while a certificate, key, CA or server name is set');
  }
  if (Boolean(cert) !== Boolean(key)) {
    const [has, lacks] = cert ? [cert, 'key'] : [key!, 'certificate'];
    throw new TemporalConfigError(`a client ${cert ? 'certificate' : 'key'} is set (${has.from}) without its ${lacks}`);
  }
  const clientCertPair =
    cert && key
      ? { crt: readPem(cert, 'client certificate', /-----BEGIN CERTIFICATE-----/), key: readPem(key, 'client key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/) }
      : undefined;
  const serverRootCACertificate = ca ? readPem(ca, 'server CA certificate', /-----BEGIN CERTIFICATE-----/) : undefined;
  const tls: TemporalTls | undefined = tlsOn
    ? {
        ...(serverName ? { serverNameOverride: serverName } : {}),
        ...(serverRootCACertificate ? { serverRootCACertificate } : {}),
        ...(clientCertPair ? { clientCertPair } : {}),
      }
    : undefined;
  return {
    address,
    namespace,
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(tls ? { tls } : {}),
    ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
    summary: {
      profile: profileName,
      ...(configFile ? { configFile } : {}),
      tls: tlsOn,
      clientCert: clientCertPair !== undefined,
      serverCa: serverRootCACertificate !== undefined,
      ...(serverName ? { serverName } : {}),
      apiKey: apiKey !== undefined,
    },
  };
}
