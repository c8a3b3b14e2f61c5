// The Linux test guest (root: a bridge and taps), vmferry against raw QEMU in one run:
//   boot:    define + start through the workflows until the guest's first counter line
//            reaches a client, against a raw QEMU started by hand from the command line
//            vmferry builds for the same definition (host-model expanded from the same
//            probe), cont, until its first counter line; interleaved, --boots N each.
//   pause:   the longest gap a client streaming the counter (a line every 10 ms) sees across
//            a live migration: vmferry v3 direct and tunnelled against raw QEMU migrated by
//            hand over QMP (destination with -incoming defer on a tap of its own,
//            migrate-incoming, migrate at unlimited bandwidth, cont), the guest dirtying
//            16 MiB at 8 MiB/s; interleaved rounds (raw, direct, tunnelled), --pairs N;
//            median and worst of each, ratio of medians (target: vmferry at most 1.2x raw).
// Both guests run at once on one bridge in this namespace (own MAC and address each); the
// client reads from here. The host workers run here too, so both name the same bridge.
// Usage: node --import tsx bench/linux-guest.ts [--boots N] [--pairs N]   (BENCH_PROFILE=1 prints each vmferry run's step timeline)
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrateFlag, MigrateInput } from '../src/common/migration-types.js';
import { parseDomainXml } from '../src/domain/index.js';
import { freePort } from '../src/local/free-port.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';
import { expandHostModelFromProbe } from '../src/qemu/cpu-expansion.js';
import { cachedProbe, type AccelProbe } from '../src/qemu/probe.js';
import type { DomainDef } from '../src/domain/domain-model.js';
import { setUpBridge } from '../scripts/demo-network.js';
import { connectCounter, guestCmdline, linuxGuest, linuxGuestXml, waitForSerial, type CounterClient } from '../test/helpers/linux-guest.js';
import { makeCa, makeHostCert, tunnelEnv } from '../test/helpers/tunnel-certs.js';
import { arg, BenchEnv, median, printTimeline, say, startMigration, type RawQemu } from './common.js';

const BOOTS = arg('boots', 3);
const PAIRS = arg('pairs', 5);
if (process.getuid?.() !== 0) {
  // Not a failure of `npm run bench` as a whole: the other benches run unprivileged.
  console.log('[bench] linux-guest skipped: it needs root (it makes a bridge and taps)');
  process.exit(0);
}
const guest = linuxGuest();
const n = process.pid % 250;
const hex = (x: number): string => (x & 0xff).toString(16).padStart(2, '0');
const BRIDGE = `vmfbl${process.pid % 100000}`;
const HOSTS = ['blg-a', 'blg-b'] as const;

interface Side {
  name: string;
  uuid: string;
  mac: string;
  ip: string;
  serialLog: string;
}

const env = await BenchEnv.create('vmf-bench-lg');
let teardownBridge: (() => void) | undefined;
const vm: Side = { name: 'lgbench', uuid: randomUUID(), mac: '52:54:00:be:4c:02', ip: `10.238.${n}.2`, serialLog: join(env.root, 'vm-serial.log') };
const raw: Side = { name: 'lgbenchraw', uuid: randomUUID(), mac: '52:54:00:be:4c:03', ip: `10.238.${n}.3`, serialLog: join(env.root, 'raw-serial.log') };

function domainXml(s: Side): string {
  return linuxGuestXml({
    name: s.name,
    uuid: s.uuid,
    memoryMiB: 256,
    cmdline: guestCmdline({ ip: `${s.ip}/24`, intervalMs: 10, dirtyMib: 16, dirtyRateMibS: 8 }),
    serialLog: s.serialLog,
    nic: { mac: s.mac, bridge: BRIDGE },
  });
}

// ---- raw QEMU: taps made here, the command line vmferry builds for the same definition ----
const QEMU = '/usr/bin/qemu-system-x86_64';
let facts: AccelProbe;
let rawDef: DomainDef;
let tapSeq = 0;
const taps = new Set<string>();
function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}
function makeTap(): string {
  const tap = `vfbl${process.pid % 10000}t${tapSeq++}`;
  ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  taps.add(tap);
  ip(['link', 'set', 'dev', tap, 'master', BRIDGE, 'up']);
  return tap;
}
function dropTap(tap: string): void {
  spawnSync('ip', ['link', 'del', 'dev', tap]);
  taps.delete(tap);
}
interface RawGuest {
  q: RawQemu;
  tap: string;
}
async function rawLaunch(incoming: boolean): Promise<RawGuest> {
  const tap = makeTap();
  const qmpSocket = join(env.root, `raw-${tapSeq}.qmp`);
  const args = buildQemuArgs(rawDef, { qmpSocket, taps: [tap], cpuFacts: facts, extra: incoming ? ['-incoming', 'defer'] : [] });
  return { q: await env.rawLaunch(args, qmpSocket), tap };
}
async function rawStop(g: RawGuest): Promise<void> {
  await env.rawKill(g.q);
  dropTap(g.tap);
}

/** Boot to the first counter line: `start` runs from t0; then the ready marker, a client, its first line. */
async function bootToCounter(s: Side, start: () => Promise<void>): Promise<{ ms: number; client: CounterClient }> {
  writeFileSync(s.serialLog, '');
  const t0 = Date.now();
  await start();
  const ready = await waitForSerial(s.serialLog, /^VMFERRY-GUEST-(READY|FAILED).*$/m, 180_000);
  if (/VMFERRY-GUEST-FAILED/.test(ready)) throw new Error(`${s.name}: ${ready.slice(-500)}`);
  const client = connectCounter([], s.ip);
  const first = await client.next(30_000);
  return { ms: first.at - t0, client };
}

let rawGuest: RawGuest | undefined;
async function rawBoot(): Promise<{ ms: number; client: CounterClient }> {
  return await bootToCounter(raw, async () => {
    rawGuest = await rawLaunch(false);
    await rawGuest.q.qmp.execute('cont');
  });
}
async function vmBoot(): Promise<{ ms: number; client: CounterClient }> {
  return await bootToCounter(vm, async () => {
    await env.op(HOSTS[0], { op: 'define', xml: domainXml(vm) });
    await env.op(HOSTS[0], { op: 'start', name: vm.name });
  });
}

/** Longest gap between lines from just before `before` to the end, after 100 more lines from the destination. */
async function pauseAfter(client: CounterClient, before: number): Promise<number> {
  const last = client.samples.at(-1)!.seq;
  await client.waitForSeq(last + 100, 60_000);
  const during = client.samples.slice(Math.max(0, before - 1));
  let pause = 0;
  for (let i = 1; i < during.length; i++) pause = Math.max(pause, during[i]!.at - during[i - 1]!.at);
  return pause;
}

async function rawMigrate(client: CounterClient): Promise<number> {
  const before = client.samples.length;
  const src = rawGuest!;
  const dest = await rawLaunch(true);
  const port = await freePort();
  const caps = { capabilities: [{ capability: 'events', state: true }] };
  await dest.q.qmp.execute('migrate-set-capabilities', caps);
  await dest.q.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
  await src.q.qmp.execute('migrate-set-capabilities', caps);
  // QEMU's default is 32 MiB/s; libvirt (and vmferry) migrate unlimited.
  await src.q.qmp.execute('migrate-set-parameters', { 'max-bandwidth': Number.MAX_SAFE_INTEGER });
  const done = dest.q.qmp.waitForEvent('MIGRATION', { timeoutMs: 120_000, predicate: (e) => e.data?.status === 'completed' || e.data?.status === 'failed' });
  await src.q.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
  if ((await done).data?.status !== 'completed') throw new Error('raw migration failed');
  await dest.q.qmp.execute('cont');
  rawGuest = dest;
  await rawStop(src);
  return await pauseAfter(client, before);
}

let vmHost: string = HOSTS[0];
async function vmMigrate(client: CounterClient, mode: 'direct' | 'tunnelled'): Promise<number> {
  const before = client.samples.length;
  const to = vmHost === HOSTS[0] ? HOSTS[1] : HOSTS[0];
  const flags: MigrateFlag[] = ['live', 'persist-dest', 'undefine-source', ...(mode === 'tunnelled' ? (['tunnelled'] as const) : [])];
  const input: MigrateInput = { domain: vm.name, domainUuid: vm.uuid, sourceHost: vmHost, destinationHost: to, flags };
  const handle = await startMigration(env.client, vm.uuid, input);
  const r = await handle.result();
  await printTimeline(handle);
  vmHost = to;
  vmDowntimes[mode].push(r.measuredDowntimeMs ?? NaN);
  return await pauseAfter(client, before);
}
/** STOP on the source to RESUME on the destination, as vmferry measured it (the Perform -> Finish hop is inside). */
const vmDowntimes = { direct: [] as number[], tunnelled: [] as number[] };

const clients: CounterClient[] = [];
const fmt = (xs: number[]): string => `median ${median(xs).toFixed(0)} ms, worst ${Math.max(...xs).toFixed(0)} ms`;
try {
  teardownBridge = setUpBridge(BRIDGE, `02:76:6d:62:${hex(process.pid >> 8)}:${hex(process.pid)}`, `10.238.${n}.1`, 24);
  const tcg = (await cachedProbe(QEMU, env.root)).accels.tcg;
  if (!tcg) throw new Error('no TCG in the QEMU probe');
  facts = tcg;
  rawDef = expandHostModelFromProbe(parseDomainXml(domainXml(raw)), facts, 'the bench');
  const certDir = join(env.root, 'certs');
  mkdirSync(certDir);
  const ca = makeCa(certDir, 'bench-ca');
  const hostExtra = async (name: string, portMin: number): Promise<Record<string, string>> => ({
    VMFERRY_HOST_MIGRATION_PORT_MIN: String(portMin),
    VMFERRY_HOST_MIGRATION_PORT_MAX: String(portMin + 7),
    ...tunnelEnv(`127.0.0.1:${await freePort()}`, makeHostCert(certDir, ca, name)),
  });
  await Promise.all([env.startHost(HOSTS[0], await hostExtra(HOSTS[0], 49560)), env.startHost(HOSTS[1], await hostExtra(HOSTS[1], 49570)), env.startControl()]);
  say(`Linux ${guest.kernelRelease} guest, 256 MiB, TCG, bridge ${BRIDGE}; ${BOOTS} boots each, interleaved raw/vmferry`);

  const rawBoots: number[] = [];
  const vmBoots: number[] = [];
  let rawClient: CounterClient | undefined;
  let vmClient: CounterClient | undefined;
  for (let i = 0; i < BOOTS; i++) {
    const r = await rawBoot();
    rawBoots.push(r.ms);
    const v = await vmBoot();
    vmBoots.push(v.ms);
    say(`boot ${i + 1}: raw ${(r.ms / 1000).toFixed(2)} s, vmferry ${(v.ms / 1000).toFixed(2)} s to the first counter line`);
    if (i < BOOTS - 1) {
      await r.client.close();
      await v.client.close();
      await rawStop(rawGuest!);
      await env.op(HOSTS[0], { op: 'destroy', name: vm.name });
      await env.op(HOSTS[0], { op: 'undefine', name: vm.name });
    } else {
      rawClient = r.client;
      vmClient = v.client;
      clients.push(r.client, v.client);
    }
  }

  say(`live migration while a client streams the counter (a line every 10 ms): ${PAIRS} rounds of raw, vmferry direct, vmferry tunnelled`);
  const rawPauses: number[] = [];
  const direct: number[] = [];
  const tunnelled: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    rawPauses.push(await rawMigrate(rawClient!));
    direct.push(await vmMigrate(vmClient!, 'direct'));
    tunnelled.push(await vmMigrate(vmClient!, 'tunnelled'));
    say(
      `round ${i + 1}: longest pause raw ${rawPauses[i]!.toFixed(0)} ms, vmferry direct ${direct[i]!.toFixed(0)} ms, tunnelled ${tunnelled[i]!.toFixed(0)} ms`,
    );
  }
  for (const [what, c] of [
    ['raw', rawClient!],
    ['vmferry', vmClient!],
  ] as const) {
    const r = c.report();
    const open = (await Promise.race([c.ended, Promise.resolve('open')])) === 'open';
    say(
      `${what} stream: ${r.count} lines, seq ${r.firstSeq}..${r.lastSeq}, ${r.gaps.length} gaps, ${open ? 'one connection throughout' : 'the connection ENDED'}`,
    );
  }
  say(
    `boot to first counter, median: raw ${(median(rawBoots) / 1000).toFixed(2)} s, vmferry ${(median(vmBoots) / 1000).toFixed(2)} s, ratio ${(median(vmBoots) / median(rawBoots)).toFixed(2)}`,
  );
  say(`longest TCP pause, raw QEMU:        ${fmt(rawPauses)}`);
  say(`longest TCP pause, vmferry direct:    ${fmt(direct)}; ratio of medians ${(median(direct) / median(rawPauses)).toFixed(2)} (target <= 1.2)`);
  say(`longest TCP pause, vmferry tunnelled: ${fmt(tunnelled)}; ratio of medians ${(median(tunnelled) / median(rawPauses)).toFixed(2)}`);
  say(
    `vmferry STOP -> RESUME (source STOP to destination RESUME, Finish resumes the destination): direct ${fmt(vmDowntimes.direct)}, tunnelled ${fmt(vmDowntimes.tunnelled)}`,
  );
} finally {
  for (const c of clients) await c.close();
  await env.op(vmHost, { op: 'destroy', name: vm.name }).catch(() => undefined);
  await env.op(vmHost, { op: 'undefine', name: vm.name }).catch(() => undefined);
  await env.stop();
  for (const t of [...taps]) dropTap(t);
  teardownBridge?.();
}
process.exit(0);
