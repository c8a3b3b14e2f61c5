// The <qemu-migration> cookie: round trip, libvirt-shaped input, hostile input.
import { describe, it, expect } from 'vitest';
import { MAX_COOKIE_BYTES, formatMigrationCookie, parseMigrationCookie, type MigrationCookie } from '../src/migration/cookie.js';
import { ErrorType, isVmError } from '../src/common/errors.js';

const NAME = 'web-01';
const UUID = '6f1c2a4e-3b7d-4c55-9a0e-2d8f61b7c3a9';
const HOST_A = '0b6e9d2c-71a4-4f3e-8c5d-93e2a1f07b64';
const HOST_B = 'c4d8e1f2-5a6b-4c7d-8e9f-0a1b2c3d4e5f';
const EXPECT = { name: NAME, uuid: UUID };

const DOMAIN_XML = [
  "<domain type='kvm'>",
  `    <name>${NAME}</name>`,
  `    <uuid>${UUID}</uuid>`,
  "    <memory unit='KiB'>262144</memory>",
  '    <vcpu>1</vcpu>',
  "    <os><type arch='x86_64' machine='pc'>hvm</type></os>",
  '    <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>',
  '  </domain>',
].join('\n');

function fullCookie(): MigrationCookie {
  return {
    name: NAME,
    uuid: UUID,
    hostname: 'host-a.example',
    hostuuid: HOST_A,
    features: ['graphics', 'lockstate', 'persistent', 'network', 'nbd', 'statistics', 'capabilities'],
    mandatory: ['lockstate', 'persistent'],
    graphics: { type: 'spice', port: 5901, tlsPort: 5902, listen: '192.0.2.10', tlsSubject: 'C=GB,O=Example & Co,CN=host-b' },
    lockState: { driver: 'sanlock', leases: '__LIBVIRT__DISKS__:1/lease:0:5' },
    persistentXml: DOMAIN_XML,
    network: {
      interfaces: [
        { index: 0, vporttype: 'openvswitch', portdata: 'ovs-port-data<1>' },
        { index: 2, vporttype: 'midonet' },
      ],
    },
    nbd: {
      port: 49153,
      disks: [
        { target: 'vda', capacityBytes: 10737418240 },
        { target: 'vdb', capacityBytes: 1048576 },
        {
          target: 'vdc',
          capacityBytes: 67108864,
          allocationBytes: 4460544,
          clusterSizeBytes: 65536,
          backingFile: '/var/lib/images/base & co.qcow2',
          backingFormat: 'qcow2',
        },
      ],
    },
    stats: {
      started: 1700000000000,
      stopped: 1700000004200,
      sent: 1700000004100,
      delta: -15,
      time_elapsed: 4200,
      downtime: 37,
      setup_time: 4,
      memory_total: 268435456,
      memory_processed: 270000000,
      memory_remaining: 0,
      memory_bps: 125000000,
      memory_dirty_rate: 120,
      memory_iteration: 3,
      memory_postcopy_requests: 0,
      memory_page_size: 4096,
      disk_total: 0,
      disk_processed: 0,
      disk_remaining: 0,
      disk_bps: 0,
      auto_converge_throttle: 0,
    },
    capabilities: [
      { name: 'xbzrle', auto: false },
      { name: 'pause-before-switchover', auto: true },
    ],
  };
}

function expectVmError(fn: () => unknown, type: ErrorType, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected an error').toBeDefined();
  expect(isVmError(caught, type), `expected ${type}, got ${String(caught)}`).toBe(true);
  if (message) expect((caught as Error).message).toMatch(message);
}

/** A minimal well-formed cookie with extra body lines. */
function cookieWith(body: string, head = `<name>${NAME}</name><uuid>${UUID}</uuid><hostname>h</hostname><hostuuid>${HOST_A}</hostuuid>`): string {
  return `<qemu-migration>${head}${body}</qemu-migration>`;
}

describe('migration cookie: format and parse', () => {
  it('round-trips a cookie with every modelled element', () => {
    const c = fullCookie();
    const xml = formatMigrationCookie(c);
    expect(xml.startsWith('<qemu-migration>\n  <name>web-01</name>\n')).toBe(true);
    expect(xml).toContain("<feature name='lockstate'/>\n  <feature name='persistent'/>");
    expect(xml).toContain("<graphics type='spice' port='5901' listen='192.0.2.10' tlsPort='5902'>");
    expect(xml).toContain("<cert info='subject' value='C=GB,O=Example &amp; Co,CN=host-b'/>");
    expect(xml).toContain('<portdata>ovs-port-data&lt;1&gt;</portdata>');
    expect(xml).toContain('<delta>-15</delta>');
    const back = parseMigrationCookie(xml, EXPECT);
    expect(back).toEqual(c);
    expect(back.persistentXml).toBe(DOMAIN_XML);
    // And formatting the parsed cookie gives the same text.
    expect(formatMigrationCookie(back)).toBe(xml);
  });

  it('writes elements in libvirt order and marks lock state and persistent mandatory itself', () => {
    const c = fullCookie();
    c.mandatory = [];
    const xml = formatMigrationCookie(c);
    const order = [
      '<name>',
      '<uuid>',
      '<hostname>',
      '<hostuuid>',
      '<feature',
      '<graphics',
      '<lockstate',
      '<domain',
      '<network>',
      '<nbd',
      '<statistics>',
      '<capabilities>',
    ];
    const positions = order.map((tag) => xml.indexOf(tag));
    expect(positions.every((p) => p > 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(parseMigrationCookie(xml, EXPECT).mandatory).toEqual(['lockstate', 'persistent']);
  });

  it('formats a minimal cookie (Begin without lock state data) and parses it back', () => {
    const c: MigrationCookie = { name: NAME, uuid: UUID.toUpperCase(), hostname: 'a', hostuuid: HOST_A, features: ['lockstate'], mandatory: [] };
    const xml = formatMigrationCookie(c);
    expect(xml).toBe(
      `<qemu-migration>\n  <name>${NAME}</name>\n  <uuid>${UUID}</uuid>\n  <hostname>a</hostname>\n  <hostuuid>${HOST_A}</hostuuid>\n  <feature name='lockstate'/>\n</qemu-migration>\n`,
    );
    const back = parseMigrationCookie(xml, EXPECT);
    expect(back).toEqual({ name: NAME, uuid: UUID, hostname: 'a', hostuuid: HOST_A, features: ['lockstate'], mandatory: ['lockstate'] });
  });

  it('parses a libvirt-shaped cookie written by hand', () => {
    // What a libvirt source sends after Perform: spice relocation data, lock state,
    // the persistent definition, OVS port data, NBD, statistics, CPU, capabilities.
    const xml = `<qemu-migration>
  <name>web-01</name>
  <uuid>6F1C2A4E3B7D4C559A0E2D8F61B7C3A9</uuid>
  <hostname>source.example.org</hostname>
  <hostuuid>${HOST_B}</hostuuid>
  <feature name='lockstate'/>
  <feature name='persistent'/>
  <graphics type='spice' port='5900' listen='0.0.0.0' tlsPort='-1'/>
  <lockstate driver='lockd'>
    <leases>lockspace:resource:shared</leases>
  </lockstate>
  <domain type='kvm'>
    <name>web-01</name>
    <uuid>6f1c2a4e-3b7d-4c55-9a0e-2d8f61b7c3a9</uuid>
    <devices>
      <interface type='bridge'><virtualport type='openvswitch'/></interface>
    </devices>
  </domain>
  <network>
    <interface index='0' vporttype='openvswitch'>
      <portdata>a5c7 e1 f0</portdata>
    </interface>
  </network>
  <nbd port='49153'>
    <disk target='vda' capacity='21474836480'/>
  </nbd>
  <statistics>
    <started>1700000000000</started>
    <stopped>1700000009000</stopped>
    <sent>1700000008990</sent>
    <time_elapsed>9000</time_elapsed>
    <downtime>55</downtime>
    <memory_total>1073741824</memory_total>
    <memory_processed>1100000000</memory_processed>
    <memory_remaining>0</memory_remaining>
    <memory_bps>119000000</memory_bps>
    <memory_constant>200000</memory_constant>
    <memory_normal>62000</memory_normal>
    <memory_normal_bytes>253952000</memory_normal_bytes>
    <memory_dirty_rate>0</memory_dirty_rate>
    <memory_iteration>2</memory_iteration>
    <memory_postcopy_requests>0</memory_postcopy_requests>
    <memory_page_size>4096</memory_page_size>
    <disk_total>0</disk_total>
    <disk_processed>0</disk_processed>
    <disk_remaining>0</disk_remaining>
    <disk_bps>0</disk_bps>
    <auto_converge_throttle>0</auto_converge_throttle>
  </statistics>
  <cpu mode='host-model' check='partial'/>
  <allowReboot value='yes'/>
  <capabilities>
    <cap name='xbzrle' auto='no'/>
    <cap name='postcopy-ram' auto='yes'/>
  </capabilities>
  <blockDirtyBitmaps>
    <disk target='vda'><bitmap name='b1' alias='libvirt-vda-b1'/></disk>
  </blockDirtyBitmaps>
</qemu-migration>
`;
    const c = parseMigrationCookie(xml, EXPECT);
    expect(c.uuid).toBe(UUID);
    expect(c.hostname).toBe('source.example.org');
    expect(c.hostuuid).toBe(HOST_B);
    expect(c.mandatory).toEqual(['lockstate', 'persistent']);
    expect(c.features).toEqual(['graphics', 'lockstate', 'persistent', 'network', 'nbd', 'statistics', 'capabilities']);
    expect(c.graphics).toEqual({ type: 'spice', port: 5900, tlsPort: -1, listen: '0.0.0.0' });
    expect(c.lockState).toEqual({ driver: 'lockd', leases: 'lockspace:resource:shared' });
    expect(c.persistentXml?.startsWith("<domain type='kvm'>\n    <name>web-01</name>")).toBe(true);
    expect(c.persistentXml?.endsWith('</devices>\n  </domain>')).toBe(true);
    expect(c.network).toEqual({ interfaces: [{ index: 0, vporttype: 'openvswitch', portdata: 'a5c7 e1 f0' }] });
    expect(c.nbd).toEqual({ port: 49153, disks: [{ target: 'vda', capacityBytes: 21474836480 }] });
    expect(c.stats?.downtime).toBe(55);
    expect(c.stats?.memory_normal_bytes).toBe(253952000);
    expect(Object.keys(c.stats ?? {})).toHaveLength(21);
    expect(c.capabilities).toEqual([
      { name: 'xbzrle', auto: false },
      { name: 'postcopy-ram', auto: true },
    ]);
  });

  it('keeps the raw persistent definition exactly, CRLF and entities included', () => {
    const domain = "<domain type='kvm'>\r\n  <name>a&amp;b</name>\r\n  <!-- </domain> -->\r\n  <description><![CDATA[</domain>]]></description>\r\n</domain>";
    const xml = cookieWith(
      `<feature name='persistent'/>${domain}`,
      `<name>x&amp;y</name><uuid>${UUID}</uuid><hostname>h</hostname><hostuuid>${HOST_A}</hostuuid>`,
    );
    const c = parseMigrationCookie(xml, { name: 'x&y', uuid: UUID });
    expect(c.persistentXml).toBe(domain);
  });

  it('ignores data of features the phase does not ask for, like libvirt', () => {
    const xml = formatMigrationCookie({ ...fullCookie(), mandatory: [] });
    const c = parseMigrationCookie(xml, { ...EXPECT, understood: ['lockstate', 'persistent', 'nbd'] });
    expect(c.features).toEqual(['lockstate', 'persistent', 'nbd']);
    expect(c.graphics).toBeUndefined();
    expect(c.stats).toBeUndefined();
    expect(c.nbd?.port).toBe(49153);
  });

  it('accepts a mandatory feature it was told it understands', () => {
    const xml = cookieWith("<feature name='memory-hotplug'/><feature name='cpu-hotplug'/>");
    const c = parseMigrationCookie(xml, { ...EXPECT, understood: ['lockstate', 'memory-hotplug', 'cpu-hotplug'] });
    expect(c.mandatory).toEqual(['memory-hotplug', 'cpu-hotplug']);
  });

  it('refuses to format inconsistent or oversized cookies', () => {
    expectVmError(
      () => formatMigrationCookie({ ...fullCookie(), features: ['lockstate', 'persistent'] }),
      ErrorType.OperationInvalid,
      /'graphics' is not in features/,
    );
    expectVmError(() => formatMigrationCookie({ ...fullCookie(), uuid: 'nope' }), ErrorType.OperationInvalid, /not a UUID/);
    expectVmError(
      () => formatMigrationCookie({ ...fullCookie(), persistentXml: `${DOMAIN_XML}<lockstate driver='evil'/>` }),
      ErrorType.OperationInvalid,
      /single <domain> element|one root element/,
    );
    const big = `<domain type='kvm'><description>${'x'.repeat(MAX_COOKIE_BYTES)}</description></domain>`;
    expectVmError(() => formatMigrationCookie({ ...fullCookie(), persistentXml: big }), ErrorType.OperationInvalid, /too large to travel in a cookie/);
  });
});

describe('migration cookie: hostile input is refused with a typed error', () => {
  const good = formatMigrationCookie(fullCookie());

  it('oversize (17 KiB) before parsing', () => {
    const pad = `<!--${'x'.repeat(17 * 1024)}-->`;
    expectVmError(() => parseMigrationCookie(good.replace('</qemu-migration>', `${pad}</qemu-migration>`), EXPECT), ErrorType.XmlError, /too large/);
    // Garbage that size is refused by size, not by the parser.
    expectVmError(() => parseMigrationCookie('<'.repeat(17 * 1024), EXPECT), ErrorType.XmlError, /too large/);
  });

  it('DOCTYPE and entity declarations', () => {
    const bomb = `<?xml version="1.0"?><!DOCTYPE qemu-migration [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>${cookieWith('<hostname>&b;</hostname>')}`;
    expectVmError(() => parseMigrationCookie(bomb, EXPECT), ErrorType.XmlError, /DOCTYPE/);
    expectVmError(() => parseMigrationCookie(`<!ENTITY x SYSTEM "file:///etc/passwd">${cookieWith('')}`, EXPECT), ErrorType.XmlError, /ENTITY/);
    // An undeclared entity reference is not expanded either.
    expectVmError(() => parseMigrationCookie(cookieWith('<lockstate driver="&xxe;"/>'), EXPECT), ErrorType.XmlError, /entity '&xxe;' is not defined/);
  });

  it('malformed XML', () => {
    expectVmError(() => parseMigrationCookie(good.replace('</uuid>', '</uid>'), EXPECT), ErrorType.XmlError, /not well-formed.*line 3/);
    expectVmError(() => parseMigrationCookie(good.slice(0, 200), EXPECT), ErrorType.XmlError, /not well-formed/);
    expectVmError(() => parseMigrationCookie(`${good}<qemu-migration/>`, EXPECT), ErrorType.XmlError, /one root element/);
    expectVmError(() => parseMigrationCookie(cookieWith("<graphics type='vnc' port='1' listen='a<b'/>"), EXPECT), ErrorType.XmlError, /'<' is not allowed/);
    expectVmError(() => parseMigrationCookie(cookieWith('\u0001'), EXPECT), ErrorType.XmlError, /U\+0001/);
    expectVmError(() => parseMigrationCookie('', EXPECT), ErrorType.XmlError, /empty/);
  });

  it('wrong root element', () => {
    expectVmError(
      () => parseMigrationCookie(good.replace(/qemu-migration>/g, 'libxl-migration>'), EXPECT),
      ErrorType.XmlError,
      /root element is <libxl-migration>/,
    );
  });

  it('a cookie about another domain (name)', () => {
    expectVmError(
      () => parseMigrationCookie(good, { ...EXPECT, name: 'db-02' }),
      ErrorType.OperationInvalid,
      /about domain 'web-01', expected 'db-02' at \/qemu-migration\/name \(line 2/,
    );
  });

  it('a cookie about another domain (UUID)', () => {
    expectVmError(() => parseMigrationCookie(good, { ...EXPECT, uuid: HOST_B }), ErrorType.OperationInvalid, /domain UUID .* expected c4d8e1f2/);
  });

  it('a bad UUID', () => {
    expectVmError(
      () => parseMigrationCookie(good.replace(UUID, 'not-a-uuid'), EXPECT),
      ErrorType.XmlError,
      /<uuid> 'not-a-uuid' is not a UUID at \/qemu-migration\/uuid/,
    );
    expectVmError(() => parseMigrationCookie(good.replace(HOST_A, `${HOST_A}0`), EXPECT), ErrorType.XmlError, /<hostuuid> .* is not a UUID/);
  });

  it('an unknown mandatory feature is refused, an unknown optional element is accepted', () => {
    expectVmError(
      () => parseMigrationCookie(cookieWith("<feature name='teleport'/>"), EXPECT),
      ErrorType.OperationInvalid,
      /unknown mandatory feature 'teleport'/,
    );
    // Known to libvirt but not understood in this phase.
    expectVmError(
      () => parseMigrationCookie(cookieWith("<feature name='cpu-hotplug'/>"), EXPECT),
      ErrorType.OperationInvalid,
      /'cpu-hotplug' is not supported here/,
    );
    expectVmError(() => parseMigrationCookie(cookieWith('<feature/>'), EXPECT), ErrorType.XmlError, /missing attribute 'name'/);
    const c = parseMigrationCookie(cookieWith("<teleport mode='instant'><beam/></teleport><allowReboot value='yes'/>"), EXPECT);
    expect(c.features).toEqual([]);
    expect(c.mandatory).toEqual([]);
  });

  it('missing hostuuid (and hostname)', () => {
    expectVmError(() => parseMigrationCookie(good.replace(/ *<hostuuid>.*<\/hostuuid>\n/, ''), EXPECT), ErrorType.XmlError, /missing <hostuuid> element/);
    expectVmError(
      () => parseMigrationCookie(good.replace('<hostname>host-a.example</hostname>', '<hostname></hostname>'), EXPECT),
      ErrorType.XmlError,
      /<hostname> is empty/,
    );
  });

  it('a __proto__ element or attribute', () => {
    expectVmError(
      () => parseMigrationCookie(cookieWith('<__proto__><polluted>1</polluted></__proto__>'), EXPECT),
      ErrorType.XmlError,
      /name '__proto__' is not allowed/,
    );
    expectVmError(() => parseMigrationCookie(cookieWith("<nbd constructor='1'/>"), EXPECT), ErrorType.XmlError, /name 'constructor' is not allowed/);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('duplicate name elements', () => {
    expectVmError(() => parseMigrationCookie(good.replace('</name>', '</name><name>web-01</name>'), EXPECT), ErrorType.XmlError, /<name> may appear only once/);
    expectVmError(() => parseMigrationCookie(cookieWith(`<nbd/><nbd port='2'/>`), EXPECT), ErrorType.XmlError, /<nbd> may appear only once/);
  });

  it('persistent without a domain, or with two', () => {
    expectVmError(
      () => parseMigrationCookie(cookieWith("<feature name='persistent'/>"), EXPECT),
      ErrorType.XmlError,
      /'persistent' is mandatory but there is no <domain>/,
    );
    expectVmError(
      () => parseMigrationCookie(cookieWith("<feature name='persistent'/><domain/><domain/>"), EXPECT),
      ErrorType.XmlError,
      /<domain> may appear only once/,
    );
  });

  it('same-host migration (host UUID equals ours)', () => {
    expectVmError(() => parseMigrationCookie(good, { ...EXPECT, localHostUuid: HOST_A }), ErrorType.OperationInvalid, /same host/);
    expect(parseMigrationCookie(good, { ...EXPECT, localHostUuid: HOST_B }).hostuuid).toBe(HOST_A);
  });

  it('bad values inside modelled elements', () => {
    expectVmError(
      () => parseMigrationCookie(cookieWith("<graphics type='vnc' port='99999' listen='::'/>"), EXPECT),
      ErrorType.XmlError,
      /graphics port 99999 is out of range/,
    );
    expectVmError(() => parseMigrationCookie(cookieWith("<graphics type='spice' port='1' listen='::'/>"), EXPECT), ErrorType.XmlError, /tlsPort/);
    expectVmError(
      () => parseMigrationCookie(cookieWith("<graphics type='teletype' port='1' listen='::'/>"), EXPECT),
      ErrorType.XmlError,
      /unknown graphics type/,
    );
    expectVmError(
      () => parseMigrationCookie(cookieWith('<lockstate><leases>x</leases></lockstate>'), EXPECT),
      ErrorType.XmlError,
      /missing attribute 'driver' at \/qemu-migration\/lockstate\/@driver/,
    );
    expectVmError(
      () => parseMigrationCookie(cookieWith("<nbd><disk target='vda' capacity='12e3'/></nbd>"), EXPECT),
      ErrorType.XmlError,
      /disk capacity '12e3' is not an integer/,
    );
    expectVmError(
      () => parseMigrationCookie(cookieWith("<nbd><disk target='vda' capacity='1' clusterSize='7'/></nbd>"), EXPECT),
      ErrorType.XmlError,
      /disk cluster size 7 is out of range/,
    );
    expectVmError(
      () => parseMigrationCookie(cookieWith("<nbd><disk target='vda' capacity='1' allocation='-5'/></nbd>"), EXPECT),
      ErrorType.XmlError,
      /disk allocation/,
    );
    expectVmError(
      () => parseMigrationCookie(cookieWith('<statistics><downtime>-1</downtime></statistics>'), EXPECT),
      ErrorType.XmlError,
      /downtime -1 is out of range/,
    );
    expectVmError(
      () => parseMigrationCookie(cookieWith('<statistics><downtime>99999999999999999</downtime></statistics>'), EXPECT),
      ErrorType.XmlError,
      /out of range/,
    );
    expectVmError(() => parseMigrationCookie(cookieWith('<network><interface index="0"/></network>'), EXPECT), ErrorType.XmlError, /vporttype/);
    expectVmError(
      () => parseMigrationCookie(cookieWith('<capabilities><cap auto="yes"/></capabilities>'), EXPECT),
      ErrorType.XmlError,
      /missing attribute 'name'/,
    );
  });

  it('deep nesting and non-string input', () => {
    const deep = `${'<x>'.repeat(40)}${'</x>'.repeat(40)}`;
    expectVmError(() => parseMigrationCookie(cookieWith(deep), EXPECT), ErrorType.XmlError, /nested deeper/);
    expectVmError(() => parseMigrationCookie(42 as unknown as string, EXPECT), ErrorType.XmlError, /must be a string/);
  });

  it('stays fast on pathological input just under the limit', () => {
    const inputs = [
      cookieWith(` ${'a'.repeat(MAX_COOKIE_BYTES - 200)}`),
      `<qemu-migration ${'a="1" '.repeat(2500)}/>`,
      `<qemu-migration x='${'<'.repeat(MAX_COOKIE_BYTES - 40)}'/>`,
      `${'<a '.repeat(5000)}`,
      cookieWith(`<statistics>${'&amp;'.repeat(3000)}</statistics>`),
    ];
    for (const input of inputs) {
      const t0 = performance.now();
      try {
        parseMigrationCookie(input, EXPECT);
      } catch {
        /* refused is fine; hanging is not */
      }
      expect(performance.now() - t0).toBeLessThan(1000);
    }
  });
});

describe('migration cookie: elements vmferry does not model pass through', () => {
  // As libvirt writes them (its indentation), some in double quotes.
  const CPU = `<cpu mode="host-model" check='partial'>\n    <model fallback='allow'>Skylake-Client</model>\n    <feature policy="require" name='x2apic'/>\n  </cpu>`;
  const REBOOT = `<allowReboot value="yes"/>`;
  const BITMAPS = `<blockDirtyBitmaps>\n    <disk target='vda'>\n      <bitmap name='b1' alias='libvirt-vda-b1'/>\n    </disk>\n  </blockDirtyBitmaps>`;
  const FUTURE = `<teleport mode='instant'><!-- later --><beam power="9"/>x &amp; y</teleport>`;
  const singleQuoted = (s: string): string => s.replace(/"/g, "'");

  it('parse then format gives the elements back byte-equal apart from quote style', () => {
    const xml = cookieWith(`\n  <feature name='lockstate'/>\n  <lockstate driver='sanlock'/>\n  ${CPU}\n  ${REBOOT}\n  ${BITMAPS}\n  ${FUTURE}\n`);
    const c = parseMigrationCookie(xml, EXPECT);
    expect(c.unmodelled).toEqual([CPU, REBOOT, BITMAPS, FUTURE].map(singleQuoted));
    const out = formatMigrationCookie(c);
    for (const el of [CPU, REBOOT, BITMAPS, FUTURE]) expect(out).toContain(`\n  ${singleQuoted(el)}\n`);
    // libvirt's order: cpu and allowReboot before capabilities, blockDirtyBitmaps after; unknown last.
    const at = (s: string) => out.indexOf(s);
    expect(at('<lockstate')).toBeLessThan(at('<cpu'));
    expect(at('<cpu')).toBeLessThan(at('<allowReboot'));
    expect(at('<allowReboot')).toBeLessThan(at('<blockDirtyBitmaps'));
    expect(at('<blockDirtyBitmaps')).toBeLessThan(at('<teleport'));
    // And a second trip changes nothing.
    expect(formatMigrationCookie(parseMigrationCookie(out, EXPECT))).toBe(out);
    expect(parseMigrationCookie(out, EXPECT)).toEqual(c);
  });

  it('keeps them next to modelled data in libvirt order', () => {
    const c = { ...fullCookie(), unmodelled: [singleQuoted(BITMAPS), singleQuoted(REBOOT), singleQuoted(CPU)] };
    const out = formatMigrationCookie(c);
    const order = ['<statistics>', '<cpu', '<allowReboot', '<capabilities>', '<blockDirtyBitmaps>'].map((t) => out.indexOf(t));
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(parseMigrationCookie(out, EXPECT).unmodelled).toEqual([CPU, REBOOT, BITMAPS].map(singleQuoted));
  });

  it('leaves out data of modelled features the phase does not understand, like libvirt', () => {
    const xml = formatMigrationCookie({ ...fullCookie(), mandatory: [], unmodelled: [REBOOT] });
    const c = parseMigrationCookie(xml, { ...EXPECT, understood: ['lockstate', 'persistent'] });
    expect(c.unmodelled).toEqual([singleQuoted(REBOOT)]);
    expect(c.graphics).toBeUndefined();
  });

  it('hostile content inside an unmodelled element is still refused with the same typed errors', () => {
    expectVmError(() => parseMigrationCookie(cookieWith('<cpu mode="&xxe;"/>'), EXPECT), ErrorType.XmlError, /entity '&xxe;' is not defined/);
    expectVmError(() => parseMigrationCookie(cookieWith('<cpu>&xxe;</cpu>'), EXPECT), ErrorType.XmlError, /entity '&xxe;' is not defined/);
    expectVmError(
      () => parseMigrationCookie(`<!DOCTYPE qemu-migration [<!ENTITY a "aaaa">]>${cookieWith('<cpu>&a;</cpu>')}`, EXPECT),
      ErrorType.XmlError,
      /DOCTYPE/,
    );
    expectVmError(
      () => parseMigrationCookie(cookieWith(`<blockDirtyBitmaps>${'<disk/>'.repeat(3000)}</blockDirtyBitmaps>`), EXPECT),
      ErrorType.XmlError,
      /too large/,
    );
    const deep = `<blockDirtyBitmaps>${'<d>'.repeat(7)}${'</d>'.repeat(7)}</blockDirtyBitmaps>`;
    expectVmError(
      () => parseMigrationCookie(cookieWith(deep), EXPECT),
      ErrorType.XmlError,
      /nested deeper than 8 levels at \/qemu-migration\/blockDirtyBitmaps\/d/,
    );
    expectVmError(() => parseMigrationCookie(cookieWith('<cpu><__proto__/></cpu>'), EXPECT), ErrorType.XmlError, /name '__proto__' is not allowed/);
    expectVmError(() => parseMigrationCookie(cookieWith("<cpu toString='x'/>"), EXPECT), ErrorType.XmlError, /name 'toString' is not allowed/);
    // Six levels below the root element are fine.
    const ok = `<blockDirtyBitmaps>${'<d>'.repeat(6)}${'</d>'.repeat(6)}</blockDirtyBitmaps>`;
    expect(parseMigrationCookie(cookieWith(ok), EXPECT).unmodelled).toEqual([ok.replace(/<d><\/d>/, '<d/>')]);
  });

  it('refuses to format unmodelled XML the receiver would refuse', () => {
    const refuse = (unmodelled: string[], re: RegExp) =>
      expectVmError(() => formatMigrationCookie({ ...fullCookie(), unmodelled }), ErrorType.OperationInvalid, re);
    refuse(['<cpu>&xxe;</cpu>'], /unmodelled element is not usable: entity '&xxe;' is not defined/);
    refuse(['<!DOCTYPE cpu [<!ENTITY a "b">]><cpu>&a;</cpu>'], /DOCTYPE/);
    refuse(['<cpu/><allowReboot/>'], /one root element/);
    refuse(['<!-- c --><cpu/>'], /single element/);
    refuse(["<graphics type='vnc' port='1' listen='::'/>"], /<graphics> is modelled/);
    refuse([`<a>${'<d>'.repeat(7)}${'</d>'.repeat(7)}</a>`], /nested deeper/);
    refuse(['<cpu>'], /not well-formed/);
    refuse([`<blob>${'x'.repeat(MAX_COOKIE_BYTES)}</blob>`], /too large/);
  });
});
