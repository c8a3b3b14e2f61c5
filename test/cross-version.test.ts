// vitest-lane: compat (only there: it sets each of its hosts' QEMU itself; scripts/test-lanes.ts)
// A cluster upgraded one host at a time: one host worker runs Debian 12's QEMU 7.2 (unpacked
// by setup --for-tests under the user cache, src/local/compat-qemu.ts), the other the system's
// QEMU 10. A running guest pinned to the machine type both know (pc-i440fx-7.2) migrates live
// 7.2 -> 10 and back, and an image saved on the 7.2 host restores on the 10 host; each time
// the random bytes written into guest RAM come back byte for byte, and /proc shows which
// binary ran the guest at each step.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readInventory } from '../src/cli/inventory.js';
import type { DomainInfo } from '../src/common/domain-types.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { compatQemu, compatQemuHostEnv, compatQemuPresent } from '../src/local/compat-qemu.js';
import { waitFor } from '../src/support/wait.js';
import { which } from '../src/support/which.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { waitGuestIdle, writeIdleKernel } from './helpers/idle-kernel.js';
import { domainOf, startMigration } from './helpers/migration.js';
import { runJob } from './helpers/save.js';

const cluster = new TestCluster();
const OLD = 'xv-72';
const NEW = 'xv-10';
const MACHINE = 'pc-i440fx-7.2';
const MiB = 1024 * 1024;
const FILL = 96 * MiB;
const q72 = compatQemu();
const q10 = which('qemu-system-x86_64')!;
let idleKernel: string;

const ports = (min: number): Record<string, string> => ({ VMFERRY_HOST_MIGRATION_PORT_MIN: String(min), VMFERRY_HOST_MIGRATION_PORT_MAX: String(min + 7) });

beforeAll(async () => {
  if (!compatQemuPresent(q72)) throw new Error(`no QEMU 7.2 under ${q72.dir}: run \`npm run setup -- --for-tests\``);
  await cluster.connect();
  await Promise.all([
    cluster.startHost(OLD, { ...compatQemuHostEnv(q72), ...ports(49400) }),
    // Whatever the run's environment says, this one is the system's QEMU with its own defaults.
    cluster.startHost(NEW, {
      VMFERRY_QEMU_BINARY: q10,
      VMFERRY_HOST_EMULATORS: q10,
      VMFERRY_QEMU_MODULE_DIR: '',
      VMFERRY_QEMU_FIRMWARE_DIRS: '',
      ...ports(49408),
    }),
    cluster.startControl(),
  ]);
  idleKernel = join(cluster.root, 'idle-kernel.bin');
  writeIdleKernel(idleKernel);
});

afterAll(async () => {
  await cluster.removeAllDomains([OLD, NEW]);
  await cluster.stop();
});

/** What the host reports of its QEMU (its inventory, once the probe is in). */
async function hostQemu(host: string): Promise<{ version: string; binary: string; machines: string[] }> {
  const q = await waitFor(
    `${host}'s probed QEMU in its inventory`,
    async () => (await readInventory(cluster.client, host).catch(() => undefined))?.hostInfo.qemu,
    {
      timeoutMs: 30_000,
      intervalMs: 200,
    },
  );
  return { version: q.version, binary: q.binary, machines: q.machines };
}

/** The binary a running guest's QEMU was started from. */
const exeOf = (dom: DomainInfo): string => readlinkSync(`/proc/${dom.pid}/exe`);
/** Its module directory (environment) and firmware directories (the -L options in front of its arguments). */
function pathsOf(dom: DomainInfo): { moduleDir?: string; firmwareDirs: string[] } {
  const env = readFileSync(`/proc/${dom.pid}/environ`, 'latin1').split('\0');
  const argv = readFileSync(`/proc/${dom.pid}/cmdline`, 'latin1').split('\0');
  const firmwareDirs: string[] = [];
  for (let i = 1; argv[i] === '-L'; i += 2) firmwareDirs.push(argv[i + 1]!);
  const moduleDir = env.find((e) => e.startsWith('QEMU_MODULE_DIR='))?.slice('QEMU_MODULE_DIR='.length);
  return { ...(moduleDir !== undefined ? { moduleDir } : {}), firmwareDirs };
}

async function dumpxml(host: string, name: string): Promise<string> {
  return ((await cluster.op(host, { op: 'dumpxml', name })) as { xml: string }).xml;
}

describe('QEMU 7.2 and QEMU 10 hosts in one cluster', () => {
  it('each host probed its own QEMU, and both know the pinned machine type', async () => {
    const [old, cur] = await Promise.all([hostQemu(OLD), hostQemu(NEW)]);
    expect(old.version).toMatch(/^7\.2\./);
    expect(cur.version).toMatch(/^(1\d|[2-9]\d)\./);
    expect(old.binary).toBe(q72.binary);
    for (const q of [old, cur]) expect(q.machines).toContain(MACHINE);
  });

  it(`migrates a running ${MACHINE} guest live 7.2 -> 10 and back, RAM equal; restores a 7.2 save image on 10, RAM equal`, async () => {
    const name = 'xv1';
    const uuid = randomUUID();
    await cluster.op(OLD, { op: 'define', xml: guestXml({ name, uuid, memoryMiB: 128, kernel: idleKernel, machine: MACHINE }) });
    const started = domainOf(await cluster.op(OLD, { op: 'start', name }));
    expect(exeOf(started)).toBe(q72.binary);
    expect(pathsOf(started)).toEqual({ moduleDir: q72.moduleDir, firmwareDirs: q72.firmwareDirs });
    await waitGuestIdle(started.memoryBackingFile!);
    fillRandom(started.memoryBackingFile!, FILL);
    const before = hashRange(started.memoryBackingFile!, FILL);

    const up = await (
      await startMigration(cluster.client, { domain: name, domainUuid: uuid, sourceHost: OLD, destinationHost: NEW, flags: ['live'] })
    ).result();
    expect(up.destination).toMatchObject({ state: 'running', host: NEW });
    const on10 = domainOf(await cluster.op(NEW, { op: 'info', name }));
    expect(exeOf(on10)).toBe(q10);
    expect(pathsOf(on10)).toEqual({ firmwareDirs: [] });
    expect(hashRange(on10.memoryBackingFile!, FILL)).toBe(before);
    // The guest keeps its machine: QEMU 10's `pc` would be a newer one.
    expect(await dumpxml(NEW, name)).toContain(`machine='${MACHINE}'`);

    const down = await (
      await startMigration(cluster.client, { domain: name, domainUuid: uuid, sourceHost: NEW, destinationHost: OLD, flags: ['live'] })
    ).result();
    expect(down.destination).toMatchObject({ state: 'running', host: OLD });
    const back = domainOf(await cluster.op(OLD, { op: 'info', name }));
    expect(exeOf(back)).toBe(q72.binary);
    expect(hashRange(back.memoryBackingFile!, FILL)).toBe(before);

    // Saved by QEMU 7.2, restored by QEMU 10.
    const images = join(cluster.root, 'images');
    mkdirSync(images);
    const path = join(images, `${name}.img`);
    const saved = await runJob<SaveResult>(cluster.client, 'save', uuid, { host: OLD, name, path, format: 'raw' });
    expect(saved).toMatchObject({ name, path });
    expect(domainOf(await cluster.op(OLD, { op: 'info', name }))).toMatchObject({ state: 'shutoff' });
    await cluster.op(OLD, { op: 'undefine', name });
    const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: NEW, path });
    expect(restored.domain).toMatchObject({ name, uuid, state: 'running' });
    expect(exeOf(restored.domain)).toBe(q10);
    expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
    expect(await dumpxml(NEW, name)).toContain(`machine='${MACHINE}'`);
    await cluster.op(NEW, { op: 'destroy', name });
  });
});
