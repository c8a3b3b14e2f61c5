// Live migration with a local disk (libvirt's --copy-storage-all over NBD), root only:
// the Linux test guest with 1 GiB of RAM and a 2 GiB qcow2 filled with random data on
// storage the hosts do not share, between two hosts in network namespaces (a veth link
// between them), three ways interleaved in one run (--rounds N, each round the three in
// rotating order, every guest migrating back and forth):
//   raw      two QEMUs the bench starts, the NBD mirror and the migration by hand over QMP
//            (storage-raw.ts), vmferry's default parameters;
//   vmferry  a v3 migration through the workflow client (the `migrate` workflow, as the CLI
//            starts it) between host workers running in the namespaces;
//   libvirt  `virsh migrate --live --copy-storage-all` between two libvirtd in the
//            namespaces (storage-libvirt.ts).
// Per tool: total time (each round, median), downtime (STOP to RESUME), bytes that crossed
// the link; ratios of medians vmferry/raw (target <= 1.1) and vmferry/libvirt (target < 1).
// Usage: node --import tsx bench/storage-migrate.ts [--rounds N] [--disk-mib N] [--only raw,vmferry,libvirt]
//        (BENCH_PROFILE=1: vmferry's step timeline and its host workers' log lines)
import { execFile, spawnSync } from 'node:child_process';
import { randomFillSync, randomUUID } from 'node:crypto';
import { chownSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { MigrateInput, MigrateResult } from '../src/common/migration-types.js';
import { parseDomainXml } from '../src/domain/index.js';
import { startWorkerProcess, type WorkerProcess } from '../src/local/worker-process.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';
import { expandHostModelFromProbe } from '../src/qemu/cpu-expansion.js';
import { cachedProbe, type AccelProbe } from '../src/qemu/probe.js';
import { guestCmdline, linuxGuest, linuxGuestXml, waitForSerial } from '../test/helpers/linux-guest.js';
import { createNetnsPair, type NetnsPair } from '../test/helpers/netns.js';
import { forwardTcp, type TcpForward } from '../test/helpers/tcp-forward.js';
import { arg, BenchEnv, median, printTimeline, say, startMigration } from './common.js';
import { downtimeOf, LibvirtPair } from './storage-libvirt.js';
import { rawStorageMigrate, type RawGuest, type RawSide } from './storage-raw.js';

const ROUNDS = arg('rounds', 3);
const DISK_MIB = arg('disk-mib', 2048);
const MEMORY_MIB = 1024;
/** `--only raw,vmferry`: a subset of the tools (e.g. to profile one); default all three. */
const onlyAt = process.argv.indexOf('--only');
const ONLY = onlyAt === -1 ? undefined : new Set(process.argv[onlyAt + 1]!.split(','));
const uses = (tool: string): boolean => !ONLY || ONLY.has(tool);
const CLUSTER = 65536;
if (process.getuid?.() !== 0) {
  console.log('[bench] storage skipped: it needs root (network namespaces)');
  process.exit(0);
}
const run = promisify(execFile);
const guest = linuxGuest();
const TOOLS = ['raw', 'vmferry', 'libvirt'] as const;
type Tool = (typeof TOOLS)[number];
interface Sample {
  ms: number;
  downtimeMs?: number;
  bytes: number;
}
const samples: Record<Tool, Sample[]> = { raw: [], vmferry: [], libvirt: [] };

const env = await BenchEnv.create('vmf-bench-st');
const images = mkdtempSync('/tmp/vmf-bench-st-img-');
const dirs: string[] = [join(images, 'a'), join(images, 'b')];
const HOSTS: string[] = ['stb-a', 'stb-b'];
let pair: NetnsPair | undefined;
let relay: TcpForward | undefined;
let lv: LibvirtPair | undefined;
let libvirtWhyNot: string | undefined;
let facts: AccelProbe;

const VM = { name: 'stbench', uuid: randomUUID(), serialLog: join(env.root, 'vm-serial.log') };
const RAW = { name: 'stbenchraw', uuid: randomUUID(), serialLog: join(env.root, 'raw-serial.log') };
const LV = { name: 'stbenchlv', uuid: randomUUID() };

function xmlFor(g: { name: string; uuid: string; serialLog: string }, disk: string): string {
  return linuxGuestXml({
    name: g.name,
    uuid: g.uuid,
    memoryMiB: MEMORY_MIB,
    cmdline: guestCmdline(),
    serialLog: g.serialLog,
    disk: { path: disk, format: 'qcow2' },
  });
}

/** Bytes that crossed the migration link so far, both ways (counted at b's end). */
function linkBytes(): number {
  const r = spawnSync('ip', ['-n', pair!.b, '-s', '-j', 'link', 'show', 'dev', pair!.migIfB], { encoding: 'utf8' });
  const s = (JSON.parse(r.stdout) as { stats64: { rx: { bytes: number }; tx: { bytes: number } } }[])[0]!.stats64;
  return s.rx.bytes + s.tx.bytes;
}

/** 2 GiB of random data as qcow2 at each starting path (one random source, converted per tool). */
async function makeDisks(paths: string[]): Promise<void> {
  const base = join(images, 'random.raw');
  const fd = openSync(base, 'w');
  const chunk = Buffer.alloc(16 * 1024 * 1024);
  for (let i = 0; i < DISK_MIB / 16; i++) writeSync(fd, randomFillSync(chunk));
  closeSync(fd);
  for (const p of paths) await run('qemu-img', ['convert', '-O', 'qcow2', '-o', `cluster_size=${CLUSTER}`, base, p]);
  rmSync(base);
}

async function waitBooted(log: string, what: string): Promise<void> {
  const ready = await waitForSerial(log, /^VMFERRY-GUEST-(READY|FAILED).*$/m, 300_000);
  if (/VMFERRY-GUEST-FAILED/.test(ready)) throw new Error(`${what}: ${ready.slice(-500)}`);
}

// ---- raw ----
let sides: RawSide[];
let rawGuest: RawGuest;
let rawAt = 0;
let qmpSeq = 0;
function rawArgs(image: string, qmpSocket: string, incoming: boolean): string[] {
  const def = expandHostModelFromProbe(parseDomainXml(xmlFor(RAW, image)), facts, 'the bench');
  return buildQemuArgs(def, { qmpSocket, cpuFacts: facts, extra: incoming ? ['-incoming', 'defer'] : [] });
}
async function rawMigrate(): Promise<Sample> {
  const to = 1 - rawAt;
  const before = linkBytes();
  const out = await rawStorageMigrate({
    env,
    src: rawGuest,
    dest: sides[to]!,
    destImage: join(dirs[to]!, 'raw.qcow2'),
    commandLine: (image, sock) => rawArgs(image, sock, true),
    qmpSocket: join(env.root, `raw-${qmpSeq++}.qmp`),
    sizeBytes: DISK_MIB * 1024 * 1024,
    clusterBytes: CLUSTER,
    migrationPort: 49300,
    nbdPort: 49301,
  });
  const bytes = linkBytes() - before;
  if (process.env.BENCH_PROFILE) {
    const p = out.phases;
    console.log(`  raw: export served ${p.prepared} ms, mirror ready ${p.mirrorReady} ms, stream completed ${p.streamCompleted} ms, done ${out.ms} ms`);
  }
  rmSync(rawGuest.image);
  rawGuest = out.guest;
  rawAt = to;
  return { ms: out.ms, downtimeMs: out.downtimeMs, bytes };
}

// ---- vmferry ----
let vmAt = 0;
let hostWorkers: WorkerProcess[] = [];
/** BENCH_PROFILE=1: what the host workers logged during a migration, ms from its start. */
function printWorkerLogs(from: number, to: number): void {
  if (!process.env.BENCH_PROFILE) return;
  for (const [i, w] of hostWorkers.entries())
    for (const rec of w.logs) {
      const t = Number(rec.time);
      if (t >= from && t <= to) console.log(`  ${String(t - from).padStart(5)} ms  ${HOSTS[i]!.padEnd(16)} ${String(rec.msg)}`);
    }
}
async function vmMigrate(): Promise<Sample> {
  const to = 1 - vmAt;
  const dx = await env.op(HOSTS[vmAt]!, { op: 'dumpxml', name: VM.name, migratable: true });
  if (!('xml' in dx)) throw new Error(`dumpxml answered ${JSON.stringify(dx)}`);
  const destinationXml = dx.xml.replace(/<source file='[^']*'/, `<source file='${join(dirs[to]!, 'vmf.qcow2')}'`);
  const input: MigrateInput = {
    domain: VM.name,
    domainUuid: VM.uuid,
    sourceHost: HOSTS[vmAt]!,
    destinationHost: HOSTS[to]!,
    flags: ['live', 'copy-storage-all', 'persist-dest', 'undefine-source'],
    destinationXml,
  };
  const before = linkBytes();
  const t0 = Date.now();
  const handle = await startMigration(env.client, VM.uuid, input);
  const r: MigrateResult = await handle.result();
  const ms = Date.now() - t0;
  const bytes = linkBytes() - before;
  await printTimeline(handle);
  printWorkerLogs(t0, t0 + ms);
  rmSync(join(dirs[vmAt]!, 'vmf.qcow2'));
  vmAt = to;
  return { ms, bytes, ...(r.measuredDowntimeMs !== undefined ? { downtimeMs: r.measuredDowntimeMs } : {}) };
}

// ---- libvirt ----
let lvAt = 0;
async function lvMigrate(): Promise<Sample> {
  const to = 1 - lvAt;
  const src = lv!.hosts[lvAt]!;
  const dst = lv!.hosts[to]!;
  const xml = src.daemon.virsh('dumpxml', '--migratable', LV.name).replace(/<source file='[^']*'/, `<source file='${join(dst.images, 'lv.qcow2')}'`);
  const file = lv!.writeShared('dest.xml', xml);
  dst.daemon.virsh('pool-refresh', 'bench');
  const before = linkBytes();
  const t0 = Date.now();
  const r = await src.daemon.virshAsync(
    ...['migrate', '--live', '--copy-storage-all', '--persistent', '--undefinesource', '--xml', file, LV.name],
    ...[`qemu+unix:///session?socket=${dst.daemon.socket}`, `tcp://${dst.addr}`],
  );
  const ms = Date.now() - t0;
  const bytes = linkBytes() - before;
  if (r.code !== 0) throw new Error(`virsh migrate --copy-storage-all failed (exit ${r.code}): ${r.stderr.trim()}`);
  const downtimeMs = downtimeOf(dst.daemon.virsh('domjobinfo', '--completed', LV.name));
  rmSync(join(src.images, 'lv.qcow2'));
  lvAt = to;
  return { ms, bytes, ...(downtimeMs !== undefined ? { downtimeMs } : {}) };
}

const s1 = (ms: number): string => (ms / 1000).toFixed(1);
const mib = (b: number): string => (b / 1024 / 1024).toFixed(0);
const load = (): string => loadavg()[0]!.toFixed(2);
const loads: string[] = [];
try {
  pair = createNetnsPair();
  sides = [
    { ns: pair.a, addr: pair.addrA },
    { ns: pair.b, addr: pair.addrB },
  ];
  const [host, port] = env.server.address.split(':') as [string, string];
  relay = await forwardTcp([pair.mgmtRootA, pair.mgmtRootB], { host, port: Number(port) });
  const tcg = (await cachedProbe('/usr/bin/qemu-system-x86_64', env.root)).accels.tcg;
  if (!tcg) throw new Error('no TCG in the QEMU probe');
  facts = tcg;
  for (const d of dirs) mkdirSync(d);
  if (!uses('libvirt')) libvirtWhyNot = 'left out by --only';
  else
    try {
      lv = await LibvirtPair.start(
        [
          [pair.a, pair.addrA],
          [pair.b, pair.addrB],
        ],
        guest.kernel,
        guest.initrd,
      );
    } catch (err) {
      libvirtWhyNot = `the libvirt daemons did not start: ${(err as Error).message}`;
    }
  say(`making ${DISK_MIB} MiB random disks (qcow2, cluster ${CLUSTER / 1024} KiB)`);
  const firstImages = [uses('raw') && join(dirs[0]!, 'raw.qcow2'), uses('vmferry') && join(dirs[0]!, 'vmf.qcow2'), lv && join(lv.hosts[0]!.images, 'lv.qcow2')];
  await makeDisks(firstImages.filter((p): p is string => typeof p === 'string'));
  const hostEnv = (i: number): Record<string, string> => ({
    ...env.hostEnv(HOSTS[i]!),
    TEMPORAL_ADDRESS: `${i === 0 ? pair!.mgmtRootA : pair!.mgmtRootB}:${relay!.port}`,
    VMFERRY_HOST_MIGRATION_ADDRESS: sides[i]!.addr,
  });
  const workers = await Promise.all([
    ...[0, 1].map((i) => startWorkerProcess('host', hostEnv(i), 'host worker ready', { commandPrefix: pair!.prefix(sides[i]!.ns) })),
    env.startControl(),
  ]);
  hostWorkers = workers.slice(0, 2);
  env.workers.push(...hostWorkers);

  say(`Linux ${guest.kernelRelease} guest, ${MEMORY_MIB} MiB RAM, ${DISK_MIB} MiB random qcow2 disk, TCG; hosts in namespaces ${pair.a} / ${pair.b}`);
  if (uses('raw')) {
    const rawSock = join(env.root, `raw-${qmpSeq++}.qmp`);
    rawGuest = {
      q: await env.rawLaunch(rawArgs(join(dirs[0]!, 'raw.qcow2'), rawSock, false), rawSock, pair.prefix(pair.a)),
      side: sides[0]!,
      image: join(dirs[0]!, 'raw.qcow2'),
    };
    await rawGuest.q.qmp.execute('cont');
    await waitBooted(RAW.serialLog, 'raw guest');
  }
  if (uses('vmferry')) {
    await env.op(HOSTS[0]!, { op: 'define', xml: xmlFor(VM, join(dirs[0]!, 'vmf.qcow2')) });
    await env.op(HOSTS[0]!, { op: 'start', name: VM.name });
    await waitBooted(VM.serialLog, 'vmferry guest');
  }
  if (lv) {
    const h = lv.hosts[0]!;
    chownSync(join(h.images, 'lv.qcow2'), h.daemon.user.uid, h.daemon.user.gid);
    const xml = xmlFor({ ...LV, serialLog: lv.serialLog }, join(h.images, 'lv.qcow2'))
      .replace(guest.kernel, lv.kernel)
      .replace(guest.initrd, lv.initrd);
    try {
      h.daemon.virsh('define', lv.writeShared('domain.xml', xml));
      h.daemon.virsh('start', LV.name);
      await waitBooted(lv.serialLog, 'libvirt guest');
    } catch (err) {
      libvirtWhyNot = `libvirt could not start the guest: ${(err as Error).message}`;
    }
  }
  say(`all guests booted; ${ROUNDS} rounds, each tool once per round in rotating order (load average ${load()})`);

  const migrate: Record<Tool, () => Promise<Sample>> = { raw: rawMigrate, vmferry: vmMigrate, libvirt: lvMigrate };
  for (let i = 0; i < ROUNDS; i++) {
    const order = [...TOOLS.slice(i % 3), ...TOOLS.slice(0, i % 3)];
    for (const tool of order) {
      if ((tool === 'libvirt' && libvirtWhyNot) || !uses(tool)) continue;
      try {
        const s = await migrate[tool]();
        samples[tool].push(s);
        say(`round ${i + 1} ${tool}: ${s1(s.ms)} s, downtime ${s.downtimeMs?.toFixed(0) ?? '?'} ms, ${mib(s.bytes)} MiB on the link (load ${load()})`);
      } catch (err) {
        if (tool !== 'libvirt') throw err;
        libvirtWhyNot = (err as Error).message;
        say(`libvirt failed: ${libvirtWhyNot}`);
      }
      loads.push(load());
    }
  }

  console.log('');
  console.log(
    `tool     | ${Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}`.padStart(8)).join(' | ')} | median s | downtime ms (median) | MiB on link (median)`,
  );
  for (const tool of TOOLS) {
    const xs = samples[tool];
    if (xs.length === 0) {
      console.log(`${tool.padEnd(8)} | not measured: ${libvirtWhyNot ?? 'no samples'}`);
      continue;
    }
    const dts = xs.map((x) => x.downtimeMs).filter((d): d is number => d !== undefined);
    console.log(
      `${tool.padEnd(8)} | ${xs.map((x) => s1(x.ms).padStart(8)).join(' | ')} | ${s1(median(xs.map((x) => x.ms))).padStart(8)} | ${(dts.length ? median(dts).toFixed(0) : '?').padStart(20)} | ${mib(median(xs.map((x) => x.bytes))).padStart(20)}`,
    );
  }
  const med = (t: Tool): number => median(samples[t].map((x) => x.ms));
  say(`vmferry/raw     total time, ratio of medians: ${(med('vmferry') / med('raw')).toFixed(2)} (target <= 1.1)`);
  if (samples.libvirt.length) say(`vmferry/libvirt total time, ratio of medians: ${(med('vmferry') / med('libvirt')).toFixed(2)} (target < 1)`);
  else say(`vmferry/libvirt: not measured (${libvirtWhyNot})`);
  say(`load average (1 min) after each migration: ${loads.join(' ')}`);
} finally {
  await env.op(HOSTS[vmAt]!, { op: 'destroy', name: VM.name }).catch(() => undefined);
  await env.op(HOSTS[vmAt]!, { op: 'undefine', name: VM.name }).catch(() => undefined);
  await lv?.stop(LV.name);
  await env.stop();
  await relay?.close();
  pair?.destroy();
  rmSync(images, { recursive: true, force: true });
}
process.exit(0);
