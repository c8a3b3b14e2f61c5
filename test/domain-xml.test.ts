// Domain XML model: round trip, edits, migratable form, memory units and
// hostile input. Pure code, no Temporal server or QEMU needed.
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ErrorType } from '../src/common/errors.js';
import { cloneDomainDef, formatDomainXml, memoryToKiB, migratableDomainDef, migratableDomainXml, parseDomainXml, type DomainDef } from '../src/domain/index.js';

/** A live domain as `virsh dumpxml` prints it for a running guest. */
const LIBVIRT_XML = `<domain type='kvm' id='7' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>web-01</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <title>Web server &amp; cache</title>
  <description>Front end for &lt;shop&gt;, owned by team "blue".
Second line of notes.</description>
  <metadata>
    <app1:foo xmlns:app1='http://app1.org/app1/'>fooish</app1:foo>
    <vmferry:info xmlns:vmferry='urn:example:vmferry'>
      <vmferry:owner team='blue'>ops</vmferry:owner>
    </vmferry:info>
  </metadata>
  <memory unit='KiB'>1048576</memory>
  <currentMemory unit='KiB'>524288</currentMemory>
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
  </memoryBacking>
  <vcpu placement='static' current='1'>2</vcpu>
  <resource>
    <partition>/machine</partition>
  </resource>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <boot dev='hd'/>
    <boot dev='cdrom'/>
  </os>
  <features>
    <acpi/>
    <apic/>
    <vmport state='off'/>
  </features>
  <cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>qemu64</model>
    <feature policy='require' name='x2apic'/>
  </cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <pm>
    <suspend-to-mem enabled='no'/>
    <suspend-to-disk enabled='no'/>
  </pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' io='native'/>
      <source file='/var/lib/libvirt/images/web-01.qcow2' index='2'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/install.iso' index='1'/>
      <backingStore/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
      <alias name='ide0-1-0'/>
      <address type='drive' controller='0' bus='1' target='0' unit='0'/>
    </disk>
    <controller type='usb' index='0' model='piix3-uhci'>
      <alias name='usb'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'>
      <alias name='pci.0'/>
    </controller>
    <controller type='ide' index='0'>
      <alias name='ide'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x1'/>
    </controller>
    <interface type='network'>
      <mac address='52:54:00:6d:90:02'/>
      <source network='default' portid='0c7e1f9b-1bbd-4f4c-8e0b-0a5e4b1f1a11' bridge='virbr0'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <serial type='pty'>
      <source path='/dev/pts/3'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
      <alias name='serial0'/>
    </serial>
    <console type='pty' tty='/dev/pts/3'>
      <source path='/dev/pts/3'/>
      <target type='serial' port='0'/>
      <alias name='serial0'/>
    </console>
    <channel type='spicevmc'>
      <target type='virtio' name='com.redhat.spice.0' state='disconnected'/>
      <alias name='channel0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <input type='tablet' bus='usb'>
      <alias name='input0'/>
      <address type='usb' bus='0' port='1'/>
    </input>
    <graphics type='vnc' port='5900' autoport='yes' listen='127.0.0.1' passwd='s3cr&apos;t'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <graphics type='spice' port='5901' tlsPort='5902' autoport='yes' listen='0.0.0.0'>
      <listen type='address' address='0.0.0.0'/>
      <image compression='off'/>
    </graphics>
    <video>
      <model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='1' primary='yes'/>
      <alias name='video0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </video>
    <memballoon model='virtio'>
      <stats period='10'/>
      <alias name='balloon0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </memballoon>
  </devices>
  <seclabel type='dynamic' model='dac' relabel='yes'>
    <label>+64055:+64055</label>
    <imagelabel>+64055:+64055</imagelabel>
  </seclabel>
  <qemu:commandline>
    <qemu:arg value='-no-user-config'/>
  </qemu:commandline>
</domain>
`;

/** Double-quoted attributes, the way other tools write the same document. */
function toDoubleQuotes(xml: string): string {
  return xml.replace(/(\s[A-Za-z_:][\w:.-]*)='([^'"]*)'/g, '$1="$2"');
}

/**
 * The comparison used for round trips: attribute quotes normalised to single
 * quotes (as libvirt and formatDomainXml write them), nothing else.
 */
function normaliseQuotes(xml: string): string {
  return xml.replace(/(\s[A-Za-z_:][\w:.-]*)="([^"]*)"/g, (_m, name: string, value: string) => `${name}='${value.replace(/'/g, '&apos;')}'`);
}

/** Lines that differ between two texts of the same line count. */
function changedLines(before: string, after: string): { line: number; before: string; after: string }[] {
  const a = before.split('\n');
  const b = after.split('\n');
  expect(b.length).toBe(a.length);
  return a.flatMap((l, i) => (l === b[i] ? [] : [{ line: i + 1, before: l, after: b[i] ?? '' }]));
}

function catchVmError(fn: () => unknown, type: ErrorType): ApplicationFailure {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    const failure = err as ApplicationFailure;
    expect(failure.type).toBe(type);
    expect(failure.nonRetryable).toBe(true);
    return failure;
  }
  throw new Error(`expected ${type}, nothing was thrown`);
}

function catchXmlError(fn: () => unknown): ApplicationFailure {
  return catchVmError(fn, ErrorType.XmlError);
}

/** A small valid domain, with pieces replaceable for the hostile cases. */
function domainXml(parts: { top?: string; devices?: string; name?: string; memory?: string; root?: string } = {}): string {
  const root = parts.root ?? "domain type='kvm'";
  const rootName = root.split(' ')[0] ?? 'domain';
  return [
    `<${root}>`,
    parts.name ?? '  <name>t1</name>',
    '  <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>',
    parts.memory ?? "  <memory unit='MiB'>256</memory>",
    '  <os>',
    "    <type arch='x86_64' machine='pc'>hvm</type>",
    '  </os>',
    parts.top ?? '',
    '  <devices>',
    parts.devices ?? "    <disk type='file' device='disk'>\n      <source file='/img/a.raw'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>",
    '  </devices>',
    `</${rootName}>`,
    '',
  ].join('\n');
}

function disk(dev: string, extra = ''): string {
  return `    <disk type='file' device='disk'>\n${extra}      <source file='/img/${dev}.qcow2'/>\n      <target dev='${dev}' bus='virtio'/>\n    </disk>`;
}

describe('round trip', () => {
  it('formats a libvirt domain back byte for byte', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    expect(formatDomainXml(def)).toBe(LIBVIRT_XML);
  });

  it('reads the modelled values', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    expect(def).toMatchObject({
      type: 'kvm',
      id: 7,
      name: 'web-01',
      uuid: '4dea22b3-1d52-d8f3-2516-782e98ab3fa0',
      title: 'Web server & cache',
      description: 'Front end for <shop>, owned by team "blue".\nSecond line of notes.',
      memoryKiB: 1048576,
      currentMemoryKiB: 524288,
      vcpus: 2,
      vcpuPlacement: 'static',
      vcpusCurrent: 1,
      os: { type: 'hvm', arch: 'x86_64', machine: 'pc-i440fx-7.2', boot: ['hd', 'cdrom'] },
      cpu: { mode: 'custom', model: 'qemu64' },
      features: ['acpi', 'apic', 'vmport'],
      clock: { offset: 'utc' },
      onPoweroff: 'destroy',
      onReboot: 'restart',
      onCrash: 'destroy',
      memoryBacking: { sourceType: 'file', accessMode: 'shared' },
    });
    const { devices } = def;
    expect(devices.emulator).toBe('/usr/bin/qemu-system-x86_64');
    expect(devices.memballoon).toMatchObject({ model: 'virtio', address: { type: 'pci' } });
    expect(devices.disks.map(({ preserved: _p, ...d }) => d)).toEqual([
      {
        type: 'file',
        device: 'disk',
        driver: { name: 'qemu', type: 'qcow2', cache: 'none' },
        source: { file: '/var/lib/libvirt/images/web-01.qcow2' },
        target: { dev: 'vda', bus: 'virtio' },
        readonly: false,
        shareable: false,
        address: { type: 'pci', domain: '0x0000', bus: '0x00', slot: '0x04', function: '0x0' },
        alias: 'virtio-disk0',
      },
      {
        type: 'file',
        device: 'cdrom',
        driver: { name: 'qemu', type: 'raw' },
        source: { file: '/var/lib/libvirt/images/install.iso' },
        target: { dev: 'hdc', bus: 'ide' },
        readonly: true,
        shareable: false,
        address: { type: 'drive', controller: '0', bus: '1', target: '0', unit: '0' },
        alias: 'ide0-1-0',
      },
    ]);
    expect(devices.graphics.map(({ preserved: _p, ...g }) => g)).toEqual([
      { type: 'vnc', port: 5900, autoport: true, listen: '127.0.0.1', listens: [{ type: 'address', address: '127.0.0.1' }], passwd: "s3cr't" },
      { type: 'spice', port: 5901, tlsPort: 5902, autoport: true, listen: '0.0.0.0', listens: [{ type: 'address', address: '0.0.0.0' }] },
    ]);
    expect(devices.serials.map(({ preserved: _p, ...s }) => s)).toEqual([
      { type: 'pty', sourcePath: '/dev/pts/3', targetType: 'isa-serial', targetPort: 0, alias: 'serial0' },
    ]);
    expect(devices.consoles.map(({ preserved: _p, ...s }) => s)).toEqual([
      { type: 'pty', sourcePath: '/dev/pts/3', tty: '/dev/pts/3', targetType: 'serial', targetPort: 0, alias: 'serial0' },
    ]);
  });

  it('parse -> format -> parse gives an equal model', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    expect(parseDomainXml(formatDomainXml(def))).toEqual(def);
  });

  it('is plain JSON: a definition that went through JSON formats the same', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    const travelled = JSON.parse(JSON.stringify(def)) as DomainDef;
    expect(travelled).toEqual(def);
    expect(formatDomainXml(travelled)).toBe(LIBVIRT_XML);
  });

  it('double-quoted input comes back equal after normalising quotes, and CRLF as LF', () => {
    const dq = toDoubleQuotes(LIBVIRT_XML);
    expect(dq).not.toBe(LIBVIRT_XML);
    expect(normaliseQuotes(dq)).toBe(LIBVIRT_XML);
    expect(formatDomainXml(parseDomainXml(dq))).toBe(normaliseQuotes(dq));
    expect(formatDomainXml(parseDomainXml(dq.replace(/\n/g, '\r\n')))).toBe(LIBVIRT_XML);
  });

  it('keeps comments, CDATA, the XML declaration and entity spellings', () => {
    const xml = [
      "<?xml version='1.0' encoding='UTF-8'?>",
      '<!-- generated by hand -->',
      "<domain type='qemu'>",
      '  <name>a&#45;b</name>',
      '  <!-- memory below -->',
      "  <memory unit='GiB'>1</memory>",
      '  <description><![CDATA[raw <text> & more]]></description>',
      '  <os><type>hvm</type></os>',
      "  <unknown a='&quot;x&quot;' b='&#x41;'>t&gt;</unknown>",
      '</domain>',
      '<!-- trailer -->',
      '',
    ].join('\n');
    const def = parseDomainXml(xml);
    expect(def.name).toBe('a-b');
    expect(def.description).toBe('raw <text> & more');
    expect(def.memoryKiB).toBe(1048576);
    expect(def.devices).toEqual({ disks: [], graphics: [], serials: [], consoles: [] });
    const out = formatDomainXml(def);
    // Only the generated UUID is new.
    expect(out.replace(/\n  <uuid>[0-9a-f-]{36}<\/uuid>/, '')).toBe(xml);
    expect(def.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(out).toContain(`  <name>a&#45;b</name>\n  <uuid>${def.uuid}</uuid>\n`);
  });

  it('spells empty elements <a/> and drops blanks inside tags', () => {
    const xml = domainXml({ top: "  <pm  >\n    <suspend-to-mem enabled = 'no' ></suspend-to-mem>\n  </pm>" });
    expect(formatDomainXml(parseDomainXml(xml))).toBe(
      xml.replace('<pm  >', '<pm>').replace("<suspend-to-mem enabled = 'no' ></suspend-to-mem>", "<suspend-to-mem enabled='no'/>"),
    );
  });

  it('normalises a UUID without dashes to dashed lowercase', () => {
    const xml = domainXml().replace('c7a5fdbd-cdaf-9455-926a-d65c16db1809', 'C7A5FDBDCDAF9455926AD65C16DB1809');
    const def = parseDomainXml(xml);
    expect(def.uuid).toBe('c7a5fdbd-cdaf-9455-926a-d65c16db1809');
    expect(formatDomainXml(def)).toBe(domainXml());
  });

  it('reads the multiboot test guest (kernel, cmdline, shared file memory)', () => {
    const xml = domainXml({
      top: "  <memoryBacking>\n    <source type='file'/>\n    <access mode='shared'/>\n  </memoryBacking>",
      devices:
        "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n    <memballoon model='none'/>",
    }).replace(
      "    <type arch='x86_64' machine='pc'>hvm</type>",
      "    <type arch='i686' machine='pc'>hvm</type>\n    <kernel>/var/lib/vmferry/dirty.elf</kernel>\n    <cmdline>start=0x1000000 len=0x20000000</cmdline>",
    );
    const def = parseDomainXml(xml);
    expect(def.os).toEqual({
      type: 'hvm',
      arch: 'i686',
      machine: 'pc',
      boot: [],
      kernel: '/var/lib/vmferry/dirty.elf',
      cmdline: 'start=0x1000000 len=0x20000000',
    });
    expect(def.memoryBacking).toEqual({ sourceType: 'file', accessMode: 'shared' });
    expect(def.devices.disks).toEqual([]);
    expect(def.devices.memballoon).toEqual({ model: 'none' });
    expect(formatDomainXml(def)).toBe(xml);
  });
});

describe('edits', () => {
  it('writes changed name, disk source and graphics listen in place, nothing else', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    def.name = 'web-02';
    const vda = def.devices.disks[0];
    const vnc = def.devices.graphics[0];
    if (vda?.source === undefined || vnc === undefined) throw new Error('fixture');
    vda.source.file = "/srv/images/web-02 & 'co'.qcow2";
    vnc.listen = '::1';
    vnc.listens = [{ type: 'address', address: '::1' }];
    const out = formatDomainXml(def);
    expect(changedLines(LIBVIRT_XML, out)).toEqual([
      { line: 2, before: '  <name>web-01</name>', after: '  <name>web-02</name>' },
      {
        line: 53,
        before: "      <source file='/var/lib/libvirt/images/web-01.qcow2' index='2'/>",
        after: "      <source file='/srv/images/web-02 &amp; &apos;co&apos;.qcow2' index='2'/>",
      },
      {
        line: 108,
        before: "    <graphics type='vnc' port='5900' autoport='yes' listen='127.0.0.1' passwd='s3cr&apos;t'>",
        after: "    <graphics type='vnc' port='5900' autoport='yes' listen='::1' passwd='s3cr&apos;t'>",
      },
      { line: 109, before: "      <listen type='address' address='127.0.0.1'/>", after: "      <listen type='address' address='::1'/>" },
    ]);
    const again = parseDomainXml(out);
    expect(again.name).toBe('web-02');
    expect(again.devices.disks[0]?.source?.file).toBe("/srv/images/web-02 & 'co'.qcow2");
  });

  it('keeps the listen attribute and the first <listen> in step when only one is edited', () => {
    const byAttr = parseDomainXml(LIBVIRT_XML);
    const spice = byAttr.devices.graphics[1];
    if (spice === undefined) throw new Error('fixture');
    spice.listen = '192.0.2.10';
    expect(parseDomainXml(formatDomainXml(byAttr)).devices.graphics[1]?.listens).toEqual([{ type: 'address', address: '192.0.2.10' }]);

    const byElement = parseDomainXml(LIBVIRT_XML);
    const first = byElement.devices.graphics[1]?.listens[0];
    if (first === undefined) throw new Error('fixture');
    first.address = '192.0.2.11';
    expect(parseDomainXml(formatDomainXml(byElement)).devices.graphics[1]?.listen).toBe('192.0.2.11');
  });

  it('rewrites memory in KiB only when the value changed', () => {
    const def = parseDomainXml(domainXml());
    expect(formatDomainXml(def)).toContain("<memory unit='MiB'>256</memory>");
    def.memoryKiB = 524288;
    def.currentMemoryKiB = 262144;
    const out = formatDomainXml(def);
    expect(out).toContain("  <memory unit='KiB'>524288</memory>\n  <currentMemory unit='KiB'>262144</currentMemory>\n  <os>");
  });

  it('removes runtime-only bits and devices, adds devices in libvirt order', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    delete def.id;
    for (const c of [...def.devices.serials, ...def.devices.consoles]) {
      delete c.sourcePath;
      delete c.tty;
    }
    def.devices.disks.splice(1, 1); // the cdrom
    def.devices.disks.push({
      type: 'file',
      device: 'disk',
      driver: { name: 'qemu', type: 'raw', cache: 'writeback' },
      source: { file: '/var/lib/libvirt/images/data.raw' },
      target: { dev: 'vdb', bus: 'virtio' },
      readonly: false,
      shareable: true,
    });
    def.devices.graphics.splice(1, 1); // spice
    def.features = ['acpi', 'pae'];
    const out = formatDomainXml(def);
    expect(out.startsWith("<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n")).toBe(true);
    expect(out).not.toContain('/dev/pts/3');
    expect(out).not.toContain('install.iso');
    expect(out).not.toContain("type='spice'");
    expect(out).toContain('  <features>\n    <acpi/>\n    <pae/>\n  </features>\n');
    expect(out).toContain(
      [
        "      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>",
        '    </disk>',
        "    <disk type='file' device='disk'>",
        "      <driver name='qemu' type='raw' cache='writeback'/>",
        "      <source file='/var/lib/libvirt/images/data.raw'/>",
        "      <target dev='vdb' bus='virtio'/>",
        '      <shareable/>',
        '    </disk>',
        "    <controller type='usb' index='0' model='piix3-uhci'>",
      ].join('\n'),
    );
    expect(out).toContain("    <serial type='pty'>\n      <target type='isa-serial' port='0'>");
    expect(out).toContain("    <console type='pty'>\n      <target type='serial' port='0'/>");
    // Unmodelled content is still there, untouched.
    for (const keep of [
      "    <vmferry:info xmlns:vmferry='urn:example:vmferry'>\n      <vmferry:owner team='blue'>ops</vmferry:owner>\n    </vmferry:info>",
      "      <source network='default' portid='0c7e1f9b-1bbd-4f4c-8e0b-0a5e4b1f1a11' bridge='virbr0'/>",
      "  <qemu:commandline>\n    <qemu:arg value='-no-user-config'/>\n  </qemu:commandline>",
      "      <driver name='qemu' type='qcow2' cache='none' io='native'/>",
    ]) {
      expect(out).toContain(keep);
    }
    const again = parseDomainXml(out);
    expect(again.devices.disks.map((d) => d.target.dev)).toEqual(['vda', 'vdb']);
    expect(again.devices.disks[1]?.shareable).toBe(true);
  });

  it('formats a definition built in code (no preserved tree) in libvirt order', () => {
    const def: DomainDef = {
      type: 'qemu',
      name: 'dirty-guest',
      uuid: '0f0e0d0c-0b0a-4908-8706-050403020100',
      memoryKiB: 1048576,
      currentMemoryKiB: 1048576,
      vcpus: 1,
      os: { type: 'hvm', arch: 'i686', machine: 'pc', boot: [], kernel: '/tmp/prog.elf', cmdline: 'len=512M' },
      features: ['acpi'],
      memoryBacking: { sourceType: 'file', accessMode: 'shared' },
      devices: {
        emulator: '/usr/bin/qemu-system-x86_64',
        disks: [],
        graphics: [{ type: 'vnc', port: -1, autoport: true, listens: [{ type: 'address', address: '127.0.0.1' }] }],
        serials: [{ type: 'pty', targetPort: 0 }],
        consoles: [],
        memballoon: { model: 'none' },
      },
    };
    const xml = formatDomainXml(def);
    expect(xml).toBe(
      [
        "<domain type='qemu'>",
        '  <name>dirty-guest</name>',
        '  <uuid>0f0e0d0c-0b0a-4908-8706-050403020100</uuid>',
        "  <memory unit='KiB'>1048576</memory>",
        '  <memoryBacking>',
        "    <source type='file'/>",
        "    <access mode='shared'/>",
        '  </memoryBacking>',
        '  <vcpu>1</vcpu>',
        '  <os>',
        "    <type arch='i686' machine='pc'>hvm</type>",
        '    <kernel>/tmp/prog.elf</kernel>',
        '    <cmdline>len=512M</cmdline>',
        '  </os>',
        '  <features>',
        '    <acpi/>',
        '  </features>',
        '  <devices>',
        '    <emulator>/usr/bin/qemu-system-x86_64</emulator>',
        "    <serial type='pty'>",
        "      <target port='0'/>",
        '    </serial>',
        "    <graphics type='vnc' port='-1' autoport='yes'>",
        "      <listen type='address' address='127.0.0.1'/>",
        '    </graphics>',
        "    <memballoon model='none'/>",
        '  </devices>',
        '</domain>',
        '',
      ].join('\n'),
    );
    const { preserved: _p, ...model } = parseDomainXml(xml);
    expect({
      ...model,
      devices: {
        ...model.devices,
        graphics: model.devices.graphics.map(({ preserved: _g, ...g }) => g),
        serials: model.devices.serials.map(({ preserved: _s, ...s }) => s),
      },
    }).toEqual(def);
  });

  it('validates edits before formatting', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    const vdb = def.devices.disks[1];
    if (vdb === undefined) throw new Error('fixture');
    vdb.target.dev = 'vda';
    expect(catchXmlError(() => formatDomainXml(def)).message).toBe(
      "disk target 'vda' is already used by /domain/devices/disk[1] at /domain/devices/disk[2]/target/@dev",
    );
    const bad = parseDomainXml(LIBVIRT_XML);
    bad.name = 'a\u0001b';
    expect(catchXmlError(() => formatDomainXml(bad)).message).toMatch(/at \/domain\/name$/);
  });

  it('refuses preserved XML that was tampered with on the way', () => {
    const good = JSON.parse(JSON.stringify(parseDomainXml(domainXml()))) as DomainDef;
    const doctype = { ...good, preserved: `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>${good.preserved ?? ''}` };
    expect(catchXmlError(() => formatDomainXml(doctype)).message).toMatch(/^preserved XML of the domain is unusable: <!DOCTYPE>/);
    const swapped = cloneDomainDef(good);
    const vda = swapped.devices.disks[0];
    if (vda === undefined) throw new Error('fixture');
    vda.preserved = "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'/>";
    expect(catchXmlError(() => formatDomainXml(swapped)).message).toMatch(
      /^preserved XML of \/domain\/devices\/disk\[1\] is unusable: root element is <qemu:commandline>, expected <disk>/,
    );
    const injected = { ...good, preserved: (good.preserved ?? '').replace('<os>', '<os><?php system() ?>') };
    expect(catchXmlError(() => formatDomainXml(injected)).message).toMatch(/processing instruction <\?php> is not supported/);
    expect(catchXmlError(() => formatDomainXml({ ...good, devices: { ...good.devices, disks: 'x' as unknown as [] } })).message).toMatch(
      /disks must be a list/,
    );
    const slotOutside = { ...good, preserved: (good.preserved ?? '').replace('<os>', '<os><?vmferry-slot-disk?>') };
    expect(catchXmlError(() => formatDomainXml(slotOutside)).message).toMatch(/misplaced slot marker for <disk>/);
  });

  it('keeps the preserved parts as compact XML text', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    expect(typeof def.preserved).toBe('string');
    expect(def.preserved).toContain('<?vmferry-slot-disk?>');
    expect(def.devices.disks[0]?.preserved?.startsWith("<disk type='file' device='disk'>")).toBe(true);
    expect(JSON.stringify(def).length).toBeLessThan(3 * LIBVIRT_XML.length);
  });

  it('does not accept slot markers in user input', () => {
    expect(catchXmlError(() => parseDomainXml(domainXml({ devices: '    <?vmferry-slot-disk?>' }))).message).toMatch(
      /processing instruction <\?vmferry-slot-disk> is not supported at \/domain\/devices/,
    );
  });
});

describe('cloneDomainDef', () => {
  it('gives a deep copy', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    const copy = cloneDomainDef(def);
    expect(copy).toEqual(def);
    copy.name = 'other';
    copy.devices.disks[0]!.source = { file: '/elsewhere.qcow2' };
    copy.devices.graphics[0]!.listens[0]!.address = '10.0.0.1';
    copy.features.push('pae');
    copy.preserved = (copy.preserved ?? '').replace('<pm>', "<pm x='y'>");
    expect(formatDomainXml(def)).toBe(LIBVIRT_XML);
    expect(def.devices.disks[0]?.source?.file).toBe('/var/lib/libvirt/images/web-01.qcow2');
  });
});

describe('migratable form', () => {
  it('drops the id, pty paths, aliases, autoport ports and other live-only data', () => {
    const def = parseDomainXml(LIBVIRT_XML);
    const xml = migratableDomainXml(def);
    expect(xml.startsWith("<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n")).toBe(true);
    expect(xml).not.toMatch(/ id='7'/);
    expect(xml).not.toContain('/dev/pts/');
    expect(xml).not.toContain(' tty=');
    expect(xml).not.toContain('<alias');
    expect(xml).not.toContain("dev='vnet3'");
    expect(xml).not.toContain("state='disconnected'");
    expect(xml).toContain("<source file='/var/lib/libvirt/images/web-01.qcow2'/>");
    expect(xml).not.toContain('<label>');
    expect(xml).toContain("    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='s3cr&apos;t'>");
    expect(xml).toContain("    <graphics type='spice' port='-1' tlsPort='-1' autoport='yes' listen='0.0.0.0'>");
    expect(xml).toContain(
      "    <serial type='pty'>\n      <target type='isa-serial' port='0'>\n        <model name='isa-serial'/>\n      </target>\n    </serial>",
    );
    expect(xml).toContain("    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>");
    expect(xml).toContain("  <seclabel type='dynamic' model='dac' relabel='yes'/>");
    expect(xml).toContain("<vmferry:owner team='blue'>ops</vmferry:owner>");
    // The source definition is untouched and the result parses.
    expect(formatDomainXml(def)).toBe(LIBVIRT_XML);
    const m = parseDomainXml(xml);
    expect(m.id).toBeUndefined();
    expect(m.devices.graphics.map((g) => g.port)).toEqual([-1, -1]);
    expect(m).toEqual(migratableDomainDef(def));
    // Already migratable: stable.
    expect(migratableDomainXml(m)).toBe(xml);
  });

  it('keeps user aliases and fixed graphics ports', () => {
    const xml = domainXml({
      devices: [
        disk('vda', '').replace('    </disk>', "      <alias name='ua-boot'/>\n    </disk>"),
        "    <graphics type='vnc' port='5905' autoport='no'>\n      <listen type='address' address='127.0.0.1'/>\n    </graphics>",
      ].join('\n'),
    });
    const out = migratableDomainXml(parseDomainXml(xml));
    expect(out).toContain("<alias name='ua-boot'/>");
    expect(out).toContain("port='5905' autoport='no'");
  });
});

describe('memory units', () => {
  it.each([
    ['1', 'GiB', 1048576],
    ['1', 'G', 1048576],
    ['1', undefined, 1],
    ['1', '', 1],
    ['512', 'KiB', 512],
    ['512', 'k', 512],
    ['512', 'K', 512],
    ['1024', 'b', 1],
    ['1025', 'bytes', 2],
    ['1', 'bytes', 1],
    ['1', 'KB', 1],
    ['2', 'KB', 2],
    ['1', 'MB', 977],
    ['256', 'MiB', 262144],
    ['256', 'M', 262144],
    ['1', 'GB', 976563],
    ['2', 'TiB', 2147483648],
    ['1', 't', 1073741824],
    ['1', 'PiB', 1099511627776],
    [' 42 ', 'KiB', 42],
    ['007', 'KiB', 7],
  ] as const)('%s %s = %d KiB', (value, unit, kib) => {
    expect(memoryToKiB(value, unit)).toEqual({ kib });
  });

  it.each([
    ['-1', 'KiB', /not a non-negative integer/],
    ['0', 'KiB', /greater than zero/],
    ['1.5', 'GiB', /not a/],
    ['1e3', 'KiB', /not a/],
    ['0x10', 'KiB', /not a/],
    ['', 'KiB', /not a/],
    ['2', 'PiB', /too large/],
    ['1', 'EiB', /too large/],
    ['99999999999999999999999999999999', 'KiB', /too large/],
    ['1', 'XiB', /unknown memory unit 'XiB'/],
    ['1', 'kilobytes', /unknown memory unit/],
  ] as const)('%s %s is refused', (value, unit, re) => {
    const r = memoryToKiB(value, unit);
    expect('error' in r && r.error).toMatch(re);
  });

  it('applies units read from XML', () => {
    const def = parseDomainXml(domainXml({ memory: "  <memory unit='GiB'>2</memory>\n  <currentMemory unit='b'>1073741825</currentMemory>" }));
    expect(def.memoryKiB).toBe(2097152);
    expect(def.currentMemoryKiB).toBe(1048577);
    expect(parseDomainXml(domainXml({ memory: '  <memory>4096</memory>' })).memoryKiB).toBe(4096);
  });
});

describe('hostile and malformed input', () => {
  const billionLaughs = [
    '<?xml version="1.0"?>',
    '<!DOCTYPE lolz [',
    ' <!ENTITY lol "lol">',
    ' <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">',
    ' <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">',
    ']>',
    '<domain type="kvm"><name>&lol2;</name></domain>',
  ].join('\n');
  const externalEntity = '<!DOCTYPE domain [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>\n<domain type="kvm"><name>&xxe;</name></domain>';
  const deep = `<domain type='kvm'><name>d</name><metadata>${'<a>'.repeat(150)}${'</a>'.repeat(150)}</metadata></domain>`;

  // A fourth entry names the error type when it is not XmlError: well-formed XML
  // asking for something vmferry does not support is ConfigUnsupported.
  const cases: [string, () => unknown, RegExp, ErrorType?][] = [
    ['empty input', () => parseDomainXml(''), /^domain XML is empty \(line 1, column 1\)$/],
    ['blank input', () => parseDomainXml('  \n '), /^domain XML is empty/],
    ['not a string', () => parseDomainXml(null as unknown as string), /must be a string/],
    ['unclosed tag', () => parseDomainXml("<domain type='kvm'>\n  <name>x</name>\n  <os>\n</domain>\n"), /^XML is not well-formed: .*\(line 4, column \d+\)$/],
    [
      'unclosed root',
      () => parseDomainXml("<domain type='kvm'>\n  <name>x</name>\n"),
      /^XML is not well-formed: Unclosed tag 'domain'\. \(line 1, column 1\)$/,
    ],
    ['billion laughs', () => parseDomainXml(billionLaughs), /^<!DOCTYPE> declarations are not accepted .*\(line 2, column 1\)$/],
    ['external entity', () => parseDomainXml(externalEntity), /^<!DOCTYPE> declarations are not accepted .*\(line 1, column 1\)$/],
    [
      'bare ENTITY',
      () => parseDomainXml("<domain type='kvm'>\n<!ENTITY x 'y'>\n</domain>"),
      /^<!ENTITY> declarations are not accepted .*\(line 2, column 1\)$/,
    ],
    [
      'undefined entity',
      () => parseDomainXml(domainXml({ name: '  <name>&xxe;</name>' })),
      /^entity '&xxe;' is not defined \(no DTDs\) at \/domain\/name \(line 2, column 3\)$/,
    ],
    [
      '10 MB input',
      () => parseDomainXml(domainXml({ top: `  <metadata>${'x'.repeat(10 * 1024 * 1024)}</metadata>` })),
      /^domain XML is too large: at least \d+ bytes, limit 1048576$/,
    ],
    [
      'bad UUID',
      () => parseDomainXml(domainXml().replace('c7a5fdbd-cdaf-9455-926a-d65c16db1809', 'c7a5fdbd-cdaf-9455-926a-d65c16db18zz')),
      /^invalid UUID 'c7a5fdbd-cdaf-9455-926a-d65c16db18zz' at \/domain\/uuid \(line 3, column 3\)$/,
    ],
    [
      'negative memory',
      () => parseDomainXml(domainXml({ memory: "  <memory unit='KiB'>-1048576</memory>" })),
      /^memory size '-1048576' is not a non-negative integer at \/domain\/memory \(line 4, column 3\)$/,
    ],
    [
      'unknown memory unit',
      () => parseDomainXml(domainXml({ memory: "  <memory unit='XiB'>1</memory>" })),
      /^unknown memory unit 'XiB' at \/domain\/memory \(line 4, column 3\)$/,
    ],
    ['zero memory', () => parseDomainXml(domainXml({ memory: '  <memory>0</memory>' })), /greater than zero at \/domain\/memory/],
    ['absurd memory', () => parseDomainXml(domainXml({ memory: "  <memory unit='EiB'>16</memory>" })), /too large .*at \/domain\/memory/],
    [
      'two disks with one target',
      () => parseDomainXml(domainXml({ devices: `${disk('vda')}\n${disk('vda')}` })),
      /^disk target 'vda' is already used by \/domain\/devices\/disk\[1\] at \/domain\/devices\/disk\[2\]\/target\/@dev \(line 16, column 7\)$/,
    ],
    [
      'root not domain',
      () => parseDomainXml(domainXml({ root: "network type='kvm'" })),
      /^root element is <network>, expected <domain> at \/network \(line 1, column 1\)$/,
    ],
    [
      '__proto__ element',
      () => parseDomainXml(domainXml({ top: '  <__proto__><polluted>1</polluted></__proto__>' })),
      /^element name '__proto__' is not allowed \(line 8, column 3\)$/,
    ],
    [
      'constructor element',
      () => parseDomainXml(domainXml({ top: "  <metadata><x:constructor xmlns:x='urn:x'/></metadata>" })),
      /^element name 'x:constructor' is not allowed \(line 8, column 13\)$/,
    ],
    [
      '__proto__ attribute',
      () => parseDomainXml(domainXml({ top: "  <pm __proto__='1'/>" })),
      /^attribute name '__proto__' is not allowed at \/domain\/pm \(line 8, column 3\)$/,
    ],
    ['missing name', () => parseDomainXml(domainXml({ name: '' })), /^missing <name> element at \/domain\/name \(line 1, column 1\)$/],
    [
      'name with /',
      () => parseDomainXml(domainXml({ name: '  <name>../../etc/x</name>' })),
      /^domain name '..\/..\/etc\/x' must not contain '\/' at \/domain\/name \(line 2, column 3\)$/,
    ],
    ['name with a control character', () => parseDomainXml(domainXml({ name: '  <name>a&#10;b</name>' })), /control characters at \/domain\/name \(line 2/],
    ['name too long', () => parseDomainXml(domainXml({ name: `  <name>${'n'.repeat(256)}</name>` })), /longer than 255 bytes at \/domain\/name/],
    [
      'two names',
      () => parseDomainXml(domainXml({ name: '  <name>a</name>\n  <name>b</name>' })),
      /^<name> may appear only once, found 2 at \/domain\/name\[2\] \(line 3, column 3\)$/,
    ],
    [
      'currentMemory > memory',
      () => parseDomainXml(domainXml({ memory: "  <memory unit='MiB'>256</memory>\n  <currentMemory unit='MiB'>512</currentMemory>" })),
      /^currentMemory \(524288 KiB\) exceeds memory \(262144 KiB\) at \/domain\/currentMemory \(line 5, column 3\)$/,
    ],
    [
      'vcpu 0',
      () => parseDomainXml(domainXml({ top: "  <vcpu placement='static'>0</vcpu>" })),
      /^vcpu count 0 is out of range 1\.\.4096 at \/domain\/vcpu \(line 8, column 3\)$/,
    ],
    ['vcpu not a number', () => parseDomainXml(domainXml({ top: '  <vcpu>two</vcpu>' })), /^vcpu count 'two' is not an integer at \/domain\/vcpu/],
    [
      'bad cache mode',
      () => parseDomainXml(domainXml({ devices: disk('vda', "      <driver name='qemu' type='qcow2' cache='fast'/>\n") })),
      /^disk cache mode 'fast' is not one of .* at \/domain\/devices\/disk\/driver\/@cache \(line 11, column 7\)$/,
    ],
    [
      'unsupported disk format',
      () => parseDomainXml(domainXml({ devices: disk('vda', "      <driver name='qemu' type='vmdk'/>\n") })),
      /^disk format 'vmdk' .* at \/domain\/devices\/disk\/driver\/@type/,
      ErrorType.ConfigUnsupported,
    ],
    [
      'relative disk path',
      () => parseDomainXml(domainXml({ devices: disk('vda').replace('/img/vda.qcow2', 'vda.qcow2') })),
      /must be an absolute path at \/domain\/devices\/disk\/source\/@file/,
    ],
    [
      'garbage after the root',
      () => parseDomainXml(`${domainXml()}trailing garbage`),
      /^(XML is not well-formed: Extra text at the end|content after the root element is not allowed) \(line 16, column 1\)$/,
    ],
    [
      'garbage after an empty root',
      () => parseDomainXml("<domain type='kvm'/>garbage"),
      /^content after the root element is not allowed \(line 1, column 21\)$/,
    ],
    ['second root element', () => parseDomainXml(`${domainXml()}<domain type='kvm'/>`), /2 root elements/],
    ['text before the root', () => parseDomainXml(`junk${domainXml()}`), /^XML is not well-formed: .*\(line 1, column 1\)$/],
    ['deep nesting', () => parseDomainXml(deep), /^XML parser refused the document: Maximum nested tags exceeded/],
    [
      'raw control character',
      () => parseDomainXml(domainXml({ name: '  <name>a\u0007b</name>' })),
      /^character U\+0007 is not allowed in XML \(line 2, column 10\)$/,
    ],
    ['processing instruction', () => parseDomainXml(domainXml({ top: '  <?evil run?>' })), /^processing instruction <\?evil> is not supported at \/domain/],
    [
      'vnc port below 5900',
      () => parseDomainXml(domainXml({ devices: "    <graphics type='vnc' port='22' autoport='no'/>" })),
      /VNC port 22 is below 5900 .*at \/domain\/devices\/graphics\/@port/,
    ],
    [
      'two vnc graphics',
      () => parseDomainXml(domainXml({ devices: "    <graphics type='vnc' port='-1'/>\n    <graphics type='vnc' port='-1'/>" })),
      /only one <graphics type='vnc'> is supported .* at \/domain\/devices\/graphics\[2\]\/@type/,
      ErrorType.ConfigUnsupported,
    ],
    [
      'listen mismatch',
      () =>
        parseDomainXml(
          domainXml({ devices: "    <graphics type='vnc' port='-1' listen='0.0.0.0'>\n      <listen type='address' address='127.0.0.1'/>\n    </graphics>" }),
        ),
      /does not match the first <listen> address '127\.0\.0\.1' at \/domain\/devices\/graphics\/@listen/,
    ],
    [
      'duplicate PCI address',
      () =>
        parseDomainXml(
          domainXml({
            devices: `${disk('vda', '')}\n    <interface type='user'>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>\n    </interface>\n    <video>\n      <address type='pci' domain='0' bus='0' slot='3' function='0'/>\n    </video>`,
          }),
        ),
      /^PCI address 0000:00:03\.0 is already used by \/domain\/devices\/interface at \/domain\/devices\/video\/address \(line 18, column 7\)$/,
    ],
    [
      'os boot and device boot order',
      () =>
        parseDomainXml(
          domainXml({ devices: disk('vda').replace('    </disk>', "      <boot order='1'/>\n    </disk>") }).replace(
            '  </os>',
            "    <boot dev='hd'/>\n  </os>",
          ),
        ),
      /per-device boot elements cannot be used together with <os><boot> at \/domain\/devices\/disk\/boot\/@order/,
    ],
    [
      'bad lifecycle action',
      () => parseDomainXml(domainXml({ top: '  <on_crash>explode</on_crash>' })),
      /on_crash action 'explode' is not one of .* at \/domain\/on_crash \(line 8, column 3\)$/,
    ],
    ['title with newline', () => parseDomainXml(domainXml({ top: '  <title>a\nb</title>' })), /title must not contain newlines at \/domain\/title/],
    [
      'cdrom on virtio',
      () => parseDomainXml(domainXml({ devices: disk('vdb').replace("device='disk'", "device='cdrom'") })),
      /cdrom cannot use bus 'virtio' at \/domain\/devices\/disk\/target\/@bus/,
      ErrorType.ConfigUnsupported,
    ],
    [
      'bad domain type',
      () => parseDomainXml(domainXml({ root: "domain type='xen'" })),
      /domain type 'xen' is not one of kvm, qemu at \/domain\/@type \(line 1, column 1\)$/,
      ErrorType.ConfigUnsupported,
    ],
    ['size limit is configurable', () => parseDomainXml(domainXml(), { maxBytes: 100 }), /^domain XML is too large: at least \d+ bytes, limit 100$/],
  ];

  it.each(cases)('%s', (_label, fn, re, type = ErrorType.XmlError) => {
    expect(catchVmError(fn, type).message).toMatch(re);
  });

  it('has at least 14 hostile cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(14);
  });

  it('leaves Object.prototype alone', () => {
    for (const attempt of [
      domainXml({ top: '  <__proto__><polluted>yes</polluted></__proto__>' }),
      domainXml({ top: "  <pm __proto__='x' polluted='yes'/>" }),
      domainXml({ top: "  <metadata><constructor><prototype polluted='yes'/></constructor></metadata>" }),
    ]) {
      catchXmlError(() => parseDomainXml(attempt));
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('accepts a larger limit when asked', () => {
    const big = domainXml({ top: `  <metadata><x:blob xmlns:x='urn:x'>${'x'.repeat(2 * 1024 * 1024)}</x:blob></metadata>` });
    expect(parseDomainXml(big, { maxBytes: 4 * 1024 * 1024 }).name).toBe('t1');
  });
});
