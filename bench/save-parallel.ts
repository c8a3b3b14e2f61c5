// Parallel save and restore (libvirt 11's sparse format, QEMU's mapped-ram through N multifd
// channels), interleaved in one run so all see the same machine state; ratios of medians.
//   raw N:        QEMU driven over QMP with the same mechanism: stop, mapped-ram + multifd N, the image
//                 handed over as an fdset, `migrate file:/dev/fdset/K` until completed (no header, no fsync);
//                 restore: -incoming defer, the same capabilities, `migrate-incoming file:...`, cont.
//   vmferry N:    `save --parallel-channels N` / `restore --parallel-channels N`, workflow start to result
//                 (the header, fsync and marking the image complete, stopping QEMU included).
//   virsh N:      libvirt 11.3 (a private session libvirtd): `virsh save --image-format sparse
//                 --parallel-channels N`, `virsh restore --parallel-channels N`, command start to exit.
//   classic:      vmferry's classic raw stream (QEMU writes its fd: stream into the image), and `virsh save`.
// Every save starts from a freshly started guest whose RAM above 16 MiB is refilled with random bytes.
// libvirt keeps its guests' RAM files under its config directory (the others under /dev/shm).
// Usage: node --import tsx bench/save-parallel.ts [--pairs N] [--mib M]  (npm run bench -- save-parallel --mib 2048)
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chownSync, closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo } from '../src/common/domain-types.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import type { QmpClient } from '../src/qemu/qmp-client.js';
import { which } from '../src/support/which.js';
import { waitFor } from '../src/support/wait.js';
import { fillRandom } from '../test/helpers/guest-memory.js';
import { guestXml } from '../test/helpers/guest-xml.js';
import { LibvirtDaemon } from '../test/helpers/libvirt.js';
import { arg, BenchEnv, median, say } from './common.js';

const PAIRS = arg('pairs', 3);
const MIB = arg('mib', 512);
const FILL = (MIB - 16) * 1024 * 1024;
const CHANNELS = [2, 4] as const;

const env = await BenchEnv.create('vmf-bench-psave');
const images = join(env.root, 'images');
mkdirSync(images);
const lvRoot = mkdtempSync('/tmp/vmf-bench-lv-');
const daemon = new LibvirtDaemon(lvRoot);
const times = new Map<string, number[]>();
const record = (what: string, ms: number): void => void (times.get(what) ?? times.set(what, []).get(what)!).push(ms);

// ---- raw QEMU ------------------------------------------------------------
const terminal = (qmp: QmpClient): Promise<string> =>
  qmp
    .waitForEvent('MIGRATION', { timeoutMs: 600_000, predicate: (e) => ['completed', 'failed', 'cancelled'].includes(String(e.data?.status)) })
    .then((e) => String(e.data?.status));

async function mappedRam(qmp: QmpClient, n: number, fd: number): Promise<string> {
  const caps = ['events', 'mapped-ram', 'multifd'].map((capability) => ({ capability, state: true }));
  await qmp.execute('migrate-set-capabilities', { capabilities: caps });
  await qmp.execute('migrate-set-parameters', { 'multifd-channels': n, 'max-bandwidth': Number.MAX_SAFE_INTEGER });
  const r = await qmp.execute<{ 'fdset-id': number }>('add-fd', {}, { fds: [fd] });
  closeSync(fd);
  return `file:/dev/fdset/${r['fdset-id']},offset=0`;
}

async function rawSave(n: number, file: string): Promise<void> {
  const q = await env.rawSpawn(MIB, false);
  await q.qmp.execute('cont');
  fillRandom(q.ram, FILL);
  const t0 = performance.now();
  await q.qmp.execute('stop');
  const uri = await mappedRam(q.qmp, n, openSync(file, 'w', 0o600));
  const done = terminal(q.qmp);
  await q.qmp.execute('migrate', { uri });
  if ((await done) !== 'completed') throw new Error('raw mapped-ram save failed');
  record(`save raw N=${n}`, performance.now() - t0);
  await env.rawKill(q);
}

async function rawRestore(n: number, file: string): Promise<void> {
  const t0 = performance.now();
  const q = await env.rawSpawn(MIB, true);
  const uri = await mappedRam(q.qmp, n, openSync(file, 'r'));
  const done = terminal(q.qmp);
  await q.qmp.execute('migrate-incoming', { uri });
  if ((await done) !== 'completed') throw new Error('raw mapped-ram restore failed');
  await q.qmp.execute('cont');
  record(`restore raw N=${n}`, performance.now() - t0);
  await env.rawKill(q);
}

// ---- vmferry ---------------------------------------------------------------
const HOST = 'bench-p';
await Promise.all([env.startHost(HOST), env.startControl()]);
const uuid = randomUUID();
const GUEST = 'benchguest';
await env.op(HOST, { op: 'define', xml: guestXml({ name: GUEST, uuid, memoryMiB: MIB }) });
const job = async (workflow: string, input: unknown): Promise<void> => {
  const handle = await env.client.workflow.start(workflow, {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(uuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
  });
  await handle.result();
};

async function vmSave(label: string, path: string, how: Record<string, unknown>): Promise<void> {
  const dom = (await env.op(HOST, { op: 'start', name: GUEST })) as { domain: DomainInfo };
  fillRandom(dom.domain.memoryBackingFile!, FILL);
  const t0 = performance.now();
  await job('save', { host: HOST, name: GUEST, path, overwrite: true, ...how });
  record(`save vmferry ${label}`, performance.now() - t0);
}

async function vmRestore(label: string, path: string, how: Record<string, unknown>): Promise<void> {
  const t0 = performance.now();
  await job('restore', { host: HOST, path, ...how });
  record(`restore vmferry ${label}`, performance.now() - t0);
  await env.op(HOST, { op: 'destroy', name: GUEST });
  rmSync(path);
}

// ---- libvirt ---------------------------------------------------------------
await daemon.start('raw');
const lvImages = daemon.ownedDir('images');
const LV_GUEST = 'lvbench';
const lvXml = join(lvImages, 'guest.xml');
writeFileSync(lvXml, guestXml({ name: LV_GUEST, memoryMiB: MIB }));
chownSync(lvXml, daemon.user.uid, daemon.user.gid);

/** virsh as libvirt's user, timed from spawn to exit. */
function virshTimed(...args: string[]): Promise<number> {
  const t0 = performance.now();
  const child = spawn(which('virsh')!, ['-q', '-c', 'qemu:///session', ...args], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: join(lvRoot, 'home'), XDG_CONFIG_HOME: join(lvRoot, 'config'), XDG_RUNTIME_DIR: join(lvRoot, 'run') },
    uid: daemon.user.uid,
    gid: daemon.user.gid,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return new Promise((resolve, reject) =>
    child.once('close', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`virsh ${args.join(' ')} exited ${code}`)))),
  );
}

async function lvSave(label: string, path: string, extra: string[]): Promise<void> {
  daemon.virsh('create', lvXml);
  await waitFor('libvirt guest running', () => daemon.domState(LV_GUEST) === 'running', { timeoutMs: 60_000 });
  fillRandom(daemon.memoryFile(LV_GUEST), FILL);
  record(`save virsh ${label}`, await virshTimed('save', LV_GUEST, path, ...extra));
}

async function lvRestore(label: string, path: string, extra: string[]): Promise<void> {
  record(`restore virsh ${label}`, await virshTimed('restore', path, ...extra));
  daemon.virsh('destroy', LV_GUEST);
  rmSync(path);
}

// ---- the run -------------------------------------------------------------------
try {
  say(`guest ${MIB} MiB (${MIB - 16} MiB random), ${PAIRS} rounds, channels ${CHANNELS.join(', ')}`);
  for (let i = 0; i < PAIRS; i++) {
    for (const n of CHANNELS) {
      const raw = join(images, 'raw.img');
      await rawSave(n, raw);
      await rawRestore(n, raw);
      rmSync(raw);
      const vm = join(images, 'vm.img');
      await vmSave(`N=${n}`, vm, { parallelChannels: n });
      await vmRestore(`N=${n}`, vm, { parallelChannels: n });
      const lv = join(lvImages, 'lv.img');
      await lvSave(`N=${n}`, lv, ['--image-format', 'sparse', '--parallel-channels', String(n)]);
      await lvRestore(`N=${n}`, lv, ['--parallel-channels', String(n)]);
    }
    const vm = join(images, 'vm.img');
    await vmSave('classic', vm, { format: 'raw' });
    await vmRestore('classic', vm, {});
    const lv = join(lvImages, 'lv.img');
    await lvSave('classic', lv, ['--image-format', 'raw']);
    await lvRestore('classic', lv, []);
    say(`round ${i + 1}/${PAIRS} done`);
  }
  const m = (k: string): number => median(times.get(k) ?? [NaN]);
  for (const op of ['save', 'restore']) {
    for (const n of CHANNELS) {
      const raw = m(`${op} raw N=${n}`);
      const vm = m(`${op} vmferry N=${n}`);
      const lv = m(`${op} virsh N=${n}`);
      say(
        `${op} N=${n}: raw ${raw.toFixed(0)} ms, vmferry ${vm.toFixed(0)} ms (x${(vm / raw).toFixed(2)} of raw), virsh ${lv.toFixed(0)} ms (vmferry x${(vm / lv).toFixed(2)} of virsh); vmferry classic ${m(`${op} vmferry classic`).toFixed(0)} ms (parallel x${(vm / m(`${op} vmferry classic`)).toFixed(2)} of it), virsh classic ${m(`${op} virsh classic`).toFixed(0)} ms`,
      );
    }
  }
  say(`all samples (ms): ${JSON.stringify(Object.fromEntries([...times].map(([k, v]) => [k, v.map((x) => Math.round(x))])))}`);
} finally {
  for (const name of daemon.virsh('list', '--name').split('\n').filter(Boolean)) daemon.virsh('destroy', name);
  await daemon.stop();
  rmSync(lvRoot, { recursive: true, force: true });
  await env.stop();
}
