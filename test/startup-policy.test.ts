// Disk startupPolicy with libvirt's meaning: a missing source file refuses the
// start (mandatory, the default; requisite on a cold boot), or the disk is
// dropped (optional always; requisite when the guest arrives by restore or
// migration): a cdrom or floppy comes up empty, a hard disk is left out of a
// cold boot. Real QEMU and Temporal for start, restore and migration Prepare.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import { isVmError } from '../src/common/errors.js';
import { parseDomainXml } from '../src/domain/index.js';
import { applyStartupPolicy } from '../src/host/startup-policy.js';
import { outcomeOf } from './helpers/case-table.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { runJob } from './helpers/save.js';
import { qemuPids } from './helpers/world.js';

const cdrom = (file: string, policy?: string) =>
  `\n    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${file}'${policy ? ` startupPolicy='${policy}'` : ''}/><target dev='hdc' bus='ide'/><readonly/></disk>`;
const hardDisk = (file: string, policy?: string) =>
  `\n    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${file}'${policy ? ` startupPolicy='${policy}'` : ''}/><target dev='vdb' bus='virtio'/></disk>`;

describe('applyStartupPolicy (pure)', () => {
  const missing = () => false;
  const def = (devices: string) => parseDomainXml(guestXml({ name: 'sp', extraDevices: devices }));
  const failure = (f: () => unknown): string => {
    try {
      f();
      return 'succeeded';
    } catch (err) {
      return isVmError(err) ? (err.type ?? 'untyped') : String(err);
    }
  };
  it.each([
    ['cdrom', 'mandatory (default)', 'start', 'OperationFailed', undefined],
    ['cdrom', 'mandatory', 'incoming', 'OperationFailed', 'mandatory'],
    ['cdrom', 'requisite', 'start', 'OperationFailed', 'requisite'],
    ['cdrom', 'requisite', 'incoming', 'empty', 'requisite'],
    ['cdrom', 'optional', 'start', 'empty', 'optional'],
    ['cdrom', 'optional', 'incoming', 'empty', 'optional'],
    ['disk', 'mandatory (default)', 'start', 'OperationFailed', undefined],
    ['disk', 'optional', 'start', 'removed', 'optional'],
    ['disk', 'optional', 'incoming', 'OperationFailed', 'optional'],
  ] as const)('%s, %s, missing at %s: %s', (device, _label, kind, expected, policy) => {
    const d = def(device === 'cdrom' ? cdrom('/nonexistent/x.iso', policy) : hardDisk('/nonexistent/x.img', policy));
    if (expected === 'OperationFailed') {
      expect(failure(() => applyStartupPolicy(d, kind, missing))).toBe('OperationFailed');
      return;
    }
    const out = applyStartupPolicy(d, kind, missing);
    if (expected === 'empty') {
      expect(out.def.devices.disks).toHaveLength(1);
      expect(out.def.devices.disks[0]!.source?.file).toBeUndefined();
    } else {
      expect(out.def.devices.disks).toHaveLength(0);
    }
    expect(out.dropped).toEqual([device === 'cdrom' ? 'hdc' : 'vdb']);
    // The requested definition is untouched.
    expect(d.devices.disks[0]!.source?.file).toMatch(/^\/nonexistent\//);
  });
  it('a present file is kept whatever the policy', () => {
    const out = applyStartupPolicy(def(cdrom('/etc/hostname', 'optional')), 'start');
    expect(out.def.devices.disks[0]!.source?.file).toBe('/etc/hostname');
    expect(out.dropped).toEqual([]);
  });
  it('startupPolicy round-trips and a value libvirt does not know is an XmlError', () => {
    expect(def(cdrom('/x.iso', 'requisite')).devices.disks[0]!.source).toEqual({ file: '/x.iso', startupPolicy: 'requisite' });
    expect(failure(() => def(cdrom('/x.iso', 'sometimes')))).toBe('XmlError');
  });
});

const cluster = new TestCluster();
const HA = 'sp-a';
const HB = 'sp-b';
const domainOf = (r: DomainOperationResult): DomainInfo => (r as { domain: DomainInfo }).domain;

describe('startupPolicy through start, restore and migration Prepare (real QEMU)', () => {
  const media = (n: string) => join(cluster.root, `${n}.iso`);
  const markers = (): number[] => qemuPids([cluster.root]);
  beforeAll(async () => {
    await cluster.connect();
    await Promise.all([cluster.startHost(HA), cluster.startHost(HB), cluster.startControl()]);
  });
  afterAll(async () => {
    await cluster.removeAllDomains([HA, HB]);
    await cluster.stop();
  });
  const dumpxml = async (host: string, name: string): Promise<string> => {
    const r = (await cluster.op(host, { op: 'dumpxml', name })) as unknown as { xml: string };
    return r.xml;
  };

  it('start: optional cdrom comes up empty, optional hard disk is left out; mandatory and requisite refuse with no QEMU', async () => {
    await cluster.op(HA, {
      op: 'define',
      xml: guestXml({ name: 'sp-opt', extraDevices: cdrom(media('gone1'), 'optional') + hardDisk(join(cluster.root, 'gone.img'), 'optional') }),
    });
    const dom = domainOf(await cluster.op(HA, { op: 'start', name: 'sp-opt' }));
    expect(dom.state).toBe('running');
    const live = await dumpxml(HA, 'sp-opt');
    expect(live).toContain("<target dev='hdc'");
    expect(live).not.toContain('gone1.iso');
    expect(live).not.toContain("<target dev='vdb'");
    // The persistent definition keeps both.
    expect(((await cluster.op(HA, { op: 'dumpxml', name: 'sp-opt', inactive: true })) as unknown as { xml: string }).xml).toContain('gone1.iso');

    for (const policy of [undefined, 'mandatory', 'requisite']) {
      const name = `sp-${policy ?? 'default'}`;
      await cluster.op(HA, { op: 'define', xml: guestXml({ name, extraDevices: cdrom(media('gone2'), policy) }) });
      const before = markers();
      const o = await outcomeOf(cluster.op(HA, { op: 'start', name }));
      expect(o.type, `${policy}: ${o.message}`).toBe('OperationFailed');
      expect(o.message).toContain('gone2.iso');
      expect(markers()).toEqual(before);
    }
  });

  it('restore: a requisite cdrom whose medium vanished comes back empty; a mandatory one refuses and leaves the image', async () => {
    for (const policy of ['requisite', 'mandatory'] as const) {
      const name = `sp-r-${policy}`;
      const iso = media(name);
      writeFileSync(iso, Buffer.alloc(64 * 1024));
      await cluster.op(HA, { op: 'define', xml: guestXml({ name, extraDevices: cdrom(iso, policy) }) });
      const dom = domainOf(await cluster.op(HA, { op: 'start', name }));
      const path = join(cluster.root, `${name}.save`);
      await runJob(cluster.client, 'save', dom.uuid, { host: HA, name, path, format: 'raw' });
      rmSync(iso);
      const image = readFileSync(path);
      const o = await outcomeOf(runJob(cluster.client, 'restore', dom.uuid, { host: HA, path }));
      if (policy === 'requisite') {
        expect(o.type, o.message).toBe('succeeded');
        expect(domainOf(await cluster.op(HA, { op: 'info', name })).state).toBe('running');
        expect(await dumpxml(HA, name)).not.toContain(`${name}.iso`);
      } else {
        expect(o.type, o.message).toBe('OperationFailed');
        expect(domainOf(await cluster.op(HA, { op: 'info', name })).state).toBe('shutoff');
        expect(readFileSync(path).equals(image)).toBe(true);
      }
      rmSync(path, { force: true });
    }
  });

  it('Prepare: a requisite cdrom missing on the destination is dropped; a mandatory one refuses and the source runs on', async () => {
    for (const policy of ['requisite', 'mandatory'] as const) {
      const name = `sp-m-${policy}`;
      const iso = media(name);
      writeFileSync(iso, Buffer.alloc(64 * 1024));
      const uuid = randomUUID();
      await cluster.op(HA, { op: 'define', xml: guestXml({ name, uuid, extraDevices: cdrom(iso, policy) }) });
      const dom = domainOf(await cluster.op(HA, { op: 'start', name }));
      // The source QEMU holds the medium open; the destination finds no file.
      rmSync(iso);
      expect(existsSync(iso)).toBe(false);
      const o = await outcomeOf(
        runJob(cluster.client, 'migrate', uuid, { domain: name, domainUuid: uuid, sourceHost: HA, destinationHost: HB, flags: ['live', 'unsafe'] }),
      );
      if (policy === 'requisite') {
        expect(o.type, o.message).toBe('succeeded');
        expect(domainOf(await cluster.op(HB, { op: 'info', name })).state).toBe('running');
        expect(await dumpxml(HB, name)).not.toContain(`${name}.iso`);
      } else {
        expect(o.type, o.message).toBe('OperationFailed');
        expect(o.message).toContain(`${name}.iso`);
        const src = domainOf(await cluster.op(HA, { op: 'info', name }));
        expect([src.state, src.pid]).toEqual(['running', dom.pid]);
      }
    }
  });
});
