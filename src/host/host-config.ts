// A host worker is configured by a small JSON file and/or environment variables;
// every default works for one simulated host on one machine. This is the one place
// the host worker reads either: the rest of it gets the typed HostConfig.
import type { TunnelConfig } from '../migration/tunnel/tls.js';
import type { SecurityConfig } from '../security/driver.js';
import type { CgroupConfig } from './cgroups.js';
import type { FaultAction } from '../support/fault-points.js';
import type { Env, LogLevel } from '../common/config-schema.js';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { isAbsolute, join, normalize, resolve } from 'node:path';
import { HOST_NAME_PATTERN } from '../common/constants.js';
import { resolveTemporalSettings, type TemporalSettings } from '../connection/temporal-settings.js';
import { readHostConfigFile, type HostConfigFile } from './host-config-file.js';
import { HostConfigError, parseUidRange, readHostEnv, securityConfigOf, UID_RANGE_FORM } from './host-env.js';
import { resolveOnPath } from './emulators.js';
import type { QemuHide } from './host-capabilities.js';
import type { QemuPaths } from '../qemu/qemu-paths.js';
import { mkdirPrivate } from '../support/private-dir.js';

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
  /** Where every QEMU this host spawns (probe included) finds its modules and firmware, when not its defaults. */
  qemuPaths: QemuPaths;
  /** Migration protocol versions this host speaks (libvirt's v2, v3). */
  protocolVersions: number[];
  /** stallTimeoutMs: how long an active outgoing stream may move no byte (absent: the monitor's default). */
  migration: { address: string; portMin: number; portMax: number; stallTimeoutMs?: number };
  /** When non-empty, save images and dumps may only be written below these directories. */
  saveDirs: string[];
  /**
   * Directories whose files every host sees (a SAN or NFS mount the file-system type does not
   * give away): a disk below one is not copied by a migration, and may migrate without a copy flag.
   */
  sharedStoragePaths: string[];
  /** The Temporal connection: the Temporal CLI's profile, then `temporal` of the file, then TEMPORAL_* (certificates already read). */
  temporal: TemporalSettings;
  /** Where the operator's hook script `qemu` lives (libvirt's /etc/libvirt/hooks); absent = no hooks (host/hooks.ts). */
  hooksDir?: string;
  /** Disk leases: a directory on storage every host shares (host/leases/); absent = no leases, QEMU's own image locking only. */
  lockspaceDir?: string;
  /** Tunnelled migration: this worker's TLS listener and its certificates; absent = tunnelled refused. */
  tunnel?: TunnelConfig;
  security: SecurityConfig;
  /** QEMU's seccomp sandbox (host/confinement.ts SANDBOX_ARGS); on unless turned off. */
  qemuSandbox: boolean;
  /** Each guest's QEMU in its own cgroup (host/cgroups.ts); off unless configured. */
  cgroups: CgroupConfig;
  /** Settings of the worker process around the runtime (logging, metrics, payload codec, audit, reaper). */
  worker: {
    logLevel: LogLevel;
    /** host:port of the Prometheus endpoint; absent = no metrics served. */
    metricsAddress?: string;
    /** Payload key files, the first encrypting; absent = payloads in clear. */
    payloadKeyFiles?: string[];
    auditLog: string;
    autoDestroyIntervalMs: number;
    /** The longest gap between two inventory reports while the worker runs (changes are reported at once). */
    inventoryIntervalMs: number;
  };
  /** Test-only: what this worker acts as if its QEMU lacked (host-capabilities.ts). */
  qemuHide: QemuHide;
  /** Test-only fault points armed in this worker (support/fault-points.ts). */
  faults: { points: ReadonlyMap<string, FaultAction>; dir: string };
}

export { HostConfigError } from './host-env.js';
export type { HostConfigFile } from './host-config-file.js';

/** The host worker's whole configuration, from its environment (`env`) and the file it names; nothing else reads either. */
export function loadHostConfig(env: Env = process.env): HostConfig {
  const e = readHostEnv(env);
  const file: HostConfigFile = e.VMFERRY_HOST_CONFIG ? readHostConfigFile(e.VMFERRY_HOST_CONFIG) : {};
  const name = e.VMFERRY_HOST_NAME ?? file.name ?? 'host-a';
  if (!HOST_NAME_PATTERN.test(name)) throw new HostConfigError(`host name ${JSON.stringify(name)} must match ${HOST_NAME_PATTERN}`);
  // Before anything is created: a bad certificate path stops the worker here (a TemporalConfigError naming it).
  // The file's `temporal` section sits between the Temporal CLI's profile and the TEMPORAL_* environment.
  const temporal = resolveTemporalSettings(env, { below: file.temporal, belowName: 'temporal in VMFERRY_HOST_CONFIG' });
  const base = resolve(e.VMFERRY_HOST_BASE_DIR ?? join(process.cwd(), '.state', 'hosts', name));
  const stateDir = resolve(e.VMFERRY_HOST_STATE_DIR ?? file.stateDir ?? join(base, 'state'));
  const runDir = resolve(e.VMFERRY_HOST_RUN_DIR ?? file.runDir ?? join(base, 'run'));
  const logDir = resolve(e.VMFERRY_HOST_LOG_DIR ?? file.logDir ?? join(base, 'log'));
  const memoryBackingDir = resolve(e.VMFERRY_HOST_MEMORY_DIR ?? file.memoryBackingDir ?? join('/dev/shm', `vmferry-${name}`));
  const protocolVersions = e.VMFERRY_HOST_PROTOCOLS ?? file.protocolVersions ?? [2, 3];
  const migration = {
    address: e.VMFERRY_HOST_MIGRATION_ADDRESS ?? file.migration?.address ?? '127.0.0.1',
    portMin: e.VMFERRY_HOST_MIGRATION_PORT_MIN ?? file.migration?.portMin ?? 49152,
    portMax: e.VMFERRY_HOST_MIGRATION_PORT_MAX ?? file.migration?.portMax ?? 49215,
    ...(e.VMFERRY_MIGRATION_STALL_TIMEOUT_MS !== undefined ? { stallTimeoutMs: e.VMFERRY_MIGRATION_STALL_TIMEOUT_MS } : {}),
  };
  if (migration.portMin > migration.portMax) throw new HostConfigError(`bad migration port range ${migration.portMin}-${migration.portMax}`);
  const tunnel = tunnelConfig(
    {
      listen: e.VMFERRY_HOST_TUNNEL_LISTEN,
      caFile: e.VMFERRY_HOST_TUNNEL_CA,
      certFile: e.VMFERRY_HOST_TUNNEL_CERT,
      keyFile: e.VMFERRY_HOST_TUNNEL_KEY,
    },
    file.tunnel,
  );
  const hooksDir = e.VMFERRY_HOST_HOOKS_DIR ?? file.hooksDir;
  if (hooksDir !== undefined && hooksDir !== '' && !isAbsolute(hooksDir))
    throw new HostConfigError(`hooks directory ${JSON.stringify(hooksDir)} must be absolute`);
  const lockspaceDir = e.VMFERRY_LOCKSPACE_DIR ?? file.lockspaceDir;
  if (lockspaceDir !== undefined && lockspaceDir !== '' && !isAbsolute(lockspaceDir))
    throw new HostConfigError(`lockspace directory ${JSON.stringify(lockspaceDir)} must be absolute`);
  const cgroupParent = e.VMFERRY_CGROUP_PARENT ?? file.cgroups?.parent ?? 'vmferry.slice';
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(cgroupParent) || cgroupParent.split('/').some((p) => p === '.' || p === '..'))
    throw new HostConfigError(`cgroup parent ${JSON.stringify(cgroupParent)} must be a relative path of plain names (vmferry.slice)`);
  const qemuBinary = e.VMFERRY_QEMU_BINARY ?? file.qemuBinary ?? 'qemu-system-x86_64';
  const emulators = loadEmulators(e.VMFERRY_HOST_EMULATORS ?? file.emulators, qemuBinary, env.PATH);
  const moduleDir = e.VMFERRY_QEMU_MODULE_DIR ?? file.qemuModuleDir;
  if (moduleDir !== undefined && moduleDir !== '' && !isAbsolute(moduleDir))
    throw new HostConfigError(`QEMU module directory ${JSON.stringify(moduleDir)} must be absolute`);
  const qemuPaths: QemuPaths = {
    ...(moduleDir ? { moduleDir: resolve(moduleDir) } : {}),
    firmwareDirs: absoluteDirs(e.VMFERRY_QEMU_FIRMWARE_DIRS ?? file.qemuFirmwareDirs ?? [], 'QEMU firmware directory'),
  };
  for (const dir of [stateDir, runDir, logDir, memoryBackingDir]) {
    mkdirPrivate(dir);
    chmodSync(dir, 0o700);
  }
  return {
    name,
    hostUuid: e.VMFERRY_HOST_UUID ?? file.hostUuid ?? persistentHostUuid(stateDir),
    stateDir,
    runDir,
    logDir,
    memoryBackingDir,
    qemuBinary,
    emulators,
    qemuPaths,
    protocolVersions,
    migration,
    saveDirs: absoluteDirs(e.VMFERRY_SAVE_DIRS ?? file.saveDirs ?? [], 'save directory'),
    sharedStoragePaths: absoluteDirs(e.VMFERRY_SHARED_STORAGE_PATHS ?? file.sharedStoragePaths ?? [], 'shared storage path'),
    temporal,
    ...(tunnel ? { tunnel } : {}),
    ...(hooksDir ? { hooksDir: normalize(hooksDir) } : {}),
    ...(lockspaceDir ? { lockspaceDir: normalize(lockspaceDir) } : {}),
    security: securityConfigOf(
      {
        ...e,
        VMFERRY_SECURITY_DRIVER: e.VMFERRY_SECURITY_DRIVER ?? file.security?.driver,
        VMFERRY_QEMU_USER: e.VMFERRY_QEMU_USER ?? file.security?.user,
        VMFERRY_QEMU_GROUP: e.VMFERRY_QEMU_GROUP ?? file.security?.group,
        VMFERRY_QEMU_UID_RANGE: e.VMFERRY_QEMU_UID_RANGE ?? fileUidRange(file.security?.uidRange),
      },
      { rememberDir: join(stateDir, 'security') },
    ),
    qemuSandbox: e.VMFERRY_QEMU_SANDBOX !== undefined ? e.VMFERRY_QEMU_SANDBOX === 'on' : (file.qemuSandbox ?? true),
    cgroups: {
      mode: e.VMFERRY_CGROUPS ?? file.cgroups?.mode ?? 'off',
      parent: cgroupParent,
      ...((e.VMFERRY_CGROUP_ROOT ?? file.cgroups?.root) ? { root: e.VMFERRY_CGROUP_ROOT ?? file.cgroups?.root } : {}),
    },
    worker: {
      logLevel: e.VMFERRY_LOG_LEVEL,
      ...(e.VMFERRY_METRICS_ADDRESS ? { metricsAddress: e.VMFERRY_METRICS_ADDRESS } : {}),
      ...(e.VMFERRY_PAYLOAD_KEY_FILE ? { payloadKeyFiles: e.VMFERRY_PAYLOAD_KEY_FILE } : {}),
      auditLog: e.VMFERRY_AUDIT_LOG ?? join(logDir, 'audit.log'),
      autoDestroyIntervalMs: e.VMFERRY_AUTO_DESTROY_INTERVAL_MS,
      inventoryIntervalMs: e.VMFERRY_INVENTORY_INTERVAL_MS,
    },
    qemuHide: e.VMFERRY_HOST_QEMU_HIDE,
    faults: { points: e.VMFERRY_FAULTS, dir: e.VMFERRY_FAULT_DIR },
  };
}

function fileUidRange(v: string | undefined): { min: number; max: number } | undefined {
  if (v === undefined) return undefined;
  const r = parseUidRange(v);
  if (!r) throw new HostConfigError(`security.uidRange in VMFERRY_HOST_CONFIG ${UID_RANGE_FORM}, got ${JSON.stringify(v)}`);
  return r;
}

function absoluteDirs(dirs: string[], what: string): string[] {
  return dirs
    .filter((d) => d.length > 0)
    .map((d) => {
      if (!isAbsolute(d)) throw new HostConfigError(`${what} ${JSON.stringify(d)} must be absolute`);
      return resolve(d);
    });
}

/** All four settings or none: a half-configured tunnel is an error at start, not a surprise at migration time. */
function tunnelConfig(fromEnv: Partial<TunnelConfig>, file: Partial<TunnelConfig> | undefined): TunnelConfig | undefined {
  const listen = fromEnv.listen ?? file?.listen;
  const caFile = fromEnv.caFile ?? file?.caFile;
  const certFile = fromEnv.certFile ?? file?.certFile;
  const keyFile = fromEnv.keyFile ?? file?.keyFile;
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

function loadEmulators(configured: string[] | undefined, qemuBinary: string, pathEnv: string | undefined): string[] {
  if (configured === undefined) {
    const own = resolveOnPath(qemuBinary, pathEnv);
    return own === undefined ? [] : [own];
  }
  return configured
    .filter((e) => e !== '')
    .map((e) => {
      if (!isAbsolute(e)) throw new HostConfigError(`emulator ${JSON.stringify(e)} must be an absolute path`);
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
