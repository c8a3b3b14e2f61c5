// Tunnelled against direct live migration, both through vmferry's `migrate`
// workflow, interleaved (direct, tunnelled, direct, tunnelled, ...) in one run so
// both see the same machine state; prints the ratio of medians of wall times
// and, for the tunnelled runs, each host worker's peak resident memory above
// its idle level (sampled from /proc/<pid>/status every 20 ms). One guest
// ping-pongs between two host workers on loopback; its RAM (above 16 MiB) is
// refilled with random bytes before every run. The tunnel is TLS 1.3 with
// certificates made here by openssl.
// Usage: node --import tsx bench/migrate-tunnel.ts [--pairs N] [--mib M]
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainOperationResult } from '../src/common/domain-types.js';
import type { MigrateFlag, MigrateInput } from '../src/common/migration-types.js';
import { freePort } from '../src/local/free-port.js';
import { fillRandom } from '../test/helpers/guest-memory.js';
import { guestXml } from '../test/helpers/guest-xml.js';
import { arg, BenchEnv, median, say, startMigration } from './common.js';
import { makeCa, makeHostCert, tunnelEnv } from '../test/helpers/tunnel-certs.js';

const PAIRS = arg('pairs', 3);
const MIB = arg('mib', 1024);
const FILL = (MIB - 16) * 1024 * 1024;
/** VmRSS of a process, bytes. */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
/** CPU time (user + system) a process has used, ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
}
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

const env = await BenchEnv.create('vmf-bench-tun');
const certDir = join(env.root, 'certs');
mkdirSync(certDir);
const ca = makeCa(certDir, 'bench-ca');
const HOSTS = ['bench-ta', 'bench-tb'] as const;
const hostExtra = async (name: string, portMin: number): Promise<Record<string, string>> => ({
  VMFERRY_HOST_MIGRATION_PORT_MIN: String(portMin),
  VMFERRY_HOST_MIGRATION_PORT_MAX: String(portMin + 7),
  ...tunnelEnv(`127.0.0.1:${await freePort()}`, makeHostCert(certDir, ca, name)),
});
// A failed start must not leave the dev server, workers or files behind.
const [wa, wb] = await Promise.all([env.startHost(HOSTS[0], await hostExtra(HOSTS[0], 49520)), env.startHost(HOSTS[1], await hostExtra(HOSTS[1], 49530)), env.startControl()]).catch(async (err: unknown) => {
  await env.stop();
  throw err;
});
const pidOf: Record<string, number> = { [HOSTS[0]]: wa.pid, [HOSTS[1]]: wb.pid };
const { client } = env;
const op = (host: string, operation: Record<string, unknown>): Promise<DomainOperationResult> => env.op(host, operation);
const uuid = randomUUID();
const GUEST = 'benchtunguest';
await op(HOSTS[0], { op: 'define', xml: guestXml({ name: GUEST, uuid, memoryMiB: MIB }) });
let vmHost: string = HOSTS[0];
let vmRam = ((await op(HOSTS[0], { op: 'start', name: GUEST })) as { domain: { memoryBackingFile: string } }).domain.memoryBackingFile;

interface Run {
  wallMs: number;
  qemuMs: number;
  /** Peak VmRSS above the level just before the run, per host (source, destination). */
  peakAbove: { source: number; destination: number };
  /** CPU ms each host worker used during the run. */
  cpu: { source: number; destination: number };
}
async function run(tunnelled: boolean): Promise<Run> {
  fillRandom(vmRam, FILL);
  const from = vmHost;
  const to = vmHost === HOSTS[0] ? HOSTS[1] : HOSTS[0];
  const flags: MigrateFlag[] = ['live', 'persist-dest', 'undefine-source', ...(tunnelled ? (['tunnelled'] as const) : [])];
  const input: MigrateInput = { domain: GUEST, domainUuid: uuid, sourceHost: from, destinationHost: to, flags };
  const idle = { source: rss(pidOf[from]!), destination: rss(pidOf[to]!) };
  const peak = { ...idle };
  const cpu0 = { source: cpuMs(pidOf[from]!), destination: cpuMs(pidOf[to]!) };
  const sampler = setInterval(() => {
    peak.source = Math.max(peak.source, rss(pidOf[from]!));
    peak.destination = Math.max(peak.destination, rss(pidOf[to]!));
  }, 20);
  const t0 = performance.now();
  try {
    const handle = await startMigration(client, uuid, input);
    const r = await handle.result();
    const wallMs = performance.now() - t0;
    vmHost = to;
    vmRam = r.destination.memoryBackingFile!;
    const cpu = { source: cpuMs(pidOf[from]!) - cpu0.source, destination: cpuMs(pidOf[to]!) - cpu0.destination };
    return { wallMs, qemuMs: r.stats.totalTimeMs ?? 0, peakAbove: { source: peak.source - idle.source, destination: peak.destination - idle.destination }, cpu };
  } finally {
    clearInterval(sampler);
  }
}

try {
  say(`${MIB} MiB guest, ${Math.round(FILL / 1048576)} MiB random RAM, ${PAIRS} pairs, interleaved direct/tunnelled (TLS 1.3); warming up`);
  await run(false);
  await run(true);
  const direct: Run[] = [];
  const tunnel: Run[] = [];
  for (let i = 0; i < PAIRS; i++) {
    direct.push(await run(false));
    tunnel.push(await run(true));
    const t = tunnel[i]!;
    say(
      `pair ${i + 1}: direct ${direct[i]!.wallMs.toFixed(0)} ms (QEMU ${direct[i]!.qemuMs} ms), tunnelled ${t.wallMs.toFixed(0)} ms (QEMU ${t.qemuMs} ms); ` +
        `tunnelled peak RSS above idle: source worker ${mb(t.peakAbove.source)}, destination worker ${mb(t.peakAbove.destination)}; ` +
        `worker CPU direct ${direct[i]!.cpu.source}/${direct[i]!.cpu.destination} ms, tunnelled ${t.cpu.source}/${t.cpu.destination} ms (source/destination)`,
    );
  }
  const dMed = median(direct.map((r) => r.wallMs));
  const tMed = median(tunnel.map((r) => r.wallMs));
  say(`direct median:                   ${dMed.toFixed(0)} ms`);
  say(`tunnelled median:                ${tMed.toFixed(0)} ms`);
  say(`ratio tunnelled/direct (medians): ${(tMed / dMed).toFixed(2)}   (target <= 1.3)`);
  say(`QEMU total-time median: direct ${median(direct.map((r) => r.qemuMs))} ms, tunnelled ${median(tunnel.map((r) => r.qemuMs))} ms`);
  say(
    `tunnelled peak RSS above idle (max over runs): source worker ${mb(Math.max(...tunnel.map((r) => r.peakAbove.source)))}, ` +
      `destination worker ${mb(Math.max(...tunnel.map((r) => r.peakAbove.destination)))}   (target < 150 MB)`,
  );
  say(`direct peak RSS above idle (max over runs, for comparison): source ${mb(Math.max(...direct.map((r) => r.peakAbove.source)))}, destination ${mb(Math.max(...direct.map((r) => r.peakAbove.destination)))}`);
} finally {
  await op(vmHost, { op: 'destroy', name: GUEST }).catch(() => undefined);
  await op(vmHost, { op: 'undefine', name: GUEST }).catch(() => undefined);
  await env.stop();
}
process.exit(0);
