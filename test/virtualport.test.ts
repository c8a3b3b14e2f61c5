// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// <interface><virtualport> in the domain model (pure code): each type's
// parameters read, range-checked with an XmlError naming the attribute, ids
// generated once as libvirt does, written back in libvirt's form and kept in the
// migratable XML; 802.1Qbg/Qbh refused with ConfigUnsupported naming the element
// (vmferry builds no type='direct' macvtap, where libvirt associates them over
// VDP); an openvswitch port refused on a host without ovs-vsctl.
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { formatDomainXml, migratableDomainXml, parseDomainXml } from '../src/domain/index.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';
import { checkInterfacesBuildable } from '../src/qemu/devices/interface.js';
import { checkOvsAvailable } from '../src/host/openvswitch.js';

function domainXml(nics: string): string {
  return `<domain type='qemu'><name>vp1</name><uuid>0f1c2a53-6a52-4c0e-9d59-0c7f0d3c0a12</uuid><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><controller type='usb' model='none'/>${nics}</devices></domain>`;
}
const MAC = "<mac address='52:54:00:00:00:01'/>";
const ovs = (params: string) => `<interface type='bridge'>${MAC}<source bridge='ovsbr0'/><virtualport type='openvswitch'>${params}</virtualport></interface>`;
const IFACE_ID = '09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f';

function failureOf(fn: () => unknown): ApplicationFailure {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected a failure');
}

describe('virtualport in the domain model (pure code)', () => {
  it('reads an openvswitch port, writes it back as libvirt does, and carries it in the migratable XML', () => {
    const def = parseDomainXml(domainXml(ovs(`<parameters interfaceid='${IFACE_ID.toUpperCase()}' profileid='gold'/>`)));
    expect(def.devices.interfaces![0]!.virtualport).toEqual({ type: 'openvswitch', interfaceId: IFACE_ID, profileId: 'gold' });
    const expected = `<virtualport type='openvswitch'><parameters interfaceid='${IFACE_ID}' profileid='gold'/></virtualport>`;
    expect(formatDomainXml(def)).toContain(expected);
    expect(migratableDomainXml(def)).toContain(expected);
    expect(parseDomainXml(migratableDomainXml(def)).devices.interfaces![0]!.virtualport).toEqual(def.devices.interfaces![0]!.virtualport);
  });

  it('generates a missing interfaceid (openvswitch) and instanceid (802.1Qbg) once: formatting keeps them', () => {
    const def = parseDomainXml(domainXml(ovs('')));
    const id = def.devices.interfaces![0]!.virtualport!.interfaceId!;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(parseDomainXml(formatDomainXml(def)).devices.interfaces![0]!.virtualport!.interfaceId).toBe(id);
    const qbg = parseDomainXml(
      domainXml(
        `<interface type='direct'>${MAC}<source dev='eth0' mode='vepa'/><virtualport type='802.1Qbg'><parameters managerid='0x0b' typeid='1193047' typeidversion='2'/></virtualport></interface>`,
      ),
    );
    const vp = qbg.devices.interfaces![0]!.virtualport!;
    expect(vp).toMatchObject({ type: '802.1Qbg', managerId: 11, typeId: 1193047, typeIdVersion: 2 });
    expect(vp.instanceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(formatDomainXml(qbg)).toContain(
      `<virtualport type='802.1Qbg'><parameters managerid='11' typeid='1193047' typeidversion='2' instanceid='${vp.instanceId}'/></virtualport>`,
    );
  });

  it.each([
    [ovs("<parameters interfaceid='not-a-uuid'/>"), 'virtualport/parameters/@interfaceid', /interfaceid 'not-a-uuid' is not a UUID/],
    [ovs(`<parameters interfaceid='${IFACE_ID}' profileid='${'p'.repeat(40)}'/>`), 'virtualport/parameters/@profileid', /longer than 39/],
    [ovs("<parameters managerid='1'/>"), 'virtualport/parameters/@managerid', /'managerid' is not allowed in <virtualport type='openvswitch'>/],
    [ovs("<parameters colour='blue'/>"), 'virtualport/parameters/@colour', /'colour' is not allowed/],
    [
      `<interface type='direct'>${MAC}<source dev='eth0'/><virtualport type='802.1Qbg'><parameters managerid='256' typeid='1' typeidversion='1'/></virtualport></interface>`,
      'virtualport/parameters/@managerid',
      /managerid 256 is out of range 0..255/,
    ],
    [
      `<interface type='direct'>${MAC}<source dev='eth0'/><virtualport type='802.1Qbg'><parameters managerid='1' typeid='16777216' typeidversion='1'/></virtualport></interface>`,
      'virtualport/parameters/@typeid',
      /typeid 16777216 is out of range/,
    ],
    [
      `<interface type='direct'>${MAC}<source dev='eth0'/><virtualport type='802.1Qbg'><parameters managerid='x1' typeid='1' typeidversion='1'/></virtualport></interface>`,
      'virtualport/parameters/@managerid',
      /cannot parse managerid 'x1'/,
    ],
    [
      `<interface type='direct'>${MAC}<source dev='eth0'/><virtualport type='802.1Qbg'><parameters typeid='1' typeidversion='1'/></virtualport></interface>`,
      'virtualport/parameters/@managerid',
      /missing managerid/,
    ],
    [`<interface type='direct'>${MAC}<source dev='eth0'/><virtualport type='802.1Qbh'/></interface>`, 'virtualport/parameters/@profileid', /missing profileid/],
    [`<interface type='bridge'>${MAC}<source bridge='br0'/><virtualport type='vepa'/></interface>`, 'virtualport/@type', /unknown virtualport type 'vepa'/],
    [`<interface type='bridge'>${MAC}<source bridge='br0'/><virtualport/></interface>`, 'virtualport/@type', /missing virtualport type/],
    [`<interface type='user'>${MAC}<virtualport type='openvswitch'/></interface>`, 'virtualport', /not allowed in <interface type='user'>/],
  ])('refuses %s with an XmlError naming %s', (nic, at, message) => {
    const err = failureOf(() => parseDomainXml(domainXml(nic)));
    expect(err.type).toBe('XmlError');
    expect(err.message).toMatch(message);
    expect(err.message).toContain(`/domain/devices/interface/${at}`);
  });

  it.each([
    [
      `<interface type='direct'>${MAC}<source dev='eth0' mode='vepa'/><virtualport type='802.1Qbg'><parameters managerid='11' typeid='1193047' typeidversion='2'/></virtualport></interface>`,
      '802.1Qbg',
    ],
    [
      `<interface type='direct'>${MAC}<source dev='eth0' mode='private'/><virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport></interface>`,
      '802.1Qbh',
    ],
    [
      `<interface type='bridge'>${MAC}<source bridge='br0'/><virtualport type='802.1Qbh'><parameters profileid='finance'/></virtualport></interface>`,
      '802.1Qbh',
    ],
  ])('parses %s and refuses to build it with ConfigUnsupported naming the virtualport (no type=direct, no VDP)', (nic, type) => {
    const def = parseDomainXml(domainXml(nic));
    const err = failureOf(() => checkInterfacesBuildable(def));
    expect(err.type).toBe('ConfigUnsupported');
    expect(err.message).toContain(`virtualport type '${type}' is not supported`);
    expect(err.message).toContain('at /domain/devices/interface/virtualport/@type');
    expect(failureOf(() => buildQemuArgs(def, { qmpSocket: '/run/x.qmp', taps: ['vnet0'] })).type).toBe('ConfigUnsupported');
  });

  it("refuses libvirt's midonet type with ConfigUnsupported, and builds an openvswitch port as a tap", () => {
    const err = failureOf(() => parseDomainXml(domainXml(`<interface type='bridge'>${MAC}<source bridge='br0'/><virtualport type='midonet'/></interface>`)));
    expect(err.type).toBe('ConfigUnsupported');
    const def = parseDomainXml(domainXml(ovs('')));
    const args = buildQemuArgs(def, { qmpSocket: '/run/x.qmp', taps: ['vnet3'] });
    expect(args).toContain('tap,id=hostnet0,ifname=vnet3,script=no,downscript=no');
  });

  it('refuses an openvswitch port on a host without ovs-vsctl (ConfigUnsupported naming the element and the host)', () => {
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent-vmf-path';
    try {
      const err = failureOf(() => checkOvsAvailable(parseDomainXml(domainXml(`<interface type='user'/>${ovs('')}`)), 'h1'));
      expect(err.type).toBe('ConfigUnsupported');
      expect(err.message).toMatch(/needs Open vSwitch on host h1, and ovs-vsctl is not on its PATH \(at \/domain\/devices\/interface\[2\]\/virtualport\)/);
      // A domain without one is not concerned.
      checkOvsAvailable(parseDomainXml(domainXml(`<interface type='user'/>`)), 'h1');
    } finally {
      process.env.PATH = saved;
    }
  });
});
