// Nothing in a definition is dropped silently (design §5.6): an element, an
// attribute or a value vmferry does not build into QEMU is refused with
// ConfigUnsupported naming its path, by every route a definition takes to a
// QEMU: define, start of a stored definition, restore of a save image, a
// migration's Begin (real source, destination XML) and Prepare (a fake source,
// named so, hands the XML to the real destination). Nothing may change: no
// definition, no QEMU, no file, the image untouched, the source still running.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo } from '../src/common/domain-types.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import { formatMigrationCookie } from '../src/migration/cookie.js';
import { DefinitionStore } from '../src/host/definition-store.js';
import { outcomeOf, type Observed } from './helpers/case-table.js';
import { TestCluster } from './helpers/cluster.js';
import { writeCraftedImage } from './helpers/crafted-image.js';
import { guestXml } from './helpers/guest-xml.js';
import { startHostileSource, type HostileSource } from './helpers/hostile-source.js';
import { localWorldOf, domainsOf } from './helpers/world.js';

const cluster = new TestCluster();
const HA = 'ub-a';
const HB = 'ub-b';
const FAKE = 'ub-fake-source';
const GUEST = 'ub-guest';
const GUEST_UUID = randomUUID();
const images = join(cluster.root, 'ub-images');
const diskFile = join(cluster.root, 'ub-disk.img');
let fake: HostileSource;
let guest: DomainInfo;

type Place = 'devices' | 'domain' | 'features' | 'os' | 'memoryBacking' | 'disk';
interface Unbuilt {
  what: string;
  place: Place;
  xml: string;
  /** The path the refusal must name (below /domain). */
  path: string;
}

const disk = (inner: string) =>
  `<disk type='file' device='disk'>${inner.includes('<driver') ? '' : "<driver name='qemu' type='raw'/>"}${inner}<source file='${diskFile}'/><target dev='vda' bus='virtio'/></disk>`;

const UNBUILT: Unbuilt[] = [
  {
    what: 'hostdev',
    place: 'devices',
    xml: "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x00' slot='0x1f' function='0x0'/></source></hostdev>",
    path: 'devices/hostdev',
  },
  { what: 'sound', place: 'devices', xml: "<sound model='ich6'/>", path: 'devices/sound' },
  {
    what: 'filesystem',
    place: 'devices',
    xml: "<filesystem type='mount' accessmode='passthrough'><source dir='/tmp'/><target dir='share'/></filesystem>",
    path: 'devices/filesystem',
  },
  { what: 'tpm', place: 'devices', xml: "<tpm model='tpm-tis'><backend type='emulator' version='2.0'/></tpm>", path: 'devices/tpm' },
  { what: 'smartcard', place: 'devices', xml: "<smartcard mode='host'/>", path: 'devices/smartcard' },
  { what: 'redirdev', place: 'devices', xml: "<redirdev bus='usb' type='spicevmc'/>", path: 'devices/redirdev' },
  { what: 'shmem', place: 'devices', xml: "<shmem name='sh0'><model type='ivshmem-plain'/><size unit='M'>4</size></shmem>", path: 'devices/shmem' },
  { what: 'hub', place: 'devices', xml: "<hub type='usb'/>", path: 'devices/hub' },
  { what: 'parallel', place: 'devices', xml: "<parallel type='pty'><target port='0'/></parallel>", path: 'devices/parallel' },
  { what: 'lease', place: 'devices', xml: "<lease><lockspace>ls</lockspace><key>k</key><target path='/tmp/ub-lease'/></lease>", path: 'devices/lease' },
  { what: 'iommu', place: 'devices', xml: "<iommu model='intel'/>", path: 'devices/iommu' },
  { what: 'vsock', place: 'devices', xml: "<vsock model='virtio'><cid auto='yes'/></vsock>", path: 'devices/vsock' },
  {
    what: 'memory (dimm)',
    place: 'devices',
    xml: "<memory model='dimm'><target><size unit='MiB'>128</size><node>0</node></target></memory>",
    path: 'devices/memory',
  },
  { what: 'crypto', place: 'devices', xml: "<crypto model='virtio' type='qemu'><backend model='builtin' queues='1'/></crypto>", path: 'devices/crypto' },
  { what: "audio type='pulseaudio'", place: 'devices', xml: "<audio id='1' type='pulseaudio'/>", path: 'devices/audio/@type' },
  {
    what: "input type='passthrough'",
    place: 'devices',
    xml: "<input type='passthrough' bus='virtio'><source evdev='/dev/input/event0'/></input>",
    path: 'devices/input/@type',
  },
  { what: "graphics type='sdl'", place: 'devices', xml: "<graphics type='sdl' display=':0'/>", path: 'devices/graphics/@type' },
  // Device content the device builders (src/qemu/devices/) do not build, inside families they do.
  { what: 'video qxl ram=', place: 'devices', xml: "<video><model type='qxl' ram='65536' vram='65536' heads='1'/></video>", path: 'devices/video/model/@ram' },
  {
    what: "controller type='pci' model='pci-bridge'",
    place: 'devices',
    xml: "<controller type='pci' index='1' model='pci-bridge'/>",
    path: 'devices/controller[2]/@index',
  },
  { what: 'scsi controller without a model (lsilogic)', place: 'devices', xml: "<controller type='scsi' index='0'/>", path: 'devices/controller[2]' },
  {
    what: "rng backend model='egd'",
    place: 'devices',
    xml: "<rng model='virtio'><backend model='egd' type='tcp'><source mode='connect' host='127.0.0.1' service='708'/></backend></rng>",
    path: 'devices/rng/backend',
  },
  { what: 'rng /dev/hwrng', place: 'devices', xml: "<rng model='virtio'><backend model='random'>/dev/hwrng</backend></rng>", path: 'devices/rng/backend' },
  {
    what: 'virtio-serial controller vectors=',
    place: 'devices',
    xml: "<controller type='virtio-serial' index='0' vectors='4'/>",
    path: 'devices/controller[2]/@vectors',
  },
  { what: 'video <driver>', place: 'devices', xml: "<video><model type='virtio'/><driver iommu='on'/></video>", path: 'devices/video/driver' },
  { what: 'features/hyperv', place: 'features', xml: "<hyperv mode='custom'><relaxed state='on'/></hyperv>", path: 'features/hyperv' },
  {
    what: 'qemu:commandline',
    place: 'domain',
    xml: "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:arg value='-no-hpet'/></qemu:commandline>",
    path: 'qemu:commandline',
  },
  { what: 'sysinfo', place: 'domain', xml: "<sysinfo type='smbios'><system><entry name='manufacturer'>X</entry></system></sysinfo>", path: 'sysinfo' },
  { what: 'cputune', place: 'domain', xml: '<cputune><shares>2048</shares></cputune>', path: 'cputune' },
  { what: 'pm', place: 'domain', xml: "<pm><suspend-to-mem enabled='no'/></pm>", path: 'pm' },
  { what: 'os/loader (UEFI)', place: 'os', xml: "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>", path: 'os/loader' },
  { what: 'memoryBacking/hugepages', place: 'memoryBacking', xml: '<hugepages/>', path: 'memoryBacking/hugepages' },
  { what: "disk <driver io='native'>", place: 'disk', xml: disk("<driver name='qemu' type='raw' io='native'/>"), path: 'devices/disk/driver/@io' },
  { what: 'disk <iotune>', place: 'disk', xml: disk('<iotune><total_bytes_sec>1000000</total_bytes_sec></iotune>'), path: 'devices/disk/iotune' },
  {
    what: "disk type='network'",
    place: 'disk',
    xml: "<disk type='network' device='disk'><source protocol='nbd' name='x'><host name='h'/></source><target dev='vdb' bus='virtio'/></disk>",
    path: 'devices/disk/@type',
  },
];

function withElement(base: string, u: Unbuilt): string {
  switch (u.place) {
    case 'devices':
    case 'disk':
      return base.replace('</devices>', `  ${u.xml}\n  </devices>`);
    case 'features':
      return base.replace('</features>', `  ${u.xml}\n  </features>`);
    case 'os':
      return base.replace('</os>', `  ${u.xml}\n  </os>`);
    case 'memoryBacking':
      return base.replace('</memoryBacking>', `  ${u.xml}\n  </memoryBacking>`);
    case 'domain':
      return base.replace('  <devices>', `  ${u.xml}\n  <devices>`);
  }
}

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

function job(workflow: string, uuid: string, input: unknown): Promise<unknown> {
  return cluster.client.workflow.execute(workflow, {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(uuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
    workflowExecutionTimeout: '2 minutes',
  });
}

function expectRefused(o: Observed, u: Unbuilt, route: string): void {
  expect(o.type, `${u.what} at ${route}: ${o.message ?? ''}`).toBe('ConfigUnsupported');
  expect(o.message, `${u.what} at ${route}`).toContain(`/domain/${u.path}`);
}

beforeAll(async () => {
  await cluster.connect();
  mkdirSync(images);
  writeFileSync(diskFile, Buffer.alloc(1024 * 1024));
  [fake] = await Promise.all([startHostileSource(cluster.address, FAKE), cluster.startHost(HA), cluster.startHost(HB), cluster.startControl()]);
  await cluster.op(HA, { op: 'define', xml: guestXml({ name: GUEST, uuid: GUEST_UUID }) });
  guest = ((await cluster.op(HA, { op: 'start', name: GUEST })) as { domain: DomainInfo }).domain;
});

afterAll(async () => {
  await cluster.op(HA, { op: 'destroy', name: GUEST }).catch(() => undefined);
  await cluster.op(HA, { op: 'undefine', name: GUEST }).catch(() => undefined);
  await fake?.stop();
  await cluster.stop(); // removes the images directory and the disk file with the cluster's root
});

describe('every unbuilt element is refused by every route (Prepare fed by a fake source host), and nothing changes', () => {
  it(`the table holds at least 20 elements (${UNBUILT.length})`, () => {
    expect(UNBUILT.length).toBeGreaterThanOrEqual(20);
  });

  it.each(UNBUILT.map((u, i) => [u.what, u, i] as const))('%s', async (_what, u, i) => {
    const name = `ub-${i}`;
    const uuid = randomUUID();
    const xml = withElement(guestXml({ name, uuid }), u);
    const domainsBefore = await domainsOf(cluster, [HA, HB]);
    const before = localWorldOf(cluster, [images]);

    // define: refused, nothing defined.
    expectRefused(await outcomeOf(cluster.op(HA, { op: 'define', xml })), u, 'define');
    expect(localWorldOf(cluster, [images])).toEqual(before);

    // start of a definition stored without passing define (an older vmferry's, or one written by hand).
    const store = new DefinitionStore(join(cluster.hosts.get(HA)!.baseDir, 'state'));
    store.write(name, xml);
    try {
      expectRefused(await outcomeOf(cluster.op(HA, { op: 'start', name })), u, 'start');
      expect(localWorldOf(cluster, [images]).qemu).toEqual(before.qemu);
    } finally {
      store.remove(name);
    }

    // restore of a save image whose XML holds it: refused, the image untouched.
    const image = join(images, `${name}.img`);
    writeCraftedImage(image, xml);
    const imageHash = sha(image);
    try {
      expectRefused(await outcomeOf(job('restore', uuid, { host: HA, path: image })), u, 'restore');
      expect(sha(image)).toBe(imageHash);
    } finally {
      rmSync(image);
    }

    // migration, real source: destination XML holding it is refused at Begin; the source runs on.
    const destXml = withElement(guestXml({ name: GUEST, uuid: GUEST_UUID }), u);
    const begin = await outcomeOf(
      job('migrate', GUEST_UUID, { domain: GUEST, domainUuid: GUEST_UUID, sourceHost: HA, destinationHost: HB, flags: ['live'], destinationXml: destXml }),
    );
    expectRefused(begin, u, 'Begin');
    const after = ((await cluster.op(HA, { op: 'info', name: GUEST })) as { domain: DomainInfo }).domain;
    expect([after.state, after.pid]).toEqual(['running', guest.pid]);

    // migration Prepare: a fake source (named so) hands the XML to the real destination.
    const fakeName = `ub-f${i}`;
    const fakeUuid = randomUUID();
    fake.scripts.set(fakeName, {
      uuid: fakeUuid,
      xml: withElement(guestXml({ name: fakeName, uuid: fakeUuid }), u),
      beginCookie: formatMigrationCookie({ name: fakeName, uuid: fakeUuid, hostname: FAKE, hostuuid: fake.hostUuid, features: [], mandatory: [] }),
    });
    const prepare = await outcomeOf(
      job('migrate', fakeUuid, { domain: fakeName, domainUuid: fakeUuid, sourceHost: FAKE, destinationHost: HB, flags: ['live'] }),
    );
    expectRefused(prepare, u, 'Prepare');

    expect(localWorldOf(cluster, [images])).toEqual(before);
    expect(await domainsOf(cluster, [HA, HB])).toEqual(domainsBefore);
  });
});
