// Tunnelled migration between two host workers in separate network namespaces
// joined by a veth pair: the source worker dials the destination worker's one
// listener (a TLS control channel and a data connection bound to the job by a
// ticket) and both hand the data connection to their QEMUs, which run TLS over it
// with the hosts' certificates; no QEMU listens for the stream. The workers reach the run's Temporal server
// through a TCP relay on each namespace's management link. Certificates are made
// here with openssl: one cluster CA, and a rogue CA for a host that must be refused.
import { spawn, spawnSync, type ChildProcessByStdio, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Readable } from 'node:stream';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../src/support/proc.js';
import type { MigrateFlag, MigrateInput, MigrationHeartbeat } from '../src/common/migration-types.js';
import { STORAGE_COPY_PHASE } from '../src/common/job-types.js';
import { cancelSignal, setMaxDowntimeSignal, setSpeedSignal } from '../src/common/job-messages.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { FILL_OFFSET, fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { waitGuestIdle, writeIdleKernel } from './helpers/idle-kernel.js';
import { domainOf, failureOf, namesOf, performHeartbeat, startMigration, switchToPostcopy, waitForPerform } from './helpers/migration.js';
import { createNetnsPair, type NetnsPair } from './helpers/netns.js';
import { forwardTcp, type TcpForward } from './helpers/tcp-forward.js';
import { makeCa, makeHostCert, tunnelEnv } from './helpers/tunnel-certs.js';
import { capture, countOf, tcpPorts } from './helpers/tcpdump.js';

const SRC = 'tun-src';
const DST = 'tun-dst';
const ROGUE = 'tun-rogue';
const PLAIN = 'tun-plain';
/** Only a certificate: a host of the cluster that no job here expects. */
const OTHER = 'tun-other';
const PORT = 7443;
const MiB = 1024 * 1024;

const cluster = new TestCluster();
const certDir = mkdtempSync(join(tmpdir(), 'vmf-tun-certs-'));
// The storage test's images live here too, and QEMU runs as nobody (DAC): it must pass through.
chmodSync(certDir, 0o711);
let net: NetnsPair | undefined;
let relay: TcpForward | undefined;

beforeAll(async () => {
  net = createNetnsPair();
  const [host, port] = cluster.address.split(':') as [string, string];
  relay = await forwardTcp([net.mgmtRootA, net.mgmtRootB], { host, port: Number(port) });
  const ca = makeCa(certDir, 'cluster-ca');
  const rogueCa = makeCa(certDir, 'rogue-ca');
  const inNs = (ns: string, listen: string, cert: ReturnType<typeof makeHostCert>, temporalVia: string): Record<string, string> => ({
    ...tunnelEnv(listen, cert),
    TEMPORAL_ADDRESS: `${temporalVia}:${relay!.port}`,
  });
  makeHostCert(certDir, ca, OTHER);
  await cluster.connect();
  await Promise.all([
    cluster.startHost(
      SRC,
      // DAC hands QEMU's credential files to another user (QEMU runs as root here, so it still reads them).
      {
        ...inNs(net.a, `${net.addrA}:${PORT}`, makeHostCert(certDir, ca, SRC), net.mgmtRootA),
        VMFERRY_SECURITY_DRIVER: 'dac',
        VMFERRY_QEMU_USER: 'nobody',
        VMFERRY_HOST_MIGRATION_ADDRESS: net.addrA,
      },
      { commandPrefix: net.prefix(net.a) },
    ),
    cluster.startHost(
      DST,
      { ...inNs(net.b, `${net.addrB}:${PORT}`, makeHostCert(certDir, ca, DST), net.mgmtRootB), VMFERRY_HOST_MIGRATION_ADDRESS: net.addrB },
      { commandPrefix: net.prefix(net.b) },
    ),
    // Signed by another CA (it trusts the cluster CA, so only the destination's check can stop it).
    cluster.startHost(ROGUE, inNs(net.a, `${net.addrA}:${PORT + 1}`, makeHostCert(certDir, rogueCa, ROGUE, ca), net.mgmtRootA), {
      commandPrefix: net.prefix(net.a),
    }),
    cluster.startHost(PLAIN),
    cluster.startControl(),
  ]);
}, 120_000);

afterAll(async () => {
  await cluster.removeAllDomains([SRC, DST, ROGUE, PLAIN]).catch(() => undefined);
  await cluster.stop();
  await relay?.close();
  net?.destroy();
  rmSync(certDir, { recursive: true, force: true });
});

async function runGuest(host: string, name: string, memoryMiB: number, fillMiB: number): Promise<{ uuid: string; pid: number; ram: string; hash: string }> {
  const uuid = randomUUID();
  await cluster.op(host, { op: 'define', xml: guestXml({ name, uuid, memoryMiB }) });
  const d = domainOf(await cluster.op(host, { op: 'start', name }));
  fillRandom(d.memoryBackingFile!, fillMiB * MiB);
  return { uuid, pid: d.pid!, ram: d.memoryBackingFile!, hash: hashRange(d.memoryBackingFile!, fillMiB * MiB) };
}

const runDir = (host: string): string => join(cluster.hosts.get(host)!.baseDir, 'run');
const jobsDir = (host: string): string => join(cluster.hosts.get(host)!.baseDir, 'state', 'jobs');
/** Tunnel sockets and migration records a host still has. */
function leftovers(host: string): string[] {
  const records = existsSync(jobsDir(host)) ? readdirSync(jobsDir(host)) : [];
  return [...readdirSync(runDir(host)).filter((f) => f.startsWith('tun-')), ...records];
}
const workerPid = (host: string): number => cluster.hosts.get(host)!.worker!.pid;
const logged = (host: string, msg: string): Record<string, unknown>[] => cluster.hosts.get(host)!.worker!.logs.filter((l) => l.msg === msg);

/** Established TCP connections inside a namespace, as `ss` prints them with their processes. */
function tcpIn(ns: string): string[] {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'ss', '-Htnp', 'state', 'established'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ss failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.trim().length > 0);
}

/** openssl s_client from the source's namespace straight at the destination's tunnel listener; its output. */
function sClient(args: string[], input: string): Promise<string> {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      net!.a,
      'openssl',
      's_client',
      '-connect',
      `${net!.addrB}:${PORT}`,
      '-quiet',
      '-verify_return_error',
      '-CAfile',
      join(certDir, 'cluster-ca.crt'),
      ...args,
    ],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  child.stdin.end(input);
  return outputOf(child);
}
/** Everything a child we started printed (stdout and stderr) once it exits; killed (by PID) after 15 s. */
function outputOf(child: ChildProcessWithoutNullStreams | ChildProcessByStdio<null, Readable, Readable>): Promise<string> {
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  return new Promise((resolve) => child.once('close', () => (clearTimeout(timer), resolve(out))));
}
/** A plain TCP client from the source's namespace at the destination's tunnel listener (a data connection); what it was told. */
function plainClient(input: string): Promise<string> {
  const script = `const s=require('net').connect(${PORT},${JSON.stringify(net!.addrB)});s.end(process.argv[1]);s.pipe(process.stdout);`;
  return outputOf(spawn('ip', ['netns', 'exec', net!.a, process.execPath, '-e', script, input], { stdio: ['ignore', 'pipe', 'pipe'] }));
}
function listeningIn(ns: string): string[] {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'ss', '-Htlnp'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ss failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.trim().length > 0);
}
/** Unix sockets listening inside a namespace, with their processes. */
function unixListeningIn(ns: string): string[] {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'ss', '-Hxlp'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ss failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.trim().length > 0);
}
/** The TCP sockets a process has in LISTEN state (from /proc/PID/net/tcp{,6}, its namespace's tables, matched by its socket inodes). */
function tcpListenersOf(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSafe(`/proc/${pid}/fd/${fd}`));
    if (m) inodes.add(m[1]!);
  }
  const out: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // st 0A is LISTEN; field 9 is the inode.
      if (f[3] === '0A' && inodes.has(f[9] ?? '')) out.push(`${table} ${f[1]}`);
    }
  }
  return out;
}
function readlinkSafe(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
}
function qemuImg(...args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
/** sha256 of what the guest sees on an image; `locked`: opened with QEMU's image locking, so it fails while any QEMU holds it. */
function imageHash(image: string, opts: { locked?: boolean } = {}): string {
  const out = `${image}.flat`;
  try {
    qemuImg('convert', ...(opts.locked ? [] : ['-U']), '-O', 'raw', image, out);
    return createHash('sha256').update(readFileSync(out)).digest('hex');
  } finally {
    rmSync(out, { force: true });
  }
}
const DISK_MIB = 48;
const DISK_MARKER = Buffer.from('vmferry disk marker: if a capture of the link shows this, the disk went in clear.');
/** What the DAC driver of a host remembers having relabelled (keys: paths and descriptors' inodes). */
function dacLabels(host: string): string[] {
  const file = join(cluster.hosts.get(host)!.baseDir, 'state', 'security', 'dac-labels.json');
  return existsSync(file) ? Object.keys(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : [];
}
/** Everything on the migration link while `during` runs, as tcpdump wrote it (pcap, whole packets). */
async function captureLink(during: () => Promise<void>): Promise<Buffer> {
  const file = join(certDir, `link-${Date.now()}.pcap`);
  return await capture(['ip', 'netns', 'exec', net!.b, 'tcpdump', '-i', net!.migIfB, '-U', '-B', '65536', '-s', '0', '-w', file, 'tcp'], file, during);
}
const certArgs = (host: string): string[] => ['-cert', join(certDir, `${host}.crt`), '-key', join(certDir, `${host}.key`)];

async function expectCleanDestination(name: string): Promise<void> {
  expect(namesOf(await cluster.op(DST, { op: 'list' }))).not.toContain(name);
  await waitFor('the destination to drop its tunnel leftovers', () => leftovers(DST).length === 0, { timeoutMs: 5000, intervalMs: 50 });
}

describe('tunnelled migration between network namespaces', () => {
  it("moves a random-RAM guest over the destination worker's listener only (no QEMU listens); setSpeed and setMaxDowntime reach QEMU; memory identical", async () => {
    const g = await runGuest(SRC, 't1', 256, 192);
    const handle = await startMigration(cluster.client, {
      domain: 't1',
      domainUuid: g.uuid,
      sourceHost: SRC,
      destinationHost: DST,
      flags: ['live', 'tunnelled'],
      bandwidthMiBps: 16,
    });
    const hb = await waitForPerform(handle);
    expect(hb.speedLimitMiBps).toBe(16);

    // While it streams: everything on the migration link goes to the destination worker's one listener. The
    // control channel is the workers' own; the data connection, dialled by the source worker, belongs to the QEMUs.
    const a = tcpIn(net!.a);
    const b = tcpIn(net!.b);
    const dstQemu = domainOf(await cluster.op(DST, { op: 'info', name: 't1' })).pid!;
    const link = b.filter((l) => l.includes(net!.addrA));
    expect(link.length).toBe(2);
    for (const l of link) expect(l).toContain(`${net!.addrB}:${PORT} `);
    // The worker keeps its (unread) copy of the data socket to restore its label at the end, so ss names both there.
    const [dataIn, controlIn] = [link.filter((l) => l.includes(`pid=${dstQemu},`)), link.filter((l) => !l.includes(`pid=${dstQemu},`))];
    expect(dataIn, JSON.stringify({ link, dstQemu })).toHaveLength(1);
    expect(controlIn).toHaveLength(1);
    expect(controlIn[0]).toContain(`pid=${workerPid(DST)},`);
    const out = a.filter((l) => l.includes(net!.addrB));
    expect(out.length).toBe(2);
    expect(out.filter((l) => l.includes(`pid=${g.pid},`))).toHaveLength(1);
    expect(out.filter((l) => !l.includes(`pid=${g.pid},`))[0]).toContain(`pid=${workerPid(SRC)},`);
    // No QEMU listens for the stream anywhere.
    expect(listeningIn(net!.b).filter((l) => /qemu/.test(l))).toEqual([]);
    // The QEMUs speak TLS with the hosts' certificates, each pinning the other host.
    expect(logged(DST, 'QEMU migration TLS on').filter((l) => l.domain === 't1')).toMatchObject([{ role: 'server', peer: 'O=vmferry-tests,CN=tun-src' }]);
    expect(logged(SRC, 'QEMU migration TLS on').filter((l) => l.domain === 't1')).toMatchObject([{ role: 'client', peer: DST }]);

    // The job's token opens a control channel only with the source host's certificate; a data connection needs the ticket.
    const rec = JSON.parse(readFileSync(join(jobsDir(DST), 't1.json'), 'utf8')) as { jobId: string; tunnel: { token: string } };
    const hello = `${JSON.stringify({ v: 1, jobId: rec.jobId, name: 't1', token: rec.tunnel.token, channel: 'control' })}\n`;
    expect(await sClient(certArgs(OTHER), hello)).toMatch(/"ok":false.*the certificate is for tun-other, but job .* migrates from 'tun-src'/);
    expect(await plainClient(`${JSON.stringify({ v: 1, jobId: rec.jobId, name: 't1', token: rec.tunnel.token, channel: 'data' })}\n`)).toMatch(
      /"ok":false.*wrong ticket/,
    );

    // Longer than the liveness deadline (5 s): the destination's echo keeps the tunnel alive.
    await waitFor('80 MiB through the tunnel', async () => ((await performHeartbeat(handle))?.progress.dataProcessedBytes ?? 0) > 80 * MiB, {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    await handle.signal(setSpeedSignal, 12);
    await waitFor('12 MiB/s to reach QEMU', async () => (await performHeartbeat(handle))?.speedLimitMiBps === 12, { timeoutMs: 5000, intervalMs: 50 });
    await handle.signal(setMaxDowntimeSignal, 1234);
    await waitFor('1234 ms max downtime to reach QEMU', async () => (await performHeartbeat(handle))?.maxDowntimeMs === 1234, {
      timeoutMs: 5000,
      intervalMs: 50,
    });
    await handle.signal(setSpeedSignal, 0);
    const result = await handle.result();
    expect(result).toMatchObject({ domain: 't1', destination: { state: 'running', host: DST } });
    expect(result.stats.transferredBytes).toBeGreaterThan(192 * MiB);
    expect(isProcessAlive(g.pid)).toBe(false);
    const onDst = domainOf(await cluster.op(DST, { op: 'info', name: 't1' }));
    expect(hashRange(onDst.memoryBackingFile!, 192 * MiB)).toBe(g.hash);
    expect(logged(DST, 'tunnel data connection handed to the incoming QEMU')).toHaveLength(1);
    expect(leftovers(SRC)).toEqual([]);
    expect(leftovers(DST)).toEqual([]);
    // QEMU's credential files were labelled, remembered and put back (the data socket is QEMU's for good: nothing to remember).
    await waitFor(
      'the source to restore every label of the migration',
      () => dacLabels(SRC).filter((k) => k.startsWith('inode:') || k.includes('/tls-')).length === 0,
      { timeoutMs: 5000, intervalMs: 50 },
    );
    await cluster.op(DST, { op: 'destroy', name: 't1' });
  });

  it('cancel during a tunnelled Perform: OperationAborted, source running, no destination QEMU; no certificates on a host: ConfigUnsupported first', async () => {
    const g = await runGuest(SRC, 't2', 128, 96);
    const handle = await startMigration(cluster.client, {
      domain: 't2',
      domainUuid: g.uuid,
      sourceHost: SRC,
      destinationHost: DST,
      flags: ['live', 'tunnelled'],
      bandwidthMiBps: 8,
    });
    await waitForPerform(handle);
    const t0 = Date.now();
    await handle.signal(cancelSignal);
    const failure = await failureOf(handle.result());
    expect(failure.type).toBe('OperationAborted');
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(domainOf(await cluster.op(SRC, { op: 'info', name: 't2' }))).toMatchObject({ state: 'running', pid: g.pid });
    await expectCleanDestination('t2');
    expect(leftovers(SRC)).toEqual([]);

    // Refused before anything is touched: the guest keeps running with no job, and nothing appears on either host.
    const before = domainOf(await cluster.op(SRC, { op: 'info', name: 't2' }));
    const plain = await startMigration(cluster.client, {
      domain: 't2',
      domainUuid: g.uuid,
      sourceHost: SRC,
      destinationHost: PLAIN,
      flags: ['live', 'tunnelled'],
    });
    const refused = await failureOf(plain.result());
    expect(refused.type).toBe('ConfigUnsupported');
    expect(refused.message).toMatch(/tunnel certificates.*'tun-plain'/);
    const tls = await startMigration(cluster.client, { domain: 't2', domainUuid: g.uuid, sourceHost: SRC, destinationHost: PLAIN, flags: ['live', 'tls'] });
    const refusedTls = await failureOf(tls.result());
    expect(refusedTls.type).toBe('ConfigUnsupported');
    expect(refusedTls.message).toMatch(/TLS migration needs tunnel certificates.*'tun-plain'/);
    expect(domainOf(await cluster.op(SRC, { op: 'info', name: 't2' }))).toEqual(before);
    expect(namesOf(await cluster.op(PLAIN, { op: 'list' }))).toEqual([]);
    expect(leftovers(SRC)).toEqual([]);
    await cluster.op(SRC, { op: 'destroy', name: 't2' });
    await cluster.op(SRC, { op: 'undefine', name: 't2' });
  });

  it('cutting the link during Perform: cancelled at once, source resumed, no destination QEMU, the workflow says why', async () => {
    const g = await runGuest(SRC, 't3', 128, 96);
    const handle = await startMigration(cluster.client, {
      domain: 't3',
      domainUuid: g.uuid,
      sourceHost: SRC,
      destinationHost: DST,
      flags: ['live', 'tunnelled'],
      bandwidthMiBps: 8,
    });
    await waitForPerform(handle);
    const t0 = Date.now();
    net!.cut();
    try {
      const failure = await failureOf(handle.result());
      const took = Date.now() - t0;
      expect(failure.type).toBe('OperationFailed');
      expect(failure.message).toMatch(/^perform:.*destination host 'tun-dst' stopped answering on the tunnel/);
      console.log(`link cut -> workflow failed in ${took} ms`);
      expect(took).toBeLessThan(20_000);
      expect(domainOf(await cluster.op(SRC, { op: 'info', name: 't3' }))).toMatchObject({ state: 'running', pid: g.pid });
      await expectCleanDestination('t3');
      expect(leftovers(SRC)).toEqual([]);
    } finally {
      net!.restore();
    }
    await cluster.op(SRC, { op: 'destroy', name: 't3' });
    await cluster.op(SRC, { op: 'undefine', name: 't3' });
  });

  it('refuses a client certificate from another CA (the job undone on both sides), a missing one, and a good one for another job', async () => {
    const g = await runGuest(ROGUE, 't4', 64, 16);
    const handle = await startMigration(cluster.client, {
      domain: 't4',
      domainUuid: g.uuid,
      sourceHost: ROGUE,
      destinationHost: DST,
      flags: ['live', 'tunnelled'],
    });
    const failure = await failureOf(handle.result());
    // Its own QEMU already refuses a certificate its CA file did not sign, before anything is dialled.
    expect(failure.type).toBe('ConfigUnsupported');
    expect(failure.message).toMatch(/QEMU refused this host's TLS certificates/);
    expect(domainOf(await cluster.op(ROGUE, { op: 'info', name: 't4' }))).toMatchObject({ state: 'running', pid: g.pid });
    await expectCleanDestination('t4');
    await cluster.op(ROGUE, { op: 'destroy', name: 't4' });
    await cluster.op(ROGUE, { op: 'undefine', name: 't4' });

    // Straight at the listener from the source's namespace, with openssl: the rogue certificate ...
    const before = logged(DST, 'tunnel connection refused: TLS handshake failed').length;
    const rogue = await sClient(certArgs(ROGUE), '{"v":1,"jobId":"x","name":"y","token":"z","channel":"control"}\n');
    expect(rogue).not.toContain('"ok":true');
    await waitFor('the rogue refusal in the destination log', () => logged(DST, 'tunnel connection refused: TLS handshake failed').length > before, {
      timeoutMs: 5000,
      intervalMs: 50,
    });
    // ... no certificate at all ...
    const noCert = await sClient([], '{"v":1,"jobId":"x","name":"y","token":"z","channel":"control"}\n');
    expect(noCert).not.toContain('"ok":true');
    await waitFor('the refusal in the destination log', () => logged(DST, 'tunnel connection refused: TLS handshake failed').length > before + 1, {
      timeoutMs: 5000,
      intervalMs: 50,
    });
    // ... and the source's good certificate, for a job the destination is not preparing.
    const wrongJob = await sClient(certArgs(SRC), '{"v":1,"jobId":"not-a-job","name":"t1","token":"guess","channel":"control"}\n');
    expect(wrongJob).toContain('"ok":false');
    expect(wrongJob).toMatch(/no tunnelled migration of 't1' for job not-a-job/);
    await waitFor('the refusal of the unknown job in the destination log', () => logged(DST, 'tunnel connection refused').some((l) => l.job === 'not-a-job'), {
      timeoutMs: 5000,
      intervalMs: 50,
    });
    expect(existsSync(runDir(DST))).toBe(true);
    expect(leftovers(DST)).toEqual([]);
  });

  it('on the wire the stream is TLS, tunnelled, --tls and --tls --parallel alike (4 connections: main + 3 multifd); the same guest migrated in clear shows its RAM (so the check can fail)', async () => {
    const marker = Buffer.from('vmferry plaintext marker: if a capture of the link shows this, RAM went in clear.');
    const uuid = randomUUID();
    await cluster.op(SRC, { op: 'define', xml: guestXml({ name: 't5', uuid, memoryMiB: 64 }) });
    let dom = domainOf(await cluster.op(SRC, { op: 'start', name: 't5' }));
    const fd = openSync(dom.memoryBackingFile!, 'r+');
    writeSync(fd, Buffer.alloc(16 * MiB, marker), 0, 16 * MiB, FILL_OFFSET);
    closeSync(fd);
    const hash = hashRange(dom.memoryBackingFile!, 16 * MiB);
    let parallelConnections: number | undefined;
    const move = async (from: string, to: string, flags: MigrateFlag[], extra: Partial<MigrateInput> = {}): Promise<Buffer> =>
      captureLink(async () => {
        const h = await startMigration(cluster.client, {
          domain: 't5',
          domainUuid: uuid,
          sourceHost: from,
          destinationHost: to,
          flags: ['live', 'persist-dest', 'undefine-source', ...flags],
          ...extra,
        });
        parallelConnections = (await h.result()).parallelConnections;
        dom = domainOf(await cluster.op(to, { op: 'info', name: 't5' }));
        expect(hashRange(dom.memoryBackingFile!, 16 * MiB)).toBe(hash);
      });
    const tunnelled = await move(SRC, DST, ['tunnelled']);
    const tls = await move(DST, SRC, ['tls']);
    const clear = await move(SRC, DST, []);
    expect(parallelConnections).toBeUndefined();
    // A fixed port, so the capture tells the stream's connections apart from the rest of the link.
    const parallelPort = 7450;
    const tlsParallel = await move(DST, SRC, ['tls', 'parallel'], { parallelConnections: 3, uri: `tcp:${net!.addrA}:${parallelPort}` });
    // QEMU's own account, read on the destination at Finish, and the connections on the wire.
    expect(parallelConnections).toBe(3);
    expect(
      new Set(
        tcpPorts(tlsParallel)
          .filter((p) => p.dst === parallelPort)
          .map((p) => p.src),
      ).size,
    ).toBe(4);
    expect(tlsParallel.length).toBeGreaterThan(8 * MiB);
    expect(countOf(tlsParallel, marker)).toBe(0);
    // 16 MiB of marker pages, each several markers: thousands of hits in clear, none under TLS.
    expect(countOf(clear, marker)).toBeGreaterThan(10_000);
    // The capture saw the stream (tcpdump may drop some packets on a busy machine, never most of them).
    expect(tunnelled.length).toBeGreaterThan(8 * MiB);
    expect(tls.length).toBeGreaterThan(8 * MiB);
    expect(countOf(tunnelled, marker)).toBe(0);
    expect(countOf(tls, marker)).toBe(0);
    expect(logged(SRC, 'QEMU migration TLS on').filter((l) => l.domain === 't5')).toMatchObject([
      { role: 'client', peer: DST },
      { role: 'server', peer: 'O=vmferry-tests,CN=tun-dst' },
      { role: 'server', peer: 'O=vmferry-tests,CN=tun-dst' },
    ]);
    await cluster.op(SRC, { op: 'destroy', name: 't5' });
    await cluster.op(SRC, { op: 'undefine', name: 't5' });
  });

  it('--tunnelled --copy-storage-all: the disk goes worker to worker (QEMU NBD on unix sockets only, never in clear); setSpeed reaches the mirror; a cancel mid-copy leaves nothing', async () => {
    const name = 't8';
    const uuid = randomUUID();
    const disk = (what: string): string => join(certDir, `${what}.qcow2`);
    // 40 MiB of marker in a 48 MiB image, the rest left unallocated: only the disk copy can carry it. More than QEMU's
    // mirror puts in flight at once (16 MiB), so its speed limit paces it (below that, one burst copies all).
    const raw = join(certDir, 't8.raw');
    const data = Buffer.alloc(DISK_MIB * MiB);
    data.fill(DISK_MARKER, 4 * MiB, 44 * MiB);
    writeFileSync(raw, data);
    qemuImg('convert', '-O', 'qcow2', raw, disk('t8-src'));
    rmSync(raw);
    const srcHash = imageHash(disk('t8-src'));
    const diskXml = (path: string): string =>
      `\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='${path}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>`;
    const kernel = join(certDir, 'idle-kernel');
    writeIdleKernel(kernel);
    await cluster.op(SRC, { op: 'define', xml: guestXml({ name, uuid, memoryMiB: 64, kernel, extraDevices: diskXml(disk('t8-src')) }) });
    const src = domainOf(await cluster.op(SRC, { op: 'start', name }));
    // Past the firmware: its virtio set-up drains the disk, which wakes a mirror from its rate-limit sleep early.
    await waitGuestIdle(src.memoryBackingFile!);
    const destXml = async (host: string, path: string): Promise<string> => {
      const r = await cluster.op(host, { op: 'dumpxml', name, migratable: true });
      if (!('xml' in r)) throw new Error(`dumpxml answered ${JSON.stringify(r)}`);
      return r.xml.replace(/<source file='[^']*'/, `<source file='${path}'`);
    };
    const mirroring = (handle: Awaited<ReturnType<typeof startMigration>>, speed?: number): Promise<MigrationHeartbeat> =>
      waitFor(
        'the disk mirror through the tunnel under way',
        async () => {
          const hb = (await performHeartbeat(handle)) as (MigrationHeartbeat & { phase?: string }) | undefined;
          const moving = hb?.phase === STORAGE_COPY_PHASE && (hb.progress.diskProcessedBytes ?? 0) > 0;
          return moving && (speed === undefined || hb.speedLimitMiBps === speed) ? hb : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 100 },
      );

    const link = await captureLink(async () => {
      const handle = await startMigration(cluster.client, {
        domain: name,
        domainUuid: uuid,
        sourceHost: SRC,
        destinationHost: DST,
        flags: ['live', 'tunnelled', 'copy-storage-all'],
        destinationXml: await destXml(SRC, disk('t8-dst')),
        bandwidthMiBps: 1,
      });
      // The worker's log says so at once (a heartbeat may come up to 8 s later): the checks below run while the disk copies.
      await waitFor('the mirror started', () => logged(SRC, 'disk mirrors started').some((l) => l.domain === name), { timeoutMs: 60_000, intervalMs: 20 });
      expect(logged(SRC, 'disk mirrors started').filter((l) => l.domain === name)).toMatchObject([{ speedLimitMiBps: 1 }]);
      // While the disk copies: the destination QEMU listens on no TCP port (its NBD server is on a unix socket the
      // destination worker joins tunnel connections to), and every connection on the link goes to the tunnel port.
      const dstQemu = domainOf(await cluster.op(DST, { op: 'info', name })).pid!;
      expect(listeningIn(net!.b).filter((l) => /qemu/.test(l) || l.includes(`pid=${dstQemu},`))).toEqual([]);
      expect(tcpListenersOf(dstQemu)).toEqual([]);
      const unixIn = unixListeningIn(net!.b).filter((l) => l.includes(`pid=${dstQemu},`) && l.includes('/tun-nbd-in-'));
      expect(unixIn).toHaveLength(1);
      const onLink = tcpIn(net!.b).filter((l) => l.includes(net!.addrA));
      expect(onLink.length).toBeGreaterThan(0);
      for (const l of onLink) expect(l).toContain(`${net!.addrB}:${PORT} `);
      expect(onLink.filter((l) => l.includes(`pid=${workerPid(DST)},`)).length).toBeGreaterThan(0);
      // An NBD connection needs the source host's certificate and the job's token, as a control channel does.
      const rec = JSON.parse(readFileSync(join(jobsDir(DST), `${name}.json`), 'utf8')) as { jobId: string; tunnel: { token: string } };
      const nbdHello = (token: string): string => `${JSON.stringify({ v: 1, jobId: rec.jobId, name, token, channel: 'nbd' })}\n`;
      expect(await sClient(certArgs(OTHER), nbdHello(rec.tunnel.token))).toMatch(/"ok":false.*the certificate is for tun-other/);
      expect(await sClient(certArgs(SRC), nbdHello('not-the-token'))).toMatch(/"ok":false.*wrong token/);
      expect(await plainClient(nbdHello(rec.tunnel.token))).toMatch(/"ok":false.*an NBD connection needs TLS/);
      // setSpeed reaches the mirror while it runs, then lets it finish.
      expect(logged(SRC, 'disk mirrors ready').filter((l) => l.domain === name)).toEqual([]);
      await handle.signal(setSpeedSignal, 2);
      await mirroring(handle, 2);
      await handle.signal(setSpeedSignal, 0);
      const result = await handle.result();
      expect(result).toMatchObject({ domain: name, destination: { state: 'running', host: DST } });
      expect(result.stats.diskTotalBytes).toBeGreaterThanOrEqual(DISK_MIB * MiB);
    });
    // The whole marker crossed the link (tcpdump may drop some packets on a busy machine, never most), none of it readable,
    // and every packet on it was to or from the destination worker's tunnel port.
    expect(link.length).toBeGreaterThan(20 * MiB);
    expect(countOf(link, DISK_MARKER)).toBe(0);
    const ports = tcpPorts(link);
    expect(ports.length).toBeGreaterThan(100);
    expect(ports.filter((p) => p.src !== PORT && p.dst !== PORT)).toEqual([]);
    expect(isProcessAlive(src.pid!)).toBe(false);
    // The destination runs on its copy, which holds the source's data; the source image is as it was, and free (no lock left).
    const onDst = await cluster.op(DST, { op: 'dumpxml', name });
    expect('xml' in onDst ? onDst.xml : '').toContain(`<source file='${disk('t8-dst')}'`);
    expect(imageHash(disk('t8-dst'))).toBe(srcHash);
    expect(imageHash(disk('t8-src'), { locked: true })).toBe(srcHash);
    expect(logged(DST, "tunnel NBD connection joined to the incoming QEMU's NBD server").filter((l) => l.domain === name).length).toBeGreaterThan(0);
    expect(logged(SRC, 'tunnel NBD relay closed').filter((l) => l.domain === name)).toMatchObject([{ carried: 1 }]);
    expect(leftovers(SRC)).toEqual([]);
    expect(leftovers(DST)).toEqual([]);

    // Back, cancelled during the mirror: the source runs on, the image this job made is gone, no NBD socket or relay is left.
    const handle = await startMigration(cluster.client, {
      domain: name,
      domainUuid: uuid,
      sourceHost: DST,
      destinationHost: SRC,
      flags: ['live', 'tunnelled', 'copy-storage-all'],
      destinationXml: await destXml(DST, disk('t8-back')),
      bandwidthMiBps: 1,
    });
    await mirroring(handle);
    expect(existsSync(disk('t8-back'))).toBe(true);
    expect(readdirSync(runDir(SRC)).filter((f) => f.startsWith('tun-nbd-in-'))).toHaveLength(1);
    expect(readdirSync(runDir(DST)).filter((f) => f.startsWith('tun-nbd-out-'))).toHaveLength(1);
    const pidOnDst = domainOf(await cluster.op(DST, { op: 'info', name })).pid;
    await handle.signal(cancelSignal);
    expect((await failureOf(handle.result())).type).toBe('OperationAborted');
    expect(domainOf(await cluster.op(DST, { op: 'info', name }))).toMatchObject({ state: 'running', pid: pidOnDst });
    expect(existsSync(disk('t8-back'))).toBe(false);
    expect(domainOf(await cluster.op(SRC, { op: 'info', name })).state).toBe('shutoff');
    expect(leftovers(SRC)).toEqual([]);
    expect(leftovers(DST)).toEqual([]);
    // The labels DAC gave the NBD directories and sockets (the relay's on the way there, the NBD server's on the way back) went back.
    expect(dacLabels(SRC).filter((k) => k.includes('/tun-nbd-'))).toEqual([]);
    await cluster.op(DST, { op: 'destroy', name });
    await cluster.op(SRC, { op: 'undefine', name });
  });

  it("kill -9 of the source worker mid-stream: the stream is QEMU's and goes on; the restarted worker watches it again and the migration completes", async () => {
    const g = await runGuest(SRC, 't6', 128, 96);
    const handle = await startMigration(cluster.client, {
      domain: 't6',
      domainUuid: g.uuid,
      sourceHost: SRC,
      destinationHost: DST,
      flags: ['live', 'tunnelled'],
      bandwidthMiBps: 16,
    });
    await waitForPerform(handle);
    const worker = cluster.hosts.get(SRC)!.worker!;
    process.kill(worker.pid, 'SIGKILL');
    await waitFor('the killed source worker to exit', () => !isProcessAlive(worker.pid), { timeoutMs: 5000, intervalMs: 20 });
    await cluster.startHost(SRC, {}, { commandPrefix: net!.prefix(net!.a) });
    await handle.signal(setSpeedSignal, 0);
    const result = await handle.result();
    expect(result).toMatchObject({ domain: 't6', destination: { state: 'running', host: DST } });
    expect(isProcessAlive(g.pid)).toBe(false);
    const onDst = domainOf(await cluster.op(DST, { op: 'info', name: 't6' }));
    expect(hashRange(onDst.memoryBackingFile!, 96 * MiB)).toBe(g.hash);
    // One data connection, two control channels: the restarted worker dialled the destination again to watch it.
    expect(logged(DST, 'tunnel data connection handed to the incoming QEMU').filter((l) => l.domain === 't6')).toHaveLength(1);
    expect(logged(DST, 'tunnel control channel open').filter((l) => l.domain === 't6')).toHaveLength(2);
    expect(logged(SRC, 'cannot watch the destination over the tunnel again; relying on the stall limit')).toEqual([]);
    expect(leftovers(SRC)).toEqual([]);
    await cluster.op(DST, { op: 'destroy', name: 't6' });
  });

  it('post-copy through the tunnel (the destination faults pages back over the same connection), then back compressed with auto-converge', async () => {
    const g = await runGuest(SRC, 't7', 96, 64);
    // 64 MiB at 16 MiB/s: the switch lands in the first pass.
    const handle = await startMigration(cluster.client, {
      domain: 't7',
      domainUuid: g.uuid,
      sourceHost: SRC,
      destinationHost: DST,
      flags: ['live', 'tunnelled', 'postcopy'],
      bandwidthMiBps: 16,
    });
    expect((await switchToPostcopy(handle)).postcopy).toMatch(/requested|active/);
    const there = await handle.result();
    expect(there.stats.postcopy).toBe(true);
    expect(there.destination).toMatchObject({ state: 'running', host: DST });
    expect(hashRange(there.destination.memoryBackingFile!, 64 * MiB)).toBe(g.hash);
    const back = await (
      await startMigration(cluster.client, {
        domain: 't7',
        domainUuid: g.uuid,
        sourceHost: DST,
        destinationHost: SRC,
        flags: ['live', 'tunnelled', 'compressed', 'auto-converge'],
      })
    ).result();
    expect(back.destination).toMatchObject({ state: 'running', host: SRC });
    expect(hashRange(back.destination.memoryBackingFile!, 64 * MiB)).toBe(g.hash);
    expect(leftovers(SRC)).toEqual([]);
    expect(leftovers(DST)).toEqual([]);
    await cluster.op(SRC, { op: 'destroy', name: 't7' });
  });
});
