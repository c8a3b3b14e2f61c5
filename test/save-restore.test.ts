// Save to file, restore and managed save through Temporal on a real host worker
// with real QEMU: guest RAM filled with random bytes must come back byte for
// byte, in the run state asked for; bad input is refused with a typed error
// before the VM or any file is touched.
import {
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  closeSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  writeSync,
  readFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import type { ManagedSaveState, RestoreResult, SaveImageXmlResult, SaveResult } from '../src/common/save-types.js';
import { readSaveHeader } from '../src/saveimage/header.js';
import { which } from '../src/support/which.js';
import { cachedProbe } from '../src/qemu/probe.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { waitGuestIdle, writeIdleKernel } from './helpers/idle-kernel.js';
import { guestXml } from './helpers/guest-xml.js';
import { failureOf, magicOf, runJob, startJob } from './helpers/save.js';

const cluster = new TestCluster();
const HOST = 'sr-a';
/** A host whose PATH has no compressors at all, and whose QEMU acts as if it had no mapped-ram. */
const BARE_HOST = 'sr-bare';
const FILL = 32 * 1024 * 1024;
let images: string;
let idleKernel: string;
/** Whether the run's QEMU can write libvirt's sparse format. */
let hasMappedRam = false;

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

async function info(name: string, host = HOST): Promise<DomainInfo> {
  return domainOf(await cluster.op(host, { op: 'info', name }));
}

async function startGuest(name: string, extraDevices?: string, host = HOST): Promise<DomainInfo> {
  await cluster.op(host, { op: 'define', xml: guestXml({ name, memoryMiB: 64, extraDevices, kernel: idleKernel }) });
  const dom = domainOf(await cluster.op(host, { op: 'start', name }));
  // Firmware still running would change the range between the hash and the save.
  await waitGuestIdle(dom.memoryBackingFile!);
  fillRandom(dom.memoryBackingFile!, FILL);
  return dom;
}

async function removeGuest(name: string, host = HOST): Promise<void> {
  if ((await info(name, host)).state !== 'shutoff') await cluster.op(host, { op: 'destroy', name });
  await cluster.op(host, { op: 'undefine', name });
}

async function imageXml(path: string, xml?: string): Promise<SaveImageXmlResult> {
  return (await cluster.client.workflow.execute('saveImageXml', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: `sr-image-xml-${Date.now()}-${Math.random()}`,
    args: [xml === undefined ? { host: HOST, op: 'dumpxml', path } : { host: HOST, op: 'define', path, xml }],
  })) as SaveImageXmlResult;
}

/** SHA-256 of a file from `offset` to its end: the image's memory stream. */
async function streamHash(path: string, offset: number): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { start: offset })) h.update(chunk as Buffer);
  return h.digest('hex');
}

beforeAll(async () => {
  await cluster.connect();
  // The bare host finds QEMU by absolute path and nothing else in its PATH.
  const emptyBin = join(cluster.root, 'empty-bin');
  mkdirSync(emptyBin);
  symlinkSync(which('mkfifo')!, join(emptyBin, 'mkfifo'));
  await Promise.all([
    cluster.startHost(HOST),
    // The run's QEMU: the compatibility lane's (scripts/test-lanes.ts) when it names one.
    cluster.startHost(BARE_HOST, {
      PATH: emptyBin,
      VMFERRY_QEMU_BINARY: process.env.VMFERRY_QEMU_BINARY ?? which('qemu-system-x86_64')!,
      VMFERRY_HOST_QEMU_HIDE: 'capability:mapped-ram',
    }),
    cluster.startControl(),
  ]);
  images = join(cluster.root, 'images');
  mkdirSync(images);
  idleKernel = join(cluster.root, 'idle-kernel.bin');
  writeIdleKernel(idleKernel);
  // The host worker's own probe (cached in its state directory): QEMU 7.2 (the compatibility lane) has no mapped-ram.
  const qemu = process.env.VMFERRY_QEMU_BINARY ?? which('qemu-system-x86_64')!;
  const probe = await cachedProbe(qemu, cluster.root, { cacheDir: join(cluster.hosts.get(HOST)!.baseDir, 'state') });
  hasMappedRam = probe.migration.migrationCapabilities.includes('mapped-ram');
});

afterAll(async () => {
  for (const host of [HOST, BARE_HOST]) {
    const list = await cluster.op(host, { op: 'list' }).catch(() => undefined);
    if (list && 'domains' in list) {
      for (const d of list.domains) if (d.state !== 'shutoff') await cluster.op(host, { op: 'destroy', name: d.name }).catch(() => undefined);
    }
  }
  await cluster.stop();
});

describe('save and restore', () => {
  const cases = [
    // format, suspend before the save, restore override, expected state after restore
    { format: 'raw', suspend: false, override: {}, expected: 'running' },
    { format: 'gzip', suspend: true, override: { running: true }, expected: 'running' },
    { format: 'zstd', suspend: false, override: { paused: true }, expected: 'paused' },
    // --bypass-cache: dd with O_DIRECT writes and reads the image, with and without a compressor.
    { format: 'raw', suspend: false, override: {}, expected: 'running', bypassCache: true },
    { format: 'zstd', suspend: false, override: {}, expected: 'running', bypassCache: true },
    // libvirt 11's sparse format: QEMU's mapped-ram stream written and read by N multifd channels
    // (--parallel-channels alone implies it); with --bypass-cache through QEMU's direct-io. On a QEMU without
    // mapped-ram (the compatibility lane's 7.2) each of these asserts the ConfigUnsupported refusal instead.
    { format: 'sparse', suspend: false, override: {}, expected: 'running', channels: 1 },
    { format: 'sparse', suspend: true, override: {}, expected: 'paused', channels: 2 },
    { format: 'sparse', suspend: false, override: {}, expected: 'running', channels: 4, bypassCache: true },
  ] as const;
  for (const c of cases) {
    const direct = 'bypassCache' in c;
    const channels = 'channels' in c ? c.channels : undefined;
    const how = `${direct ? ' bypassing the page cache' : ''}${channels ? ` with ${channels} parallel channels` : ''}`;
    it(`round-trips random guest RAM through a ${c.format} image${how} (saved ${c.suspend ? 'paused' : 'running'}, restored ${c.expected})`, async () => {
      const name = `sr-${c.format}${direct ? '-direct' : ''}${channels ? `-${channels}` : ''}`;
      const dom = await startGuest(name);
      if (c.suspend) await cluster.op(HOST, { op: 'suspend', name });
      const before = hashRange(dom.memoryBackingFile!, FILL);
      const path = join(images, `${name}.img`);

      // The channel count alone asks for a sparse image when there are several channels; one channel names the format.
      const asked = channels === undefined ? { format: c.format } : channels > 1 ? { parallelChannels: channels } : { format: c.format };
      if (c.format === 'sparse' && !hasMappedRam) {
        // A QEMU without mapped-ram (7.2): refused before the guest is paused, naming what is missing.
        const refused = await failureOf(runJob(cluster.client, 'save', dom.uuid, { host: HOST, name, path, ...asked, bypassCache: direct }));
        expect(refused.type).toBe('ConfigUnsupported');
        expect(refused.message).toMatch(/lacks migration capability 'mapped-ram'/);
        expect(await info(name)).toMatchObject({ state: c.suspend ? 'paused' : 'running', pid: dom.pid });
        expect(existsSync(path)).toBe(false);
        await removeGuest(name);
        return;
      }
      const saved = await runJob<SaveResult>(cluster.client, 'save', dom.uuid, { host: HOST, name, path, ...asked, bypassCache: direct });
      expect(saved).toMatchObject({ name, uuid: dom.uuid, path, format: c.format });
      const header = await readSaveHeader(path);
      expect(header).toMatchObject({ complete: true, version: 2, format: c.format, wasRunning: !c.suspend });
      expect(header.streamOffset % 4096).toBe(0);
      expect(await info(name)).toMatchObject({ state: 'shutoff' });
      expect(existsSync(dom.memoryBackingFile!)).toBe(false);

      if (channels !== undefined) {
        // Each page sits at its own offset: the image is as large as the guest's RAM (64 MiB), whatever was written.
        expect(saved.sizeBytes).toBeGreaterThan(64 * 1024 * 1024);
        expect(saved.streamBytes).toBeGreaterThanOrEqual(FILL);
      }
      const restored = await runJob<RestoreResult>(cluster.client, 'restore', dom.uuid, {
        host: HOST,
        path,
        bypassCache: direct,
        ...(channels !== undefined ? { parallelChannels: channels } : {}),
        ...c.override,
      });
      expect(restored.domain).toMatchObject({ name, uuid: dom.uuid, state: c.expected });
      expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
      // A restore leaves the image in place (only a managed save is consumed).
      expect(magicOf(path)).toBe('LibvirtQemudSave');
      await removeGuest(name);

      if (c.format === 'raw' && !direct) {
        // The same image marked partial, as a save cut short leaves it: refused, nothing started.
        const part = join(images, 'partial.img');
        copyFileSync(path, part);
        const fd = openSync(part, 'r+');
        writeSync(fd, Buffer.from('LibvirtQemudPart', 'latin1'), 0, 16, 0);
        closeSync(fd);
        const refused = await failureOf(runJob(cluster.client, 'restore', dom.uuid, { host: HOST, path: part }));
        expect(refused.type).toBe('OperationInvalid');
        expect(refused.message).toMatch(/incomplete/);
        expect((await cluster.op(HOST, { op: 'list' })) as unknown).toMatchObject({ domains: [] });
        rmSync(part);
      }
      rmSync(path);
    });
  }

  it('restores with an ABI-compatible alternative XML, refuses an incompatible one, and edits the XML inside the image without touching its stream', async () => {
    const name = 'sr-xml';
    const disks = ['a', 'b', 'c'].map((d) => join(images, `disk-${d}.raw`));
    for (const d of disks) writeFileSync(d, Buffer.alloc(1024 * 1024));
    const disk = (file: string): string =>
      `\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='${file}'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>`;
    const dom = await startGuest(name, disk(disks[0]!));
    const before = hashRange(dom.memoryBackingFile!, FILL);
    const path = join(images, `${name}.img`);
    await runJob<SaveResult>(cluster.client, 'save', dom.uuid, { host: HOST, name, path, format: 'raw' });

    const { xml } = await imageXml(path);
    expect(xml).toContain(disks[0]);
    const { streamOffset } = await readSaveHeader(path);
    const stream = await streamHash(path, streamOffset);

    const bigger = xml.replace(/<memory( unit='[^']*')?>[^<]*<\/memory>/, "<memory unit='MiB'>128</memory>");
    expect(bigger).not.toBe(xml);
    const refused = await failureOf(runJob(cluster.client, 'restore', dom.uuid, { host: HOST, path, xml: bigger }));
    expect(refused.type).toBe('ConfigUnsupported');
    expect(refused.message).toMatch(/memory/);
    const renamed = await failureOf(
      runJob(cluster.client, 'restore', dom.uuid, { host: HOST, path, xml: xml.replace(`<name>${name}</name>`, '<name>sr-other</name>') }),
    );
    expect(renamed.type).toBe('OperationInvalid');
    expect((await info(name)).state).toBe('shutoff');

    const defined = await imageXml(path, xml.replace(disks[0]!, disks[1]!));
    expect(defined.xml).toContain(disks[1]);
    expect((await imageXml(path)).xml).toContain(disks[1]);
    expect(await readSaveHeader(path)).toMatchObject({ complete: true, streamOffset });
    expect(await streamHash(path, streamOffset)).toBe(stream);
    const badDefine = await failureOf(
      cluster.client.workflow.execute('saveImageXml', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: `sr-bad-define-${Date.now()}`,
        args: [{ host: HOST, op: 'define', path, xml: bigger }],
      }),
    );
    expect(badDefine.type).toBe('ConfigUnsupported');

    const restored = await runJob<RestoreResult>(cluster.client, 'restore', dom.uuid, { host: HOST, path, xml: xml.replace(disks[0]!, disks[2]!) });
    expect(restored.domain.state).toBe('running');
    const live = (await cluster.op(HOST, { op: 'dumpxml', name })) as { xml: string };
    expect(live.xml).toContain(disks[2]);
    expect(live.xml).not.toContain(disks[1]);
    expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
    await removeGuest(name);
    for (const f of [...disks, path]) rmSync(f);
  });

  it('managed save keeps the image on the host; managed start restores from it and removes it; removal drops it', async () => {
    const name = 'sr-managed';
    const dom = await startGuest(name);
    const before = hashRange(dom.memoryBackingFile!, FILL);
    const saved = await runJob<SaveResult>(cluster.client, 'managedSave', dom.uuid, { host: HOST, name, format: 'zstd' });
    const stateDir = join(cluster.hosts.get(HOST)!.baseDir, 'state');
    expect(saved.path).toBe(join(stateDir, 'save', `${name}.save`));
    expect(magicOf(saved.path)).toBe('LibvirtQemudSave');
    expect((await info(name)).state).toBe('shutoff');

    const started = await runJob<RestoreResult>(cluster.client, 'managedStart', dom.uuid, { host: HOST, name });
    expect(started.domain).toMatchObject({ name, state: 'running' });
    expect(started.bootedFresh).toBeUndefined();
    expect(hashRange(started.domain.memoryBackingFile!, FILL)).toBe(before);
    expect(existsSync(saved.path)).toBe(false);

    await runJob<SaveResult>(cluster.client, 'managedSave', dom.uuid, { host: HOST, name });
    const removed = (await cluster.client.workflow.execute('managedSaveRemove', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: `sr-msr-${Date.now()}`,
      args: [{ host: HOST, name }],
    })) as ManagedSaveState;
    expect(removed).toMatchObject({ removed: true, exists: false });
    expect(existsSync(saved.path)).toBe(false);
    const fresh = await runJob<RestoreResult>(cluster.client, 'managedStart', dom.uuid, { host: HOST, name, paused: true });
    expect(fresh).toMatchObject({ bootedFresh: true, domain: { state: 'paused' } });

    // A transient domain has no managed save.
    await cluster.op(HOST, { op: 'undefine', name });
    const transient = await failureOf(runJob(cluster.client, 'managedSave', dom.uuid, { host: HOST, name }));
    expect(transient.type).toBe('OperationInvalid');
    await cluster.op(HOST, { op: 'destroy', name });
  });

  it('refuses bad input with a typed error and leaves the VM and the files alone', async () => {
    const name = 'sr-bad';
    const dom = await startGuest(name);
    const before = hashRange(dom.memoryBackingFile!, FILL);
    const existing = join(images, 'existing.img');
    writeFileSync(existing, 'not an image');
    const save = (input: Record<string, unknown>) => failureOf(runJob(cluster.client, 'save', dom.uuid, { host: HOST, name, ...input }));
    const restore = (path: string) => failureOf(runJob(cluster.client, 'restore', dom.uuid, { host: HOST, path }));

    for (const [input, pattern] of [
      [{ path: 'relative.img' }, /not absolute/],
      [{ path: `${images}/../x.img` }, /'\.\.'/],
      [{ path: existing }, /already exists/],
      [{ path: images }, /is a directory/],
      [{ path: join(images, 'no-such-dir', 'x.img') }, /does not exist/],
      [{ path: join(images, 'x.img'), format: 'lz77' }, /unknown save image format/],
      [{ path: join(images, 'x.img'), parallelChannels: 0 }, /parallel channels must be a whole number from 1 to 255/],
      [{ path: join(images, 'x.img'), parallelChannels: 2.5 }, /parallel channels must be a whole number/],
    ] as const) {
      const f = await save(input);
      expect(f.type, JSON.stringify(input)).toBe('OperationInvalid');
      expect(f.message).toMatch(pattern);
    }
    // Compression stays on the classic stream, as libvirt: a compressor with parallel channels is refused.
    const zstdParallel = await save({ path: join(images, 'x.img'), format: 'zstd', parallelChannels: 2 });
    expect(zstdParallel.type).toBe('ConfigUnsupported');
    expect(zstdParallel.message).toMatch(/parallel channels need the sparse image format; the zstd format/);
    expect(readFileSync(existing, 'utf8')).toBe('not an image');

    // A valid image, then broken copies of it.
    const good = join(images, 'good.img');
    await runJob<SaveResult>(cluster.client, 'save', dom.uuid, { host: HOST, name, path: good });
    const restored = await runJob<RestoreResult>(cluster.client, 'restore', dom.uuid, { host: HOST, path: good });
    expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
    const pid = restored.domain.pid;
    const broken = (label: string, edit: (path: string) => void): string => {
      const p = join(images, `${label}.img`);
      copyFileSync(good, p);
      edit(p);
      return p;
    };
    const patch = (offset: number, bytes: Buffer) => (p: string) => {
      const fd = openSync(p, 'r+');
      writeSync(fd, bytes, 0, bytes.length, offset);
      closeSync(fd);
    };
    const u32 = (v: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v);
      return b;
    };
    for (const [p, pattern] of [
      [broken('truncated', (x) => truncateSync(x, 50)), /truncated/],
      [broken('corrupt', patch(0, Buffer.from('NotASaveImage!!!'))), /not a libvirt QEMU save image/],
      [broken('datalen', (x) => truncateSync(x, 4096)), /truncated: header says the XML area is/],
      [broken('hugelen', patch(20, u32(0xfffffff0))), /above the .*limit/],
      [images, /is a directory/],
      ['relative.img', /not absolute/],
    ] as const) {
      const f = await restore(p);
      expect(f.type, p).toBe('OperationInvalid');
      expect(f.message).toMatch(pattern);
    }
    // Channels read only a sparse image.
    const classicParallel = await failureOf(runJob(cluster.client, 'restore', dom.uuid, { host: HOST, path: good, parallelChannels: 2 }));
    expect(classicParallel.type).toBe('ConfigUnsupported');
    expect(classicParallel.message).toMatch(/parallel channels read only a sparse image; .* is a raw image/);
    // A restore of a domain that runs already: never two copies.
    const twice = await restore(good);
    expect(twice.type).toBe('OperationInvalid');
    expect(twice.message).toMatch(/already running/);

    // The managed-save image of one domain holding another domain's XML.
    await cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'sr-other', memoryMiB: 64 }) });
    const otherUuid = (await info('sr-other')).uuid;
    const stateDir = join(cluster.hosts.get(HOST)!.baseDir, 'state');
    mkdirSync(join(stateDir, 'save'), { recursive: true });
    copyFileSync(good, join(stateDir, 'save', 'sr-other.save'));
    const foreign = await failureOf(runJob(cluster.client, 'managedStart', otherUuid, { host: HOST, name: 'sr-other' }));
    expect(foreign.type).toBe('OperationInvalid');
    expect(foreign.message).toMatch(/holds domain 'sr-bad'/);
    expect((await info('sr-other')).state).toBe('shutoff');
    await cluster.op(HOST, { op: 'undefine', name: 'sr-other' });
    rmSync(join(stateDir, 'save', 'sr-other.save'));

    // The VM is untouched by all of it.
    expect(await info(name)).toMatchObject({ state: 'running', pid });
    expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
    expect(readdirSync(images).sort()).toEqual(['corrupt.img', 'datalen.img', 'existing.img', 'good.img', 'hugelen.img', 'truncated.img']);
    for (const f of readdirSync(images)) rmSync(join(images, f));
    await removeGuest(name);
  });

  it('reports a missing compressor, or a QEMU feature the format needs, before the guest is paused', async () => {
    const name = 'sr-nozstd';
    const dom = await startGuest(name, undefined, BARE_HOST);
    const handle = await startJob(cluster.client, 'save', dom.uuid, { host: BARE_HOST, name, path: join(images, 'never.img'), format: 'zstd' });
    const f = await failureOf(handle.result());
    expect(f.type).toBe('ConfigUnsupported');
    expect(f.message).toMatch(/'zstd'.*not installed/);
    expect(await info(name, BARE_HOST)).toMatchObject({ state: 'running', reason: 'booted' });
    expect(existsSync(join(images, 'never.img'))).toBe(false);

    // A QEMU without mapped-ram (hidden from this host's probe): a sparse save is refused, naming what is missing.
    const sparse = await failureOf(runJob(cluster.client, 'save', dom.uuid, { host: BARE_HOST, name, path: join(images, 'never.img'), parallelChannels: 2 }));
    expect(sparse.type).toBe('ConfigUnsupported');
    expect(sparse.message).toMatch(/cannot save a sparse image: its QEMU .* lacks migration capability 'mapped-ram'/);
    expect(await info(name, BARE_HOST)).toMatchObject({ state: 'running', reason: 'booted' });
    expect(existsSync(join(images, 'never.img'))).toBe(false);
    await removeGuest(name, BARE_HOST);
  });
});
