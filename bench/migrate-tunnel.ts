// Tunnelled against direct live migration, all through vmferry's `migrate`
// workflow, interleaved (direct, direct with QEMU's TLS, tunnelled, ...) in one
// run so all see the same machine state; prints the ratios of medians of wall
// times and, for the tunnelled runs, each host worker's peak resident memory
// above its idle level (sampled from /proc/<pid>/status every 20 ms). One guest
// ping-pongs between two host workers on loopback; its RAM (above 16 MiB) is
// refilled with random bytes before every run. The tunnel's control channel is
// TLS 1.3 between the workers and its data is QEMU's TLS, with certificates
// made here by openssl; the --tls runs use the same certificates.
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
const [wa, wb] = await Promise.all([
  env.startHost(HOSTS[0], await hostExtra(HOSTS[0], 49520)),
  env.startHost(HOSTS[1], await hostExtra(HOSTS[1], 49530)),
  env.startControl(),
]).catch(async (err: unknown) => {
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
type Mode = 'direct' | 'tls' | 'tunnelled';
async function run(mode: Mode): Promise<Run> {
  fillRandom(vmRam, FILL);
  const from = vmHost;
  const to = vmHost === HOSTS[0] ? HOSTS[1] : HOSTS[0];
  const flags: MigrateFlag[] = ['live', 'persist-dest', 'undefine-source', ...(mode === 'direct' ? [] : [mode])];
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
    return {
      wallMs,
      qemuMs: r.stats.totalTimeMs ?? 0,
      peakAbove: { source: peak.source - idle.source, destination: peak.destination - idle.destination },
      cpu,
    };
  } finally {
    clearInterval(sampler);
  }
}

try {
  say(`${MIB} MiB guest, ${Math.round(FILL / 1048576)} MiB random RAM, ${PAIRS} rounds, interleaved direct / direct --tls / tunnelled; warming up`);
  for (const m of ['direct', 'tls', 'tunnelled'] as const) await run(m);
  const runs: Record<Mode, Run[]> = { direct: [], tls: [], tunnelled: [] };
  for (let i = 0; i < PAIRS; i++) {
    for (const m of ['direct', 'tls', 'tunnelled'] as const) runs[m].push(await run(m));
    const [d, l, t] = [runs.direct[i]!, runs.tls[i]!, runs.tunnelled[i]!];
    say(
      `round ${i + 1}: direct ${d.wallMs.toFixed(0)} ms (QEMU ${d.qemuMs} ms), --tls ${l.wallMs.toFixed(0)} ms (QEMU ${l.qemuMs} ms), tunnelled ${t.wallMs.toFixed(0)} ms (QEMU ${t.qemuMs} ms); ` +
        `tunnelled peak RSS above idle: source worker ${mb(t.peakAbove.source)}, destination worker ${mb(t.peakAbove.destination)}; ` +
        `worker CPU (source/destination) direct ${d.cpu.source}/${d.cpu.destination} ms, tunnelled ${t.cpu.source}/${t.cpu.destination} ms`,
    );
  }
  const med = (m: Mode): number => median(runs[m].map((r) => r.wallMs));
  say(`direct median:                          ${med('direct').toFixed(0)} ms`);
  say(`direct --tls median:                    ${med('tls').toFixed(0)} ms`);
  say(`tunnelled median:                       ${med('tunnelled').toFixed(0)} ms`);
  say(`ratio tunnelled/direct (medians):       ${(med('tunnelled') / med('direct')).toFixed(2)}   (target <= 1.3)`);
  say(`ratio tunnelled/direct --tls (medians): ${(med('tunnelled') / med('tls')).toFixed(2)}   (both encrypted by QEMU)`);
  say(`ratio direct --tls/direct (medians):    ${(med('tls') / med('direct')).toFixed(2)}   (what QEMU's TLS itself costs here)`);
  say(
    `QEMU total-time median: direct ${median(runs.direct.map((r) => r.qemuMs))} ms, --tls ${median(runs.tls.map((r) => r.qemuMs))} ms, tunnelled ${median(runs.tunnelled.map((r) => r.qemuMs))} ms`,
  );
  say(
    `tunnelled peak RSS above idle (max over runs): source worker ${mb(Math.max(...runs.tunnelled.map((r) => r.peakAbove.source)))}, ` +
      `destination worker ${mb(Math.max(...runs.tunnelled.map((r) => r.peakAbove.destination)))}   (target < 150 MB)`,
  );
  say(
    `direct peak RSS above idle (max over runs, for comparison): source ${mb(Math.max(...runs.direct.map((r) => r.peakAbove.source)))}, destination ${mb(Math.max(...runs.direct.map((r) => r.peakAbove.destination)))}`,
  );
} finally {
  await op(vmHost, { op: 'destroy', name: GUEST }).catch(() => undefined);
  await op(vmHost, { op: 'undefine', name: GUEST }).catch(() => undefined);
  await env.stop();
}
process.exit(0);
