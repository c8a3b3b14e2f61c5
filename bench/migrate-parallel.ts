// Parallel (multifd) live migration, in clear and with QEMU's TLS: vmferry's `migrate`
// workflow with --parallel --parallel-connections N against raw QEMU driven over QMP with
// the same settings (multifd on both ends, the same N, the same TLS credentials, destination
// RAM preallocated as vmferry's Prepare does, unlimited bandwidth), interleaved (raw clear,
// vmferry clear, raw TLS, vmferry TLS, ...) in one run; prints the ratios of medians.
// Each side ping-pongs one guest between two QEMUs over tcp loopback, its RAM (above
// 16 MiB) refilled with random bytes before every run.
//   raw:     spawn the destination with -incoming defer (its TLS object, multifd, prealloc),
//            migrate-incoming, migrate, wait, cont: until it runs
//   vmferry: workflow start to workflow result (Begin ... Confirm, source killed)
// Usage: node --import tsx bench/migrate-parallel.ts [--pairs N] [--mib M] [--channels N]
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { QmpEvent } from '../src/qemu/qmp-client.js';
import type { MigrateFlag, MigrateInput } from '../src/common/migration-types.js';
import { freePort } from '../src/local/free-port.js';
import { fillRandom } from '../test/helpers/guest-memory.js';
import { guestXml } from '../test/helpers/guest-xml.js';
import { makeCa, makeHostCert, tunnelEnv, type HostCert } from '../test/helpers/tunnel-certs.js';
import { arg, BenchEnv, median, say, startMigration, type RawQemu } from './common.js';

const PAIRS = arg('pairs', 3);
const MIB = arg('mib', 1024);
const CHANNELS = arg('channels', 4);
const FILL = (MIB - 16) * 1024 * 1024;
const evMs = (ev: QmpEvent): number => ev.timestamp.seconds * 1000 + ev.timestamp.microseconds / 1000;
type Mode = 'clear' | 'tls';
const MODES: readonly Mode[] = ['clear', 'tls'];

const env = await BenchEnv.create('vmf-bench-mfd');
let vmHost: string | undefined;
// Everything after the dev server is up runs inside this try: a failure anywhere stops what was started.
try {
  const certDir = join(env.root, 'certs');
  mkdirSync(certDir);
  const ca = makeCa(certDir, 'bench-ca');
  const HOSTS = ['bench-pa', 'bench-pb'] as const;
  const certs: Record<string, HostCert> = Object.fromEntries(HOSTS.map((h) => [h, makeHostCert(certDir, ca, h)]));

  // ---- raw QEMU ------------------------------------------------------------
  /** QEMU's credential directory for a host's certificate (its fixed file names), with RFC 7919 DH parameters so no run generates its own. */
  function credsDir(host: string): string {
    const dir = join(certDir, `qemu-${host}`);
    mkdirSync(dir);
    const c = certs[host]!;
    for (const [file, from] of [
      ['ca-cert.pem', c.caFile],
      ['server-cert.pem', c.certFile],
      ['server-key.pem', c.keyFile],
      ['client-cert.pem', c.certFile],
      ['client-key.pem', c.keyFile],
    ] as const)
      copyFileSync(from, join(dir, file));
    const dh = spawnSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'dh_param:ffdhe2048', '-out', join(dir, 'dh-params.pem')]);
    if (dh.status !== 0) throw new Error(`openssl genpkey: ${dh.stderr.toString()}`);
    return dir;
  }
  const rawCreds: Record<string, string> = { [HOSTS[0]]: credsDir(HOSTS[0]), [HOSTS[1]]: credsDir(HOSTS[1]) };

  /** The same stream settings vmferry gives both ends: events, multifd with N channels, and TLS when asked. */
  async function rawSetup(q: RawQemu, mode: Mode, role: 'server' | 'client', self: string, peer: string): Promise<void> {
    await q.qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'events', state: true },
        { capability: 'multifd', state: true },
      ],
    });
    await q.qmp.execute('migrate-set-parameters', { 'multifd-channels': CHANNELS, 'max-bandwidth': Number.MAX_SAFE_INTEGER });
    // An earlier run's credentials (this QEMU was a TLS destination) go first, as vmferry resets them.
    await q.qmp.execute('migrate-set-parameters', { 'tls-creds': '', 'tls-hostname': '' });
    await q.qmp.execute('object-del', { id: 'tls0' }).catch(() => undefined);
    if (mode === 'clear') return;
    await q.qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id: 'tls0', dir: rawCreds[self]!, endpoint: role, 'verify-peer': true });
    await q.qmp.execute('migrate-set-parameters', { 'tls-creds': 'tls0', 'tls-hostname': role === 'client' ? peer : '' });
  }

  const RAW_UUID = randomUUID();
  let rawSource = await env.rawSpawn(MIB, false, RAW_UUID);
  await rawSource.qmp.execute('cont');
  let rawHost: string = HOSTS[0];
  async function rawRun(mode: Mode): Promise<{ wallMs: number; downtimeMs: number }> {
    fillRandom(rawSource.ram, FILL);
    const to = rawHost === HOSTS[0] ? HOSTS[1] : HOSTS[0];
    const t0 = performance.now();
    const dest = await env.rawSpawn(MIB, true, RAW_UUID);
    const port = await freePort();
    await rawSetup(dest, mode, 'server', to, rawHost);
    // What vmferry's Prepare does before the stream: the destination's RAM touched up front.
    await dest.qmp.execute('qom-set', { path: '/objects/pc.ram', property: 'prealloc-threads', value: 2 });
    await dest.qmp.execute('qom-set', { path: '/objects/pc.ram', property: 'prealloc', value: true }, { timeoutMs: 120_000 });
    await dest.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
    const src = rawSource.qmp;
    await rawSetup(rawSource, mode, 'client', rawHost, to);
    const stopped = src.waitForEvent('STOP', { timeoutMs: 300_000 });
    const done = dest.qmp.waitForEvent('MIGRATION', { timeoutMs: 300_000, predicate: (e) => e.data?.status === 'completed' || e.data?.status === 'failed' });
    await src.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    const ev = await done;
    if (ev.data?.status !== 'completed') throw new Error(`raw ${mode} migration failed`);
    const resumed = dest.qmp.waitForEvent('RESUME', { timeoutMs: 10_000 });
    await dest.qmp.execute('cont');
    const wallMs = performance.now() - t0;
    const downtimeMs = evMs(await resumed) - evMs(await stopped);
    await env.rawKill(rawSource);
    rawSource = dest;
    rawHost = to;
    return { wallMs, downtimeMs };
  }

  // ---- vmferry ---------------------------------------------------------------
  const hostExtra = async (name: string, portMin: number): Promise<Record<string, string>> => ({
    VMFERRY_HOST_MIGRATION_PORT_MIN: String(portMin),
    VMFERRY_HOST_MIGRATION_PORT_MAX: String(portMin + 7),
    ...tunnelEnv(`127.0.0.1:${await freePort()}`, certs[name]!),
  });
  await Promise.all([
    env.startHost(HOSTS[0], await hostExtra(HOSTS[0], 49540)),
    env.startHost(HOSTS[1], await hostExtra(HOSTS[1], 49550)),
    env.startControl(),
  ]).catch(async (err: unknown) => {
    await env.stop();
    throw err;
  });
  const uuid = randomUUID();
  const GUEST = 'benchmfdguest';
  await env.op(HOSTS[0], { op: 'define', xml: guestXml({ name: GUEST, uuid, memoryMiB: MIB }) });
  vmHost = HOSTS[0];
  let vmRam = ((await env.op(HOSTS[0], { op: 'start', name: GUEST })) as { domain: { memoryBackingFile: string } }).domain.memoryBackingFile;

  async function vmRun(mode: Mode): Promise<{ wallMs: number; qemuMs: number; downtimeMs: number; channels?: number }> {
    fillRandom(vmRam, FILL);
    const from = vmHost!;
    const to = from === HOSTS[0] ? HOSTS[1] : HOSTS[0];
    const flags: MigrateFlag[] = ['live', 'persist-dest', 'undefine-source', 'parallel', ...(mode === 'tls' ? (['tls'] as const) : [])];
    const input: MigrateInput = { domain: GUEST, domainUuid: uuid, sourceHost: from, destinationHost: to, flags, parallelConnections: CHANNELS };
    const t0 = performance.now();
    const r = await (await startMigration(env.client, uuid, input)).result();
    const wallMs = performance.now() - t0;
    vmHost = to;
    vmRam = r.destination.memoryBackingFile!;
    return { wallMs, qemuMs: r.stats.totalTimeMs ?? 0, downtimeMs: r.measuredDowntimeMs ?? NaN, channels: r.parallelConnections };
  }

  say(
    `${MIB} MiB guest, ${Math.round(FILL / 1048576)} MiB random RAM, multifd ${CHANNELS} channels, ${PAIRS} rounds, interleaved raw/vmferry, clear and TLS; warming up`,
  );
  for (const m of MODES) {
    await rawRun(m);
    const w = await vmRun(m);
    if (w.channels !== CHANNELS) throw new Error(`vmferry's destination reported ${w.channels} multifd channels, not ${CHANNELS}`);
  }
  const raw: Record<Mode, { wallMs: number; downtimeMs: number }[]> = { clear: [], tls: [] };
  const vm: Record<Mode, { wallMs: number; qemuMs: number; downtimeMs: number }[]> = { clear: [], tls: [] };
  for (let i = 0; i < PAIRS; i++) {
    for (const m of MODES) {
      raw[m].push(await rawRun(m));
      vm[m].push(await vmRun(m));
    }
    say(
      `round ${i + 1}: ` +
        MODES.map((m) => `${m}: raw ${raw[m][i]!.wallMs.toFixed(0)} ms, vmferry ${vm[m][i]!.wallMs.toFixed(0)} ms (QEMU ${vm[m][i]!.qemuMs} ms)`).join('; '),
    );
  }
  for (const m of MODES) {
    const r = median(raw[m].map((x) => x.wallMs));
    const v = median(vm[m].map((x) => x.wallMs));
    say(
      `${m} multifd x${CHANNELS}: raw median ${r.toFixed(0)} ms, vmferry median ${v.toFixed(0)} ms, ratio vmferry/raw ${(v / r).toFixed(2)}   (target <= 1.05)`,
    );
    say(
      `${m} downtime STOP->RESUME, median: raw ${median(raw[m].map((x) => x.downtimeMs)).toFixed(0)} ms, vmferry ${median(vm[m].map((x) => x.downtimeMs)).toFixed(0)} ms`,
    );
  }
} finally {
  if (vmHost !== undefined) {
    await env.op(vmHost, { op: 'destroy', name: 'benchmfdguest' }).catch(() => undefined);
    await env.op(vmHost, { op: 'undefine', name: 'benchmfdguest' }).catch(() => undefined);
  }
  await env.stop();
}
process.exit(0);
