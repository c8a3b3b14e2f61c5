// libvirt interoperability of save images, against the libvirt installed here
// (11.3 from bookworm-backports; a private session-mode libvirtd, see
// helpers/libvirt.ts): an image `virsh save` wrote restores under vmferry, and one
// vmferry wrote restores under `virsh restore`, raw and gzip (libvirt's format from
// qemu.conf), zstd and sparse (virsh's --image-format; sparse with
// --parallel-channels), with the guest's random RAM byte for byte equal and the
// guest running. One guest keeps the USB controller libvirt adds by
// default (piix3-uhci at 00:01.2). libvirt leaves that default out of the
// image's XML, so vmferry reads a pc domain without a USB controller element as
// libvirt does (default piix3-uhci, built at the same address) and the stream's
// 'uhci' section loads; that guest stays paused from the fill to the hash. The
// other guests have model='none' (no USB). One guest has a NIC (user, virtio),
// vga video, a virtio tablet, a virtio-serial guest agent channel and a virtio
// disk: defined and started by libvirt, it comes back under vmferry with every
// PCI device in QEMU (query-pci) at the slot libvirt's XML gives it, and goes
// back to libvirt through a vmferry save. It boots the idle kernel, so nothing
// in the guest drives those devices while its RAM is filled and hashed.
import { chownSync, existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { parseDomainXml, type DeviceAddress } from '../src/domain/index.js';
import { loadHostConfig } from '../src/host/host-config.js';
import { HostRuntime } from '../src/host/host-runtime.js';
import { readSaveHeader } from '../src/saveimage/header.js';
import { isProcessAlive } from '../src/support/proc.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { fillRandom, hashRange } from './helpers/guest-memory.js';
import { guestXml } from './helpers/guest-xml.js';
import { waitGuestIdle, writeIdleKernel } from './helpers/idle-kernel.js';
import { LibvirtDaemon, libvirtMissing } from './helpers/libvirt.js';
import { magicOf, runJob } from './helpers/save.js';
import pino from 'pino';

const cluster = new TestCluster();
const HOST = 'sv-lv-host';
const FILL = 32 * 1024 * 1024;

/**
 * The idle kernel in a folder libvirt's user can read: every guest here boots it and the test
 * waits for it before filling RAM, so no firmware runs while the range is written and hashed.
 */
function idleKernelIn(images: string): string {
  const kernel = join(images, 'idle-kernel');
  if (!existsSync(kernel)) {
    writeIdleKernel(kernel);
    chownSync(kernel, daemon.user.uid, daemon.user.gid);
  }
  return kernel;
}
let lvRoot: string;
let daemon: LibvirtDaemon;

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

/** The devices of the interop guest; the disk and kernel are files libvirt's user owns. */
function devicesXml(disk: string): string {
  return `
    <interface type='user'>
      <model type='virtio'/>
    </interface>
    <video>
      <model type='vga' vram='16384' heads='1' primary='yes'/>
    </video>
    <input type='tablet' bus='virtio'/>
    <controller type='virtio-serial' index='0'/>
    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>`;
}

/** "slot.function" -> "vendor:device" of every PCI device a domain XML places (all on bus 0). */
function pciInXml(xml: string): Record<string, string> {
  const d = parseDomainXml(xml).devices;
  const out: Record<string, string> = {};
  const put = (a: DeviceAddress | undefined, id: string, what: string) => {
    if (a?.type !== 'pci') throw new Error(`${what} has no PCI address in libvirt's XML`);
    out[`${Number(a.slot)}.${Number(a.function ?? 0)}`] = id;
  };
  d.interfaces?.forEach((n) => put(n.address, '1af4:1000', 'interface'));
  d.disks.forEach((k) => put(k.address, '1af4:1001', `disk ${k.target.dev}`));
  d.controllers?.filter((c) => c.type === 'virtio-serial').forEach((c) => put(c.address, '1af4:1003', 'virtio-serial controller'));
  d.videos?.forEach((v) => put(v.address, '1234:1111', 'video'));
  d.inputs?.filter((x) => x.bus === 'virtio').forEach((x) => put(x.address, '1af4:1052', `input ${x.type}`));
  return out;
}

interface PciDevice {
  slot: number;
  function: number;
  id: { vendor: number; device: number };
}

/** The same map from QEMU's query-pci, leaving out the i440FX chipset's own functions (slot 0 and 1). */
async function pciInQemu(rt: HostRuntime, name: string): Promise<Record<string, string>> {
  const buses = await rt.requireRunning(name).qmp.execute<{ bus: number; devices: PciDevice[] }[]>('query-pci');
  const hex = (n: number) => n.toString(16).padStart(4, '0');
  const out: Record<string, string> = {};
  for (const b of buses) {
    expect(b.bus).toBe(0);
    for (const p of b.devices) if (p.slot > 1) out[`${p.slot}.${p.function}`] = `${hex(p.id.vendor)}:${hex(p.id.device)}`;
  }
  return out;
}

describe('save images shared with libvirt', () => {
  beforeAll(async () => {
    // Not skipped when missing: setup --for-tests installs it, and a skip would hide the gap.
    const missing = libvirtMissing();
    if (missing) throw new Error(`libvirt interoperability cannot be tested: ${missing}`);
    await cluster.connect();
    await Promise.all([cluster.startHost(HOST), cluster.startControl()]);
    lvRoot = mkdtempSync('/tmp/sv-lv-');
    daemon = new LibvirtDaemon(lvRoot);
  });

  afterAll(async () => {
    await daemon?.stop();
    await cluster.removeAllDomains([HOST]);
    await cluster.stop();
    if (lvRoot) rmSync(lvRoot, { recursive: true, force: true });
  });

  for (const format of ['raw', 'gzip'] as const) {
    describe(format, () => {
      beforeAll(async () => {
        await daemon.start(format);
      });

      afterAll(async () => {
        // Whatever a failed case left running under libvirt goes before the daemon does.
        for (const name of daemon.virsh('list', '--name').split('\n').filter(Boolean)) daemon.virsh('destroy', name);
        await daemon.stop();
      });

      it(`virsh save (${format}) -> vmferry restore`, async () => {
        const name = `sv-lv-in-${format}`;
        const images = daemon.ownedDir('images');
        const xmlFile = join(images, `${name}.xml`);
        writeFileSync(xmlFile, guestXml({ name, memoryMiB: 64, kernel: idleKernelIn(images) }));
        chownSync(xmlFile, daemon.user.uid, daemon.user.gid);
        daemon.virsh('create', xmlFile);
        await waitFor(`${name} running under libvirt`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
        const uuid = daemon.virsh('domuuid', name).trim();
        const libvirtQemu = daemon.qemuPid(name);
        const ram = daemon.memoryFile(name);
        await waitGuestIdle(ram);
        fillRandom(ram, FILL);
        const before = hashRange(ram, FILL);

        const path = join(images, `${name}.img`);
        daemon.virsh('save', name, path);
        expect(magicOf(path)).toBe('LibvirtQemudSave');
        expect((await readSaveHeader(path)).format).toBe(format);
        await waitFor('the saved QEMU gone', () => !isProcessAlive(libvirtQemu), { timeoutMs: 10_000, intervalMs: 50 });

        const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: HOST, path });
        expect(restored.domain).toMatchObject({ name, uuid, state: 'running' });
        expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
        expect(isProcessAlive(restored.domain.pid!)).toBe(true);
        // The guest's CPUs really run after the load: QEMU reports it, not just our status file.
        expect(domainOf(await cluster.op(HOST, { op: 'info', name }))).toMatchObject({ state: 'running' });
        expect(magicOf(path)).toBe('LibvirtQemudSave');
        await cluster.op(HOST, { op: 'destroy', name });
        rmSync(path);
        rmSync(xmlFile);
      });

      if (format === 'raw') {
        it("virsh save -> vmferry restore of a guest with libvirt's default USB controller (piix3-uhci)", async () => {
          const name = 'sv-lv-usb';
          const images = daemon.ownedDir('images');
          const xmlFile = join(images, `${name}.xml`);
          // No <controller type='usb'>: libvirt adds its default one, as for any guest defined through it.
          writeFileSync(xmlFile, guestXml({ name, memoryMiB: 64, usb: true }));
          chownSync(xmlFile, daemon.user.uid, daemon.user.gid);
          daemon.virsh('create', xmlFile);
          await waitFor(`${name} running under libvirt`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
          expect(daemon.virsh('dumpxml', name)).toMatch(/<controller type='usb' index='0' model='piix3-uhci'>/);
          const uuid = daemon.virsh('domuuid', name).trim();
          const libvirtQemu = daemon.qemuPid(name);
          const ram = daemon.memoryFile(name);
          // Paused from the fill to the hash after restore: SeaBIOS runs the UHCI controller, whose DMA
          // keeps writing guest memory while the CPUs run.
          daemon.virsh('suspend', name);
          await waitFor(`${name} paused under libvirt`, () => daemon.domState(name) === 'paused', { timeoutMs: 30_000 });
          fillRandom(ram, FILL);
          const before = hashRange(ram, FILL);

          const path = join(images, `${name}.img`);
          daemon.virsh('save', name, path);
          // libvirt leaves its default controller out of the image's XML; the stream still carries its state.
          expect((await readSaveHeader(path)).domainXml).not.toMatch(/type='usb'/);
          await waitFor('the saved QEMU gone', () => !isProcessAlive(libvirtQemu), { timeoutMs: 10_000, intervalMs: 50 });

          const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: HOST, path });
          expect(restored.domain).toMatchObject({ name, uuid, state: 'paused' });
          expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
          expect(isProcessAlive(restored.domain.pid!)).toBe(true);
          // The loaded controller runs once the CPUs do.
          expect(domainOf(await cluster.op(HOST, { op: 'resume', name }))).toMatchObject({ state: 'running' });
          await cluster.op(HOST, { op: 'destroy', name });
          rmSync(path);
          rmSync(xmlFile);
        });

        it("a guest with a NIC, video, input, a channel and a disk: virsh save -> vmferry restore (at libvirt's PCI addresses) -> vmferry save -> virsh restore", async () => {
          const name = 'sv-lv-dev';
          const images = daemon.ownedDir('images');
          const disk = join(images, `${name}.raw`);
          const kernel = join(images, 'idle-kernel');
          writeFileSync(disk, '');
          truncateSync(disk, 8 * 1024 * 1024);
          writeIdleKernel(kernel);
          const xmlFile = join(images, `${name}.xml`);
          writeFileSync(xmlFile, guestXml({ name, memoryMiB: 64, kernel, extraDevices: devicesXml(disk) }));
          for (const f of [disk, kernel, xmlFile]) chownSync(f, daemon.user.uid, daemon.user.gid);
          daemon.virsh('define', xmlFile);
          daemon.virsh('start', name);
          await waitFor(`${name} running under libvirt`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
          const uuid = daemon.virsh('domuuid', name).trim();
          const libvirtQemu = daemon.qemuPid(name);
          const ram = daemon.memoryFile(name);
          await waitGuestIdle(ram);
          fillRandom(ram, FILL);
          const before = hashRange(ram, FILL);

          const path = join(images, `${name}.img`);
          daemon.virsh('save', name, path);
          await waitFor('the saved QEMU gone', () => !isProcessAlive(libvirtQemu), { timeoutMs: 10_000, intervalMs: 50 });
          const libvirtPci = pciInXml((await readSaveHeader(path)).domainXml);
          // Every device of the guest has its slot in libvirt's XML, none shared.
          expect(Object.values(libvirtPci).sort()).toEqual(['1234:1111', '1af4:1000', '1af4:1001', '1af4:1003', '1af4:1052']);

          const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: HOST, path });
          expect(restored.domain).toMatchObject({ name, uuid, state: 'running' });
          expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
          expect(domainOf(await cluster.op(HOST, { op: 'info', name }))).toMatchObject({ state: 'running' });
          rmSync(path);

          // QEMU's own view: the host worker steps aside for a runtime of our own, then comes back.
          const h = cluster.hosts.get(HOST)!;
          await h.worker!.stop();
          h.worker = undefined;
          const rt = new HostRuntime(loadHostConfig({ ...h.env, PATH: process.env.PATH ?? '' }), pino({ level: 'silent' }));
          await rt.reconnectAll();
          try {
            expect(await pciInQemu(rt, name)).toEqual(libvirtPci);
          } finally {
            await rt.detachAll();
            await cluster.startHost(HOST);
          }

          const saved = await runJob<SaveResult>(cluster.client, 'save', uuid, { host: HOST, name, path, format });
          expect(saved.format).toBe(format);
          chownSync(path, daemon.user.uid, daemon.user.gid);
          expect(pciInXml((await readSaveHeader(path)).domainXml)).toEqual(libvirtPci);
          daemon.virsh('restore', path);
          await waitFor(`${name} running under libvirt again`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
          expect(hashRange(daemon.memoryFile(name), FILL)).toBe(before);
          expect(isProcessAlive(daemon.qemuPid(name))).toBe(true);
          daemon.virsh('destroy', name);
          daemon.virsh('undefine', name);

          // The same definition without addresses, defined in vmferry, gets the slots libvirt gave it.
          const def = guestXml({ name, memoryMiB: 64, kernel, extraDevices: devicesXml(disk) });
          await cluster.op(HOST, { op: 'define', xml: def });
          const dumped = await cluster.op(HOST, { op: 'dumpxml', name, inactive: true });
          if (!('xml' in dumped)) throw new Error(`no xml in ${JSON.stringify(dumped)}`);
          expect(pciInXml(dumped.xml)).toEqual(libvirtPci);
          await cluster.op(HOST, { op: 'undefine', name });
          for (const f of [path, xmlFile, disk, kernel]) rmSync(f);
        });
      }

      if (format === 'raw') {
        // libvirt 11.3's own formats: virsh names them with --image-format (sparse: QEMU's mapped-ram through
        // --parallel-channels multifd channels; zstd: the classic stream compressed), whatever qemu.conf says.
        for (const c of [{ image: 'sparse', channels: 2 }, { image: 'zstd' }] as const) {
          const channels = 'channels' in c ? c.channels : undefined;
          it(`virsh save --image-format ${c.image}${channels ? ` --parallel-channels ${channels}` : ''} -> vmferry restore -> vmferry save -> virsh restore`, async () => {
            const name = `sv-lv-${c.image}`;
            const images = daemon.ownedDir('images');
            const xmlFile = join(images, `${name}.xml`);
            writeFileSync(xmlFile, guestXml({ name, memoryMiB: 64, kernel: idleKernelIn(images) }));
            chownSync(xmlFile, daemon.user.uid, daemon.user.gid);
            daemon.virsh('create', xmlFile);
            await waitFor(`${name} running under libvirt`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
            const uuid = daemon.virsh('domuuid', name).trim();
            const libvirtQemu = daemon.qemuPid(name);
            const ram = daemon.memoryFile(name);
            await waitGuestIdle(ram);
            fillRandom(ram, FILL);
            const before = hashRange(ram, FILL);

            const path = join(images, `${name}.img`);
            const parallel = channels ? ['--parallel-channels', String(channels)] : [];
            daemon.virsh('save', name, path, '--image-format', c.image, ...parallel);
            expect(await readSaveHeader(path)).toMatchObject({ complete: true, version: 2, format: c.image });
            await waitFor('the saved QEMU gone', () => !isProcessAlive(libvirtQemu), { timeoutMs: 10_000, intervalMs: 50 });

            const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, {
              host: HOST,
              path,
              ...(channels ? { parallelChannels: channels } : {}),
            });
            expect(restored.domain).toMatchObject({ name, uuid, state: 'running' });
            expect(hashRange(restored.domain.memoryBackingFile!, FILL)).toBe(before);
            rmSync(path);

            const saved = await runJob<SaveResult>(cluster.client, 'save', uuid, {
              host: HOST,
              name,
              path,
              ...(channels ? { parallelChannels: channels } : { format: c.image }),
            });
            expect(saved.format).toBe(c.image);
            chownSync(path, daemon.user.uid, daemon.user.gid);
            daemon.virsh('restore', path, ...parallel);
            await waitFor(`${name} running under libvirt again`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
            expect(daemon.virsh('domuuid', name).trim()).toBe(uuid);
            expect(hashRange(daemon.memoryFile(name), FILL)).toBe(before);
            expect(isProcessAlive(daemon.qemuPid(name))).toBe(true);
            daemon.virsh('destroy', name);
            for (const f of [path, xmlFile]) rmSync(f);
          });
        }
      }

      it(`vmferry save (${format}) -> virsh restore`, async () => {
        const name = `sv-lv-out-${format}`;
        await cluster.op(HOST, { op: 'define', xml: guestXml({ name, memoryMiB: 64, kernel: idleKernelIn(daemon.ownedDir('images')) }) });
        const dom = domainOf(await cluster.op(HOST, { op: 'start', name }));
        await waitGuestIdle(dom.memoryBackingFile!);
        fillRandom(dom.memoryBackingFile!, FILL);
        const before = hashRange(dom.memoryBackingFile!, FILL);

        const images = daemon.ownedDir('images');
        const path = join(images, `${name}.img`);
        const saved = await runJob<SaveResult>(cluster.client, 'save', dom.uuid, { host: HOST, name, path, format });
        expect(saved.format).toBe(format);
        await cluster.op(HOST, { op: 'undefine', name });
        // vmferry writes images 0600 as its own user; libvirt's daemon runs as another.
        chownSync(path, daemon.user.uid, daemon.user.gid);

        daemon.virsh('restore', path);
        await waitFor(`${name} running under libvirt`, () => daemon.domState(name) === 'running', { timeoutMs: 30_000 });
        expect(daemon.virsh('domuuid', name).trim()).toBe(dom.uuid);
        expect(hashRange(daemon.memoryFile(name), FILL)).toBe(before);
        expect(isProcessAlive(daemon.qemuPid(name))).toBe(true);
        daemon.virsh('destroy', name);
        rmSync(path);
      });
    });
  }
});
