// Live migration: vmferry's `migrate` workflow against raw QEMU driven over QMP,
// interleaved (raw, vmferry, raw, vmferry, ...) in one run so both see the same
// machine state; prints the ratio of medians. Each side ping-pongs one guest
// between two QEMUs over tcp loopback, its RAM (above 16 MiB) refilled with
// random bytes before every run.
//   raw:     spawn the destination with -incoming defer, preallocate its RAM (as vmferry's Prepare does, so the
//            baseline is QEMU's best single-stream path, not a weaker one), migrate-incoming, migrate, wait, cont
//   vmferry: workflow start to workflow result (Begin ... Confirm, source killed)
// Usage: node --import tsx bench/migrate.ts [--pairs N] [--mib M]   (BENCH_PROFILE=1 prints each run's step timeline)
import { randomUUID } from 'node:crypto';
import type { QmpEvent } from '../src/qemu/qmp-client.js';
import type { MigrateInput } from '../src/common/migration-types.js';
import { fillRandom } from '../test/helpers/guest-memory.js';
import { guestXml } from '../test/helpers/guest-xml.js';
import { arg, BenchEnv, median, printTimeline, say, startMigration } from './common.js';

const PAIRS = arg('pairs', 5);
const MIB = arg('mib', 256);
const FILL = (MIB - 16) * 1024 * 1024;
const evMs = (ev: QmpEvent): number => ev.timestamp.seconds * 1000 + ev.timestamp.microseconds / 1000;

const env = await BenchEnv.create('vmf-bench');
const rawSpawn = (incoming: boolean) => env.rawSpawn(MIB, incoming);
const rawKill = (q: Awaited<ReturnType<typeof rawSpawn>>) => env.rawKill(q);

// ---- raw QEMU ------------------------------------------------------------
let rawSource = await rawSpawn(false);
await rawSource.qmp.execute('cont');
let rawPort = 49400;
async function rawRun(): Promise<{ wallMs: number; downtimeMs: number }> {
  fillRandom(rawSource.ram, FILL);
  const t0 = performance.now();
  const dest = await rawSpawn(true);
  const port = rawPort++;
  await dest.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  // QEMU faulting in cold destination memory page by page is most of a migration's time here; touched up front it is not.
  await dest.qmp.execute('qom-set', { path: '/objects/pc.ram', property: 'prealloc-threads', value: 2 });
  await dest.qmp.execute('qom-set', { path: '/objects/pc.ram', property: 'prealloc', value: true }, { timeoutMs: 120_000 });
  await dest.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
  const src = rawSource.qmp;
  await src.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  // QEMU's default is 32 MiB/s; libvirt (and vmferry) migrate unlimited.
  await src.execute('migrate-set-parameters', { 'max-bandwidth': Number.MAX_SAFE_INTEGER });
  const stopped = src.waitForEvent('STOP', { timeoutMs: 120_000 });
  const done = dest.qmp.waitForEvent('MIGRATION', { timeoutMs: 120_000, predicate: (e) => e.data?.status === 'completed' || e.data?.status === 'failed' });
  await src.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
  const ev = await done;
  if (ev.data?.status !== 'completed') throw new Error('raw migration failed');
  const resumed = dest.qmp.waitForEvent('RESUME', { timeoutMs: 10_000 });
  await dest.qmp.execute('cont');
  const wallMs = performance.now() - t0;
  const downtimeMs = evMs(await resumed) - evMs(await stopped);
  await rawKill(rawSource);
  rawSource = dest;
  return { wallMs, downtimeMs };
}

// ---- vmferry ---------------------------------------------------------------
const migrationPorts = (portMin: number): Record<string, string> => ({
  VMFERRY_HOST_MIGRATION_PORT_MIN: String(portMin),
  VMFERRY_HOST_MIGRATION_PORT_MAX: String(portMin + 7),
});
await Promise.all([env.startHost('bench-a', migrationPorts(49500)), env.startHost('bench-b', migrationPorts(49510)), env.startControl()]);
const client = env.client;
const op = (host: string, operation: Record<string, unknown>) => env.op(host, operation);
const uuid = randomUUID();
const GUEST = 'benchguest';
await op('bench-a', { op: 'define', xml: guestXml({ name: GUEST, uuid, memoryMiB: MIB }) });
let vmHost = 'bench-a';
let vmRam = ((await op('bench-a', { op: 'start', name: GUEST })) as { domain: { memoryBackingFile: string } }).domain.memoryBackingFile;

interface VmRun {
  wallMs: number;
  qemuMs: number;
  downtimeMs: number;
  qemuDowntimeMs: number;
  events: number;
}
async function vmRun(): Promise<VmRun> {
  fillRandom(vmRam, FILL);
  const to = vmHost === 'bench-a' ? 'bench-b' : 'bench-a';
  const input: MigrateInput = { domain: GUEST, domainUuid: uuid, sourceHost: vmHost, destinationHost: to, flags: ['live', 'persist-dest', 'undefine-source'] };
  const t0 = performance.now();
  const handle = await startMigration(client, uuid, input);
  const r = await handle.result();
  const wallMs = performance.now() - t0;
  const events = ((await handle.fetchHistory()).events ?? []).length;
  await printTimeline(handle);
  vmHost = to;
  vmRam = r.destination.memoryBackingFile!;
  return { wallMs, qemuMs: r.stats.totalTimeMs ?? 0, downtimeMs: r.measuredDowntimeMs ?? NaN, qemuDowntimeMs: r.stats.downtimeMs ?? NaN, events };
}

try {
  say(`${MIB} MiB guest, ${Math.round(FILL / 1048576)} MiB random RAM, ${PAIRS} pairs, interleaved raw/vmferry; warming up`);
  await rawRun();
  await vmRun();
  const raw: { wallMs: number; downtimeMs: number }[] = [];
  const vm: VmRun[] = [];
  for (let i = 0; i < PAIRS; i++) {
    raw.push(await rawRun());
    vm.push(await vmRun());
    say(
      `pair ${i + 1}: raw ${raw[i]!.wallMs.toFixed(0)} ms, vmferry ${vm[i]!.wallMs.toFixed(0)} ms (QEMU ${vm[i]!.qemuMs} ms, ${vm[i]!.events} history events)`,
    );
  }
  const rawMed = median(raw.map((r) => r.wallMs));
  const vmMed = median(vm.map((r) => r.wallMs));
  say(`raw QEMU median:             ${rawMed.toFixed(0)} ms`);
  say(`vmferry median:              ${vmMed.toFixed(0)} ms`);
  say(`ratio vmferry/raw (medians): ${(vmMed / rawMed).toFixed(2)}`);
  say(`fixed overhead (wall - QEMU total-time), median: ${median(vm.map((r) => r.wallMs - r.qemuMs)).toFixed(0)} ms`);
  say(
    `downtime STOP->RESUME, median: raw ${median(raw.map((r) => r.downtimeMs)).toFixed(0)} ms, vmferry ${median(vm.map((r) => r.downtimeMs)).toFixed(0)} ms (QEMU's own figure ${median(vm.map((r) => r.qemuDowntimeMs)).toFixed(0)} ms)`,
  );
  say(`workflow history events, median: ${median(vm.map((r) => r.events))}`);
} finally {
  await op(vmHost, { op: 'destroy', name: GUEST }).catch(() => undefined);
  await op(vmHost, { op: 'undefine', name: GUEST }).catch(() => undefined);
  await env.stop();
}
process.exit(0);
