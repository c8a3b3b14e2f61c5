// One typed configuration: every variable the code reads is declared in a process's
// config schema and documented in README.md's Configuration table (and nothing else
// is documented there); no other module reads the environment for a setting; bad
// values and unknown config-file keys are refused with their names; the defaults of
// a one-machine setup are what they always were.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { cliEnvShape, loadCliConfig } from '../src/cli/cli-config.js';
import { hostConfigFileSchema } from '../src/host/host-config-file.js';
import { HostConfigError, loadHostConfig } from '../src/host/host-config.js';
import { hostEnvShape } from '../src/host/host-env.js';
import { loadLocalConfig, localEnvShape } from '../src/local/local-config.js';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { controlEnvShape, loadControlConfig } from '../src/workers/control-config.js';

/** The modules allowed to read the environment for a setting (each process's config, and the shared schema). */
const CONFIG_MODULES = [
  'src/common/config-schema.ts',
  'src/host/host-config.ts',
  'src/host/host-env.ts',
  'src/host/host-config-file.ts',
  'src/workers/control-config.ts',
  'src/cli/cli-config.ts',
  'src/local/local-config.ts',
];

function sources(dir: string): string[] {
  return readdirSync(join(PROJECT_ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts'))
    .map((d) => relative(PROJECT_ROOT, join(d.parentPath, d.name)));
}
const CODE = [...sources('src'), ...sources('scripts')];

/** Every variable some process's schema declares. */
const declared = new Set([hostEnvShape, controlEnvShape, cliEnvShape, localEnvShape].flatMap((s) => Object.keys(s)));

/** The README's Configuration table: its variables, and its JSON keys. */
function readmeTable(): { variables: string[]; jsonKeys: string[] } {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const section = /\n## Configuration\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
  const rows = section.split('\n').filter((l) => l.startsWith('| `'));
  const cells = rows.map((r) => r.split(/(?<!\\)\|/).map((c) => c.trim()));
  const names = (cell: string | undefined): string[] => [...(cell ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
  return { variables: cells.flatMap((c) => names(c[1])), jsonKeys: cells.flatMap((c) => names(c[2])) };
}

/** The config file's keys, nested ones dotted ("migration.portMin"). */
function fileKeys(): string[] {
  return Object.entries(hostConfigFileSchema.shape).flatMap(([k, v]) => (v instanceof z.ZodObject ? Object.keys(v.shape).map((n) => `${k}.${n}`) : [k]));
}

const tmp = mkdtempSync(join(tmpdir(), 'vmf-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const dirs = { VMFERRY_HOST_BASE_DIR: join(tmp, 'base'), VMFERRY_HOST_MEMORY_DIR: join(tmp, 'mem') };
const host = (env: Record<string, string>) => loadHostConfig({ VMFERRY_HOST_NAME: 'cfg', ...dirs, ...env });
/** The message a call throws (a HostConfigError for the host worker). */
function failure(f: () => unknown, type: new (...a: never[]) => Error = Error): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    return (err as Error).message;
  }
  throw new Error('expected an error');
}

describe('configuration', () => {
  it('README.md documents every variable the code reads, and only those', () => {
    const mentioned = new Set(CODE.flatMap((f) => [...readFileSync(join(PROJECT_ROOT, f), 'utf8').matchAll(/\bVMFERRY_[A-Z0-9_]+\b/g)].map((m) => m[0])));
    // A name the code mentions (in a message, or set for a child) is one some schema reads.
    expect([...mentioned].filter((n) => !declared.has(n))).toEqual([]);
    const table = readmeTable();
    expect(table.variables.length).toBeGreaterThan(40);
    expect(new Set(table.variables).size, 'a variable listed twice').toBe(table.variables.length);
    expect(
      [...declared].filter((n) => !table.variables.includes(n)),
      'read by the code, missing from the README table',
    ).toEqual([]);
    expect(
      table.variables.filter((n) => !declared.has(n)),
      'in the README table, read by nobody',
    ).toEqual([]);
    expect([...fileKeys()].sort()).toEqual([...table.jsonKeys].sort());
  });

  it('only the config modules read the environment for a setting', () => {
    const readers = CODE.filter((f) => !CONFIG_MODULES.includes(f)).flatMap((f) => {
      const text = readFileSync(join(PROJECT_ROOT, f), 'utf8');
      // process.env.X / process.env[...] / env.VMFERRY_X: any read of a VMFERRY_* or TEMPORAL_* setting, or a computed one.
      const reads = [...text.matchAll(/process\.env(?:\.(VMFERRY_|TEMPORAL_)\w*|\[)|\benv\.(VMFERRY|TEMPORAL)_\w+/g)].map((m) => m[0]);
      return reads.map((r) => `${f}: ${r}`);
    });
    expect(readers).toEqual([]);
    for (const dir of ['src/migration', 'src/qemu', 'src/saveimage', 'src/security', 'src/domain', 'src/xml', 'src/support', 'src/codec']) {
      const touching = sources(dir).filter((f) =>
        /process\.env\b(?!\s*,\s*LC_ALL)/.test(readFileSync(join(PROJECT_ROOT, f), 'utf8').replace(/\.\.\.process\.env/g, '')),
      );
      // support/which.ts reads PATH, the one variable a PATH lookup is about.
      expect(
        touching.filter((f) => f !== 'src/support/which.ts'),
        dir,
      ).toEqual([]);
    }
  });

  it('refuses an unknown or misspelt config-file key, naming it, and a value of the wrong type', () => {
    const file = join(tmp, 'host.json');
    writeFileSync(file, JSON.stringify({ name: 'cfg', stateDri: '/var/lib/x' }));
    expect(failure(() => host({ VMFERRY_HOST_CONFIG: file }), HostConfigError)).toMatch(/VMFERRY_HOST_CONFIG.*unknown key "stateDri"/);
    writeFileSync(file, JSON.stringify({ migration: { address: '10.0.0.1', portMn: 5000 } }));
    expect(failure(() => host({ VMFERRY_HOST_CONFIG: file }), HostConfigError)).toMatch(/unknown key "migration.portMn"/);
    writeFileSync(file, JSON.stringify({ tunnel: { listen: '10.0.0.1:7443', ca: '/etc/ca.crt' } }));
    expect(failure(() => host({ VMFERRY_HOST_CONFIG: file }), HostConfigError)).toMatch(/unknown key "tunnel.ca"/);
    writeFileSync(file, JSON.stringify({ migration: { portMin: '49152' } }));
    expect(failure(() => host({ VMFERRY_HOST_CONFIG: file }), HostConfigError)).toMatch(/migration\.portMin: .*expected number/);
    writeFileSync(file, JSON.stringify({ migration: { portMin: -1 } }));
    expect(failure(() => host({ VMFERRY_HOST_CONFIG: file }), HostConfigError)).toMatch(/migration\.portMin: must be an integer from 1 to 65535/);
    writeFileSync(file, JSON.stringify({ protocolVersions: [4] }));
    expect(failure(() => host({ VMFERRY_HOST_CONFIG: file }), HostConfigError)).toMatch(/protocolVersions: must be a non-empty subset of \[2, 3\]/);
    writeFileSync(file, '{"name": "cfg",');
    expect(failure(() => host({ VMFERRY_HOST_CONFIG: file }), HostConfigError)).toMatch(/config file .*host\.json \(VMFERRY_HOST_CONFIG\): .*JSON/);
    expect(failure(() => host({ VMFERRY_HOST_CONFIG: join(tmp, 'missing.json') }), HostConfigError)).toMatch(/missing\.json.*ENOENT/);
    // Every key the example file uses is known.
    expect(loadHostConfig({ VMFERRY_HOST_CONFIG: join(PROJECT_ROOT, 'deploy', 'host-worker.example.json'), ...dirs, ...hostDirs() }).name).toBe('host-a');
  });

  it('refuses a negative or non-numeric number, naming the variable and what is wrong', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ VMFERRY_AUTO_DESTROY_INTERVAL_MS: '-5' }, /VMFERRY_AUTO_DESTROY_INTERVAL_MS="-5": must be a number > 0/],
      [{ VMFERRY_AUTO_DESTROY_INTERVAL_MS: 'soon' }, /VMFERRY_AUTO_DESTROY_INTERVAL_MS="soon": must be a number > 0/],
      [{ VMFERRY_MIGRATION_STALL_TIMEOUT_MS: '-1' }, /VMFERRY_MIGRATION_STALL_TIMEOUT_MS="-1": must be an integer > 0/],
      [{ VMFERRY_MIGRATION_STALL_TIMEOUT_MS: '1.5' }, /VMFERRY_MIGRATION_STALL_TIMEOUT_MS="1.5": must be an integer > 0/],
      [{ VMFERRY_HOST_MIGRATION_PORT_MIN: 'abc' }, /VMFERRY_HOST_MIGRATION_PORT_MIN="abc": must be an integer from 1 to 65535/],
      [{ VMFERRY_HOST_MIGRATION_PORT_MAX: '-49215' }, /VMFERRY_HOST_MIGRATION_PORT_MAX="-49215": must be an integer from 1 to 65535/],
      [{ VMFERRY_HOST_PROTOCOLS: '2,4' }, /VMFERRY_HOST_PROTOCOLS="2,4": must be a comma-separated subset of 2,3/],
      [{ VMFERRY_LOG_LEVEL: 'loud' }, /VMFERRY_LOG_LEVEL="loud": must be one of fatal, error, warn, info/],
      [{ VMFERRY_FAULTS: 'save=explode' }, /VMFERRY_FAULTS="save=explode": bad VMFERRY_FAULTS entry/],
      [{ VMFERRY_PAYLOAD_KEY_FILE: ':' }, /VMFERRY_PAYLOAD_KEY_FILE=":": names no key file/],
      [{ VMFERRY_HOST_STATE_DIR: '' }, /VMFERRY_HOST_STATE_DIR="": must not be empty/],
    ];
    for (const [env, message] of cases)
      expect(
        failure(() => host(env), HostConfigError),
        JSON.stringify(env),
      ).toMatch(message);
    // Two bad values: both named in one error.
    expect(failure(() => host({ VMFERRY_HOST_MIGRATION_PORT_MIN: 'x', VMFERRY_AUTO_DESTROY_INTERVAL_MS: '0' }))).toMatch(
      /VMFERRY_HOST_MIGRATION_PORT_MIN="x".*; VMFERRY_AUTO_DESTROY_INTERVAL_MS="0"/,
    );
    expect(failure(() => host({ VMFERRY_HOST_MIGRATION_PORT_MIN: '50000', VMFERRY_HOST_MIGRATION_PORT_MAX: '49999' }))).toMatch(
      /bad migration port range 50000-49999/,
    );
    expect(failure(() => loadControlConfig({ VMFERRY_STICKY_QUEUE_TIMEOUT_MS: '-1000' }))).toMatch(
      /VMFERRY_STICKY_QUEUE_TIMEOUT_MS="-1000": must be a number > 0/,
    );
    expect(failure(() => loadControlConfig({ VMFERRY_METRICS_ADDRESS: '127.0.0.1:9464', VMFERRY_LOG_LEVEL: 'verbose' }))).toMatch(
      /VMFERRY_LOG_LEVEL="verbose"/,
    );
    expect(failure(() => loadLocalConfig({ VMFERRY_TEMPORAL_PORT: 'seven' }))).toMatch(/VMFERRY_TEMPORAL_PORT="seven": must be an integer from 1 to 65535/);
    expect(failure(() => loadLocalConfig({ VMFERRY_UI_PORT: '-8233' }))).toMatch(/VMFERRY_UI_PORT="-8233"/);
    expect(failure(() => loadCliConfig({ TEMPORAL_ADDRESS: '' }))).toMatch(/TEMPORAL_ADDRESS="": must not be empty/);
  });

  it('keeps the defaults of one machine', () => {
    const cfg = host({});
    expect(cfg).toEqual({
      name: 'cfg',
      hostUuid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      stateDir: join(tmp, 'base', 'state'),
      runDir: join(tmp, 'base', 'run'),
      logDir: join(tmp, 'base', 'log'),
      memoryBackingDir: join(tmp, 'mem'),
      qemuBinary: 'qemu-system-x86_64',
      emulators: [],
      qemuPaths: { firmwareDirs: [] },
      protocolVersions: [2, 3],
      migration: { address: '127.0.0.1', portMin: 49152, portMax: 49215 },
      saveDirs: [],
      sharedStoragePaths: [],
      temporal: {
        address: '127.0.0.1:7233',
        namespace: 'default',
        summary: { profile: 'default', tls: false, clientCert: false, serverCa: false, apiKey: false },
      },
      security: { driver: 'none', rememberDir: join(tmp, 'base', 'state', 'security') },
      qemuSandbox: true,
      cgroups: { mode: 'off', parent: 'vmferry.slice' },
      worker: { logLevel: 'info', auditLog: join(tmp, 'base', 'log', 'audit.log'), autoDestroyIntervalMs: 10_000, inventoryIntervalMs: 30_000 },
      qemuHide: { machines: [], capabilities: [], parameters: [], commands: [] },
      faults: { points: new Map(), dir: '/tmp' },
    });
    // Tests only: what the worker acts as if its QEMU lacked; a bad entry stops the worker at start.
    expect(host({ VMFERRY_HOST_QEMU_HIDE: 'machine:pc,capability:postcopy-ram' }).qemuHide).toMatchObject({ machines: ['pc'], capabilities: ['postcopy-ram'] });
    expect(failure(() => host({ VMFERRY_HOST_QEMU_HIDE: 'cpu:max' }), HostConfigError)).toMatch(
      /VMFERRY_HOST_QEMU_HIDE="cpu:max": bad VMFERRY_HOST_QEMU_HIDE entry/,
    );
    // The UUID survives a restart; the memory directory follows the name.
    expect(host({}).hostUuid).toBe(cfg.hostUuid);
    const name = `cfg-${process.pid}`;
    try {
      expect(loadHostConfig({ VMFERRY_HOST_NAME: name, VMFERRY_HOST_BASE_DIR: join(tmp, 'named') }).memoryBackingDir).toBe(`/dev/shm/vmferry-${name}`);
    } finally {
      rmSync(`/dev/shm/vmferry-${name}`, { recursive: true, force: true });
    }
    expect(loadControlConfig({})).toEqual({
      temporal: {
        address: '127.0.0.1:7233',
        namespace: 'default',
        summary: { profile: 'default', tls: false, clientCert: false, serverCa: false, apiKey: false },
      },
      logLevel: 'info',
    });
    expect(loadCliConfig({})).toEqual({ temporal: expect.any(Function) });
    expect(loadCliConfig({}).temporal({ overrides: {} })).toMatchObject({ address: '127.0.0.1:7233', namespace: 'default', summary: { tls: false } });
    expect(loadLocalConfig({})).toEqual({ stateDir: join(PROJECT_ROOT, '.state'), temporalPort: 7233, uiPort: 8233, demoGuest: 'demo1', demoDetached: false });
    expect(loadLocalConfig({ VMFERRY_TEMPORAL_PORT: '7300' }).uiPort).toBe(8300);
  });

  it('reads each setting as before: variables over file keys, lists, blanks, faults, timeouts', () => {
    const file = join(tmp, 'over.json');
    writeFileSync(
      file,
      JSON.stringify({ migration: { address: '10.0.0.1', portMin: 50000, portMax: 50010 }, saveDirs: ['/srv/saves'], temporal: { namespace: 'ns' } }),
    );
    const cfg = host({ VMFERRY_HOST_CONFIG: file, VMFERRY_HOST_MIGRATION_PORT_MAX: '50020', TEMPORAL_ADDRESS: 'temporal:7233' });
    expect(cfg.migration).toEqual({ address: '10.0.0.1', portMin: 50000, portMax: 50020 });
    expect(cfg.saveDirs).toEqual(['/srv/saves']);
    // Shared storage: the variable's colon list over the file's list; relative paths refused.
    writeFileSync(join(tmp, 'shared.json'), JSON.stringify({ sharedStoragePaths: ['/srv/san/'] }));
    expect(host({ VMFERRY_HOST_CONFIG: join(tmp, 'shared.json') }).sharedStoragePaths).toEqual(['/srv/san']);
    expect(host({ VMFERRY_HOST_CONFIG: join(tmp, 'shared.json'), VMFERRY_SHARED_STORAGE_PATHS: '/a:/b/c' }).sharedStoragePaths).toEqual(['/a', '/b/c']);
    expect(failure(() => host({ VMFERRY_SHARED_STORAGE_PATHS: 'images' }), HostConfigError)).toMatch(/shared storage path "images" must be absolute/);
    expect(cfg.temporal).toMatchObject({ address: 'temporal:7233', namespace: 'ns' });
    expect(cfg.temporal.tls).toBeUndefined();
    // The hooks directory: unset means no hooks; the file's key, the variable over it; relative refused.
    expect(cfg.hooksDir).toBeUndefined();
    writeFileSync(join(tmp, 'hooks.json'), JSON.stringify({ hooksDir: '/etc/vmferry/hooks/' }));
    expect(host({ VMFERRY_HOST_CONFIG: join(tmp, 'hooks.json') }).hooksDir).toBe('/etc/vmferry/hooks/');
    expect(host({ VMFERRY_HOST_CONFIG: join(tmp, 'hooks.json'), VMFERRY_HOST_HOOKS_DIR: '/srv/hooks' }).hooksDir).toBe('/srv/hooks');
    expect(host({ VMFERRY_HOST_HOOKS_DIR: '' }).hooksDir).toBeUndefined();
    expect(() => host({ VMFERRY_HOST_HOOKS_DIR: 'hooks' })).toThrow(/hooks directory "hooks" must be absolute/);
    // The lockspace: unset means no disk leases; the file's key, the variable over it; relative refused.
    expect(cfg.lockspaceDir).toBeUndefined();
    writeFileSync(join(tmp, 'locks.json'), JSON.stringify({ lockspaceDir: '/srv/shared/leases/' }));
    expect(host({ VMFERRY_HOST_CONFIG: join(tmp, 'locks.json') }).lockspaceDir).toBe('/srv/shared/leases/');
    expect(host({ VMFERRY_HOST_CONFIG: join(tmp, 'locks.json'), VMFERRY_LOCKSPACE_DIR: '/mnt/leases' }).lockspaceDir).toBe('/mnt/leases');
    expect(host({ VMFERRY_LOCKSPACE_DIR: '' }).lockspaceDir).toBeUndefined();
    expect(() => host({ VMFERRY_LOCKSPACE_DIR: 'leases' })).toThrow(/lockspace directory "leases" must be absolute/);
    // A QEMU beside the system's: its module directory and firmware directories, the variables over the file's keys.
    writeFileSync(
      join(tmp, 'qemu72.json'),
      JSON.stringify({ qemuModuleDir: '/opt/q72/lib/qemu/', qemuFirmwareDirs: ['/opt/q72/share/qemu', '/usr/share/seabios'] }),
    );
    expect(host({ VMFERRY_HOST_CONFIG: join(tmp, 'qemu72.json') }).qemuPaths).toEqual({
      moduleDir: '/opt/q72/lib/qemu',
      firmwareDirs: ['/opt/q72/share/qemu', '/usr/share/seabios'],
    });
    expect(host({ VMFERRY_HOST_CONFIG: join(tmp, 'qemu72.json'), VMFERRY_QEMU_FIRMWARE_DIRS: '/srv/fw:/srv/ipxe' }).qemuPaths).toEqual({
      moduleDir: '/opt/q72/lib/qemu',
      firmwareDirs: ['/srv/fw', '/srv/ipxe'],
    });
    // Empty: QEMU's own (the module directory unset, no firmware directory).
    expect(host({ VMFERRY_QEMU_MODULE_DIR: '', VMFERRY_QEMU_FIRMWARE_DIRS: '' }).qemuPaths).toEqual({ firmwareDirs: [] });
    expect(() => host({ VMFERRY_QEMU_MODULE_DIR: 'lib/qemu' })).toThrow(/QEMU module directory "lib\/qemu" must be absolute/);
    expect(() => host({ VMFERRY_QEMU_FIRMWARE_DIRS: '/usr/share/seabios:firmware' })).toThrow(/QEMU firmware directory "firmware" must be absolute/);
    writeFileSync(join(tmp, 'qemu-bad.json'), JSON.stringify({ qemuFirmwareDirs: '/usr/share/seabios' }));
    expect(failure(() => host({ VMFERRY_HOST_CONFIG: join(tmp, 'qemu-bad.json') }), HostConfigError)).toMatch(/qemuFirmwareDirs: /);
    // An empty emulator list allows none; an empty optional setting is unset.
    expect(host({ VMFERRY_HOST_EMULATORS: '' }).emulators).toEqual([]);
    expect(host({ VMFERRY_MIGRATION_STALL_TIMEOUT_MS: '', VMFERRY_AUTO_DESTROY_INTERVAL_MS: '', VMFERRY_PAYLOAD_KEY_FILE: '' })).toMatchObject({
      migration: { portMin: 49152 },
      worker: { autoDestroyIntervalMs: 10_000, inventoryIntervalMs: 30_000 },
    });
    const set = host({
      VMFERRY_MIGRATION_STALL_TIMEOUT_MS: '4000',
      VMFERRY_AUTO_DESTROY_INTERVAL_MS: '500',
      VMFERRY_FAULTS: 'migrate.finish=fail, save.mid-stream=hold',
      VMFERRY_FAULT_DIR: '/run/holds',
      VMFERRY_PAYLOAD_KEY_FILE: '/etc/new.key::/etc/old.key',
      VMFERRY_METRICS_ADDRESS: '127.0.0.1:9464',
      VMFERRY_AUDIT_LOG: '/var/log/audit.json',
      VMFERRY_LOG_LEVEL: 'warn',
      VMFERRY_SECURITY_DRIVER: 'dac',
      VMFERRY_QEMU_USER: '+107',
      VMFERRY_SECURITY_STATE_DIR: '/var/lib/labels',
      VMFERRY_INVENTORY_INTERVAL_MS: '2500',
    });
    expect(set.migration.stallTimeoutMs).toBe(4000);
    expect(set.worker).toEqual({
      logLevel: 'warn',
      metricsAddress: '127.0.0.1:9464',
      payloadKeyFiles: ['/etc/new.key', '/etc/old.key'],
      auditLog: '/var/log/audit.json',
      autoDestroyIntervalMs: 500,
      inventoryIntervalMs: 2500,
    });
    expect([...set.faults.points]).toEqual([
      ['migrate.finish', 'fail'],
      ['save.mid-stream', 'hold'],
    ]);
    expect(set.faults.dir).toBe('/run/holds');
    expect(set.security).toEqual({ driver: 'dac', user: '+107', rememberDir: '/var/lib/labels' });
    expect(loadControlConfig({ VMFERRY_WORKFLOW_BUNDLE: '/b.js', VMFERRY_STICKY_QUEUE_TIMEOUT_MS: '1000', TEMPORAL_NAMESPACE: 'ns' })).toMatchObject({
      workflowBundle: '/b.js',
      stickyQueueTimeoutMs: 1000,
      temporal: { namespace: 'ns' },
    });
    const cli = loadCliConfig({ VMFERRY_HOST: 'host-b', VMFERRY_REQUESTED_BY: 'alice@ops', TEMPORAL_ADDRESS: 'env:7233' });
    expect(cli).toMatchObject({ host: 'host-b', requestedBy: 'alice@ops' });
    expect(cli.temporal({ overrides: { namespace: 'ns' } })).toMatchObject({ address: 'env:7233', namespace: 'ns' });
    expect(loadLocalConfig({ VMFERRY_GO: '', VMFERRY_DEMO_DETACHED: '1', VMFERRY_TEMPORAL_CLI: '' })).toMatchObject({ go: '', demoDetached: true });
  });
});

/** State, run and log directories inside the test's temp dir (the example file names system paths). */
function hostDirs(): Record<string, string> {
  return { VMFERRY_HOST_STATE_DIR: join(tmp, 'ex', 's'), VMFERRY_HOST_RUN_DIR: join(tmp, 'ex', 'r'), VMFERRY_HOST_LOG_DIR: join(tmp, 'ex', 'l') };
}
