// A host worker is configured by a small JSON file and/or environment variables;
// every default works for one simulated host on one machine.
import type { TunnelConfig } from '../migration/tunnel/tls.js';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { isAbsolute, join, normalize, resolve } from 'node:path';
import { HOST_NAME_PATTERN } from '../common/constants.js';
import { resolveOnPath } from './emulators.js';

export interface HostConfig {
  name: string;
  hostUuid: string;
  /** Persistent definitions (<name>.xml), the host UUID. */
  stateDir: string;
  /** Live status per running domain, QMP sockets. */
  runDir: string;
  /** One QEMU log per domain. */
  logDir: string;
  /** Guest RAM files for domains with a file memory backing. */
  memoryBackingDir: string;
  qemuBinary: string;
  /** Absolute paths a domain's <emulator> may name (default: qemuBinary, resolved on PATH). */
  emulators: string[];
  /** Migration protocol versions this host speaks (libvirt's v2, v3). */
  protocolVersions: number[];
  migration: { address: string; portMin: number; portMax: number };
  /** When non-empty, save images and dumps may only be written below these directories. */
  saveDirs: string[];
  temporal: { address: string; namespace: string };
  /** Tunnelled migration: this worker's TLS listener and its certificates; absent = tunnelled refused. */
  tunnel?: TunnelConfig;
}

export type HostConfigFile = Partial<Omit<HostConfig, 'hostUuid'>> & { hostUuid?: string };

export class HostConfigError extends Error {
  override readonly name = 'HostConfigError';
}

function envList(v: string | undefined): number[] | undefined {
  return v ? v.split(',').map((s) => Number(s.trim())) : undefined;
}

export function loadHostConfig(env: NodeJS.ProcessEnv = process.env): HostConfig {
  const file: HostConfigFile = env.VMFERRY_HOST_CONFIG ? (JSON.parse(readFileSync(env.VMFERRY_HOST_CONFIG, 'utf8')) as HostConfigFile) : {};
  const name = env.VMFERRY_HOST_NAME ?? file.name ?? 'host-a';
  if (!HOST_NAME_PATTERN.test(name)) throw new HostConfigError(`host name ${JSON.stringify(name)} must match ${HOST_NAME_PATTERN}`);
  const base = resolve(env.VMFERRY_HOST_BASE_DIR ?? join(process.cwd(), '.state', 'hosts', name));
  const stateDir = resolve(env.VMFERRY_HOST_STATE_DIR ?? file.stateDir ?? join(base, 'state'));
  const runDir = resolve(env.VMFERRY_HOST_RUN_DIR ?? file.runDir ?? join(base, 'run'));
  const logDir = resolve(env.VMFERRY_HOST_LOG_DIR ?? file.logDir ?? join(base, 'log'));
  const memoryBackingDir = resolve(env.VMFERRY_HOST_MEMORY_DIR ?? file.memoryBackingDir ?? join('/dev/shm', `vmferry-${name}`));
  const protocolVersions = envList(env.VMFERRY_HOST_PROTOCOLS) ?? file.protocolVersions ?? [2, 3];
  if (!protocolVersions.length || protocolVersions.some((v) => v !== 2 && v !== 3)) {
    throw new HostConfigError(`protocolVersions must be a non-empty subset of [2, 3], got ${JSON.stringify(protocolVersions)}`);
  }
  const migration = {
    address: env.VMFERRY_HOST_MIGRATION_ADDRESS ?? file.migration?.address ?? '127.0.0.1',
    portMin: Number(env.VMFERRY_HOST_MIGRATION_PORT_MIN ?? file.migration?.portMin ?? 49152),
    portMax: Number(env.VMFERRY_HOST_MIGRATION_PORT_MAX ?? file.migration?.portMax ?? 49215),
  };
  if (!(
    Number.isInteger(migration.portMin) &&
    Number.isInteger(migration.portMax) &&
    migration.portMin > 0 &&
    migration.portMin <= migration.portMax &&
    migration.portMax < 65536
  )) {
    throw new HostConfigError(`bad migration port range ${migration.portMin}-${migration.portMax}`);
  }
  const tunnel = tunnelConfig(env, file.tunnel);
  const qemuBinary = env.VMFERRY_QEMU_BINARY ?? file.qemuBinary ?? 'qemu-system-x86_64';
  const emulators = loadEmulators(env.VMFERRY_HOST_EMULATORS?.split(':') ?? file.emulators, qemuBinary, env.PATH);
  for (const dir of [stateDir, runDir, logDir, memoryBackingDir]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  return {
    name,
    hostUuid: env.VMFERRY_HOST_UUID ?? file.hostUuid ?? persistentHostUuid(stateDir),
    stateDir,
    runDir,
    logDir,
    memoryBackingDir,
    qemuBinary,
    emulators,
    protocolVersions,
    migration,
    saveDirs: (env.VMFERRY_SAVE_DIRS?.split(':') ?? file.saveDirs ?? [])
      .filter((d) => d.length > 0)
      .map((d) => {
        if (!isAbsolute(d)) throw new HostConfigError(`save directory ${JSON.stringify(d)} must be absolute`);
        return resolve(d);
      }),
    temporal: {
      address: env.TEMPORAL_ADDRESS ?? file.temporal?.address ?? '127.0.0.1:7233',
      namespace: env.TEMPORAL_NAMESPACE ?? file.temporal?.namespace ?? 'default',
    },
    ...(tunnel ? { tunnel } : {}),
  };
}

/** All four settings or none: a half-configured tunnel is an error at start, not a surprise at migration time. */
function tunnelConfig(env: NodeJS.ProcessEnv, file: Partial<TunnelConfig> | undefined): TunnelConfig | undefined {
  const listen = env.VMFERRY_HOST_TUNNEL_LISTEN ?? file?.listen;
  const caFile = env.VMFERRY_HOST_TUNNEL_CA ?? file?.caFile;
  const certFile = env.VMFERRY_HOST_TUNNEL_CERT ?? file?.certFile;
  const keyFile = env.VMFERRY_HOST_TUNNEL_KEY ?? file?.keyFile;
  const given = [listen, caFile, certFile, keyFile].filter((v) => v !== undefined && v !== '');
  if (given.length === 0) return undefined;
  if (given.length !== 4 || !listen || !caFile || !certFile || !keyFile) {
    throw new HostConfigError('tunnel needs listen, caFile, certFile and keyFile together (VMFERRY_HOST_TUNNEL_LISTEN, _CA, _CERT, _KEY)');
  }
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(listen))
    throw new HostConfigError(`tunnel listen must be ADDR:PORT ([v6]:PORT), got ${JSON.stringify(listen)}`);
  for (const f of [caFile, certFile, keyFile]) {
    if (!isAbsolute(f)) throw new HostConfigError(`tunnel certificate path ${JSON.stringify(f)} must be absolute`);
  }
  return { listen, caFile, certFile, keyFile };
}

function loadEmulators(configured: unknown, qemuBinary: string, pathEnv: string | undefined): string[] {
  if (configured === undefined) {
    const own = resolveOnPath(qemuBinary, pathEnv);
    return own === undefined ? [] : [own];
  }
  if (!Array.isArray(configured)) throw new HostConfigError(`emulators must be a list of absolute paths, got ${JSON.stringify(configured)}`);
  return configured
    .filter((e) => e !== '')
    .map((e: unknown) => {
      if (typeof e !== 'string' || !isAbsolute(e)) throw new HostConfigError(`emulator ${JSON.stringify(e)} must be an absolute path`);
      return normalize(e);
    });
}

/** Same-host migration is refused by host UUID, so it must survive worker restarts. */
function persistentHostUuid(stateDir: string): string {
  const path = join(stateDir, 'host-uuid');
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const uuid = randomUUID();
  writeFileSync(path, `${uuid}\n`, { mode: 0o600 });
  return uuid;
}
