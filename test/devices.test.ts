// The devices of issue 13 on real QEMU (TCG): a domain with video, input,
// a virtio-serial channel, rng, watchdog, panic, a virtio, a SATA and a SCSI
// disk and an empty cdrom starts, and QEMU's own view (query-pci, qom-list,
// qom-get, query-block) puts every device where the XML says. Addresses are
// assigned at define, as libvirt assigns them, and stay the same through a save
// and restore and a live migration between two hosts: the destination's QEMU
// loads the stream (it refuses one whose PCI devices sit elsewhere) and shows
// the same slots. cdrom media change on a running domain; bad and conflicting
// addresses refused with typed errors before any QEMU starts.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVmError } from '../src/common/errors.js';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { parseDomainXml, type DeviceAddress, type DomainDef } from '../src/domain/index.js';
import { changeMedia } from '../src/host/change-media.js';
import { loadHostConfig } from '../src/host/host-config.js';
import { HostRuntime } from '../src/host/host-runtime.js';
import { readSaveHeader } from '../src/saveimage/header.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, startMigration } from './helpers/migration.js';
import { runJob } from './helpers/save.js';

const cluster = new TestCluster();
const A = 'dev-a';
const B = 'dev-b';
let images: string;

function devicesXml(dir: string): string {
  const disk = (dev: string, bus: string) =>
    `\n    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='${dir}/${dev}.raw'/>\n      <target dev='${dev}' bus='${bus}'/>\n    </disk>`;
  return (
    disk('vda', 'virtio') +
    disk('sda', 'sata') +
    disk('sdb', 'scsi') +
    `
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <input type='tablet' bus='virtio'/>
    <input type='keyboard' bus='ps2'/>
    <video>
      <model type='vga' vram='16384' heads='1' primary='yes'/>
    </video>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x0a' function='0x0'/>
    </rng>
    <watchdog model='i6300esb' action='pause'/>
    <panic model='isa'/>`
  );
}

function makeImages(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const f of ['vda', 'sda', 'sdb', 'media']) {
    writeFileSync(join(dir, `${f}.raw`), '');
    truncateSync(join(dir, `${f}.raw`), 8 * 1024 * 1024);
  }
}

/** qdev id -> "slot.function" of every PCI device the XML places, by the ids the command line gives them. */
function expectedPci(def: DomainDef): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (id: string, a: DeviceAddress | undefined) => {
    if (a?.type === 'pci') out[id] = `${Number(a.slot)}.${Number(a.function)}`;
  };
  const d = def.devices;
  d.videos?.forEach((v, i) => put(`video${i}`, v.address));
  for (const c of d.controllers ?? []) put(`${c.type}${c.index ?? 0}`, c.address);
  for (const k of d.disks) put(`ua-${k.target.dev}`, k.address);
  d.rngs?.forEach((r, i) => put(`rng${i}`, r.address));
  d.watchdogs?.forEach((w, i) => put(`watchdog${i}`, w.address));
  d.inputs?.forEach((x, i) => put(`input${i}`, x.address));
  return out;
}

interface PciDevice {
  slot: number;
  function: number;
  qdev_id: string;
}

async function pciOf(rt: HostRuntime, name: string): Promise<Record<string, string>> {
  const buses = await rt.requireRunning(name).qmp.execute<{ bus: number; devices: PciDevice[] }[]>('query-pci');
  const out: Record<string, string> = {};
  for (const d of buses.flatMap((b) => b.devices)) if (d.qdev_id) out[d.qdev_id] = `${d.slot}.${d.function}`;
  return out;
}

function localRuntime(name: string, base: string): HostRuntime {
  return new HostRuntime(
    loadHostConfig({ VMFERRY_HOST_NAME: name, VMFERRY_HOST_BASE_DIR: base, VMFERRY_HOST_MEMORY_DIR: join(base, 'mem'), PATH: process.env.PATH ?? '' }),
    pino({ level: 'silent' }),
  );
}

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([
    cluster.startHost(A, { VMFERRY_HOST_MIGRATION_PORT_MIN: '49260', VMFERRY_HOST_MIGRATION_PORT_MAX: '49267' }),
    cluster.startHost(B, { VMFERRY_HOST_MIGRATION_PORT_MIN: '49268', VMFERRY_HOST_MIGRATION_PORT_MAX: '49275' }),
    cluster.startControl(),
  ]);
  images = join(cluster.root, 'images');
  makeImages(images);
});

afterAll(async () => {
  await cluster.removeAllDomains([A]);
  await cluster.stop();
});

describe('devices on real QEMU', () => {
  it('starts with every device where the XML says (query-pci, qom, query-block) and changes cdrom media while running', async () => {
    const base = mkdtempSync(join(tmpdir(), 'vmf-dev-'));
    const rt = localRuntime('dev-local', base);
    const name = 'dev1';
    try {
      rt.define(guestXml({ name, extraDevices: devicesXml(images) }));
      const defined = rt.definition(name, { inactive: true });
      // Assigned at define and kept in the definition: primary video at slot 2, the rng where the XML put it.
      expect(expectedPci(defined)).toEqual({
        video0: '2.0',
        scsi0: '3.0',
        sata0: '4.0',
        'virtio-serial0': '5.0',
        'ua-vda': '6.0',
        rng0: '10.0',
        watchdog0: '7.0',
        input0: '8.0',
      });
      expect(defined.devices.disks.map((d) => d.address)).toEqual([
        expect.objectContaining({ type: 'pci' }),
        { type: 'drive', controller: '0', bus: '0', target: '0', unit: '0' },
        { type: 'drive', controller: '0', bus: '0', target: '0', unit: '1' },
        { type: 'drive', controller: '0', bus: '1', target: '0', unit: '0' },
      ]);
      expect(defined.devices.channels?.[0]?.address).toEqual({ type: 'virtio-serial', controller: '0', bus: '0', port: '1' });

      await rt.start(name, {});
      const live = rt.definition(name);
      expect(await pciOf(rt, name)).toMatchObject(expectedPci(live));
      const qmp = rt.requireRunning(name).qmp;
      const peripherals = (await qmp.execute<{ name: string }[]>('qom-list', { path: '/machine/peripheral' })).map((p) => p.name);
      expect(peripherals).toEqual(expect.arrayContaining(['channel0', 'input0', 'rng0', 'watchdog0', 'ua-sda', 'ua-sdb', 'ua-hdc', 'scsi0', 'sata0']));
      expect(await qmp.execute('qom-get', { path: '/machine/peripheral/ua-sdb', property: 'lun' })).toBe(1);
      expect(await qmp.execute('qom-get', { path: '/machine/peripheral/ua-hdc', property: 'unit' })).toBe(0);
      // The guest agent's socket, under the run directory, named in the live XML.
      const socket = live.devices.channels?.[0]?.sourcePath;
      expect(socket).toMatch(/\/channel\/target\/domain-[^/]+\/org\.qemu\.guest_agent\.0$/);
      expect(existsSync(socket!)).toBe(true);

      type Block = { device: string; inserted?: { file: string; ro: boolean } };
      const block = async (dev: string) => (await qmp.execute<Block[]>('query-block')).find((b) => b.device === `drive-${dev}`);
      expect((await block('hdc'))?.inserted).toBeUndefined();
      await changeMedia(rt, name, { path: 'hdc', source: join(images, 'media.raw') });
      expect((await block('hdc'))?.inserted).toMatchObject({ file: join(images, 'media.raw'), ro: true });
      expect(rt.definition(name).devices.disks.find((d) => d.target.dev === 'hdc')?.source).toEqual({ file: join(images, 'media.raw') });
      await changeMedia(rt, name, { path: join(images, 'media.raw'), eject: true });
      expect((await block('hdc'))?.inserted).toBeUndefined();
      expect(rt.definition(name).devices.disks.find((d) => d.target.dev === 'hdc')?.source).toBeUndefined();
      const wrong = await changeMedia(rt, name, { path: 'vda', eject: true }).catch((e: unknown) => e);
      expect(isVmError(wrong, 'OperationInvalid' as never)).toBe(true);

      await rt.destroy(name);
      expect(existsSync(socket!)).toBe(false);
    } finally {
      if (rt.getRunning(name)) await rt.destroy(name);
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('refuses bad and conflicting addresses with typed errors before any QEMU starts', () => {
    const base = mkdtempSync(join(tmpdir(), 'vmf-dev-'));
    const rt = localRuntime('dev-bad', base);
    try {
      const cases: [string, string, RegExp][] = [
        [
          "<rng model='virtio'><backend model='random'>/dev/urandom</backend><address type='pci' slot='0x03'/></rng><watchdog model='i6300esb'><address type='pci' slot='0x03'/></watchdog>",
          'XmlError',
          /PCI address 0000:00:03.0 is already used/,
        ],
        [
          "<rng model='virtio'><backend model='random'>/dev/urandom</backend><address type='pci' slot='0x20'/></rng>",
          'XmlError',
          /slot '0x20' is not a number in 0..31/,
        ],
        [
          "<rng model='virtio'><backend model='random'>/dev/urandom</backend><address type='pci' slot='0x01' function='0x5'/></rng>",
          'XmlError',
          /slot 1 belongs to the PIIX3/,
        ],
        [
          "<rng model='virtio'><backend model='random'>/dev/urandom</backend><address type='pci' bus='0x01' slot='0x03'/></rng>",
          'ConfigUnsupported',
          /root PCI bus/,
        ],
        [
          "<disk type='file' device='disk'><source file='/x/a'/><target dev='hda' bus='ide'/></disk><disk type='file' device='disk'><source file='/x/b'/><target dev='hdb' bus='ide'/><address type='drive' controller='0' bus='0' target='0' unit='0'/></disk>",
          'XmlError',
          /drive address ide:0:0:0:0 is already used by disk hda/,
        ],
        ["<disk type='file' device='disk'><source file='/x/a'/><target dev='sda' bus='scsi'/></disk>", 'ConfigUnsupported', /lsilogic/],
        ["<input type='tablet' bus='usb'/>", 'XmlError', /USB is disabled/],
        ["<video><model type='vmvga'/></video>", 'ConfigUnsupported', /video model 'vmvga'/],
      ];
      for (const [devices, type, message] of cases) {
        const err = (() => {
          try {
            rt.define(guestXml({ name: `bad-${randomUUID().slice(0, 6)}`, extraDevices: devices }));
          } catch (e) {
            return e;
          }
          return undefined;
        })();
        expect(isVmError(err, type as never), `${devices}: ${String(err)}`).toBe(true);
        expect(String((err as Error).message)).toMatch(message);
      }
      expect(rt.list()).toEqual([]);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('keeps the assigned addresses through save, restore and a live migration to another host', async () => {
    const name = 'dev2';
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: guestXml({ name, uuid, extraDevices: devicesXml(images) }) });
    const started = domainOf(await cluster.op(A, { op: 'start', name }));
    const liveXml = async (host: string) => {
      const r = await cluster.op(host, { op: 'dumpxml', name });
      return parseDomainXml('xml' in r ? r.xml : '');
    };
    const before = expectedPci(await liveXml(A));
    expect(Object.keys(before)).toHaveLength(8);

    const path = join(images, `${name}.img`);
    await runJob<SaveResult>(cluster.client, 'save', uuid, { host: A, name, path });
    expect(expectedPci(parseDomainXml((await readSaveHeader(path)).domainXml))).toEqual(before);
    const restored = await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: A, path });
    expect(restored.domain).toMatchObject({ state: 'running' });
    expect(restored.domain.pid).not.toBe(started.pid);
    expect(expectedPci(await liveXml(A))).toEqual(before);
    rmSync(path);

    const handle = await startMigration(cluster.client, { domain: name, domainUuid: uuid, sourceHost: A, destinationHost: B, flags: ['live', 'unsafe'] });
    expect(await handle.result()).toMatchObject({ destination: { state: 'running', host: B } });
    expect(expectedPci(await liveXml(B))).toEqual(before);

    // QEMU's own view on the destination: let B's worker go and look through a runtime of our own.
    const hb = cluster.hosts.get(B)!;
    await hb.worker!.stop();
    hb.worker = undefined;
    const rt = new HostRuntime(loadHostConfig({ ...hb.env, PATH: process.env.PATH ?? '' }), pino({ level: 'silent' }));
    await rt.reconnectAll();
    try {
      expect(await pciOf(rt, name)).toMatchObject(before);
    } finally {
      await rt.destroy(name);
    }
    await cluster.op(A, { op: 'undefine', name });
  });
});
