// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The device families of issue 13 without QEMU: parse and format round trip
// (byte for byte, through JSON), address assignment in libvirt's order, the
// migratable form, and the QEMU arguments each device becomes.
import { describe, expect, it } from 'vitest';
import { assignAddresses, formatDomainXml, migratableDomainXml, parseDomainXml, type DeviceAddress, type DomainDef } from '../src/domain/index.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';

function domainXml(devices: string, machine = 'pc-i440fx-7.2'): string {
  return `<domain type='qemu'>
  <name>d1</name>
  <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>
  <memory unit='MiB'>64</memory>
  <os>
    <type arch='x86_64' machine='${machine}'>hvm</type>
  </os>
  <devices>
${devices}
  </devices>
</domain>
`;
}

const LIBVIRT_DEVICES = `    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source dev='/dev/vg/guest'/>
      <target dev='sda' bus='scsi'/>
      <alias name='scsi0-0-0-0'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <controller type='scsi' index='0' model='virtio-scsi'>
      <alias name='scsi0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </controller>
    <controller type='virtio-serial' index='0' ports='16'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'/>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-1-d1/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
      <alias name='channel0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <input type='tablet' bus='usb'>
      <address type='usb' bus='0' port='1'/>
    </input>
    <input type='mouse' bus='ps2'/>
    <video>
      <model type='qxl' ram='65536' vram='65536' vgamem='16384' heads='1' primary='yes'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </video>
    <watchdog model='i6300esb' action='poweroff'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/>
    </watchdog>
    <rng model='virtio'>
      <rate bytes='1024' period='2000'/>
      <backend model='random'>/dev/random</backend>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x08' function='0x0'/>
    </rng>
    <panic model='isa'>
      <address type='isa' iobase='0x505'/>
    </panic>`;

// What vmferry builds of them: qxl's ram and vgamem (its RAM bar and VGA memory sizes) are not passed to QEMU.
const BUILT_DEVICES = LIBVIRT_DEVICES.replace(" ram='65536'", '').replace(" vgamem='16384'", '');

const args = (def: DomainDef) => buildQemuArgs(def, { qmpSocket: '/run/q.sock' });
const devicesOf = (def: DomainDef) => {
  const a = args(def);
  return a.filter((_, i) => a[i - 1] === '-device');
};

describe('device XML', () => {
  it('reads a libvirt domain with every family and formats it back byte for byte, also through JSON', () => {
    const xml = domainXml(LIBVIRT_DEVICES);
    const def = parseDomainXml(xml);
    expect(formatDomainXml(def)).toBe(xml);
    expect(formatDomainXml(JSON.parse(JSON.stringify(def)) as DomainDef)).toBe(xml);
    expect(def.devices.videos).toEqual([{ model: 'qxl', vramKiB: 65536, heads: 1, primary: true, address: expect.objectContaining({ slot: '0x02' }) }]);
    expect(def.devices.inputs).toEqual([
      { type: 'tablet', bus: 'usb', address: { type: 'usb', bus: '0', port: '1' } },
      { type: 'mouse', bus: 'ps2' },
    ]);
    expect(def.devices.channels?.[0]).toMatchObject({ type: 'unix', sourceMode: 'bind', targetType: 'virtio', targetName: 'org.qemu.guest_agent.0' });
    expect(def.devices.rngs).toEqual([
      { model: 'virtio', backendModel: 'random', backendSource: '/dev/random', rateBytes: 1024, ratePeriodMs: 2000, address: expect.anything() },
    ]);
    expect(def.devices.watchdogs).toEqual([{ model: 'i6300esb', action: 'poweroff', address: expect.anything() }]);
    expect(def.devices.panics).toEqual([{ model: 'isa', address: { type: 'isa', iobase: '0x505' } }]);
    // Fully addressed already: assignment changes nothing.
    expect(formatDomainXml(assignAddresses(def))).toBe(xml);
  });

  it('drops a channel socket path the host generated from the migratable form, keeps one the user named', () => {
    const xml = migratableDomainXml(parseDomainXml(domainXml(LIBVIRT_DEVICES)));
    expect(xml).toContain("<source mode='bind'/>");
    expect(xml).not.toContain("state='connected'");
    const named = LIBVIRT_DEVICES.replace('/var/lib/libvirt/qemu/channel/target/domain-1-d1/org.qemu.guest_agent.0', '/srv/agent.sock');
    expect(migratableDomainXml(parseDomainXml(domainXml(named)))).toContain("path='/srv/agent.sock'");
  });

  it('assigns addresses the way libvirt does: PIIX3 at slot 1, primary video at 2, then by kind, skipping taken slots', () => {
    const def = assignAddresses(
      parseDomainXml(
        domainXml(`    <disk type='file' device='disk'>
      <source file='/i/a'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci'/>
    <video>
      <model type='virtio'/>
    </video>
    <input type='keyboard' bus='virtio'/>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </memballoon>`),
      ),
    );
    const slot = (a: { address?: DeviceAddress } | undefined) => a?.address?.slot;
    expect(slot(def.devices.videos?.[0])).toBe('0x02');
    expect(slot(def.devices.usbControllers?.[0])).toBe('0x03');
    expect(slot(def.devices.disks[0])).toBe('0x05');
    expect(slot(def.devices.memballoon)).toBe('0x04');
    expect(slot(def.devices.inputs?.[0])).toBe('0x06');
    expect(assignAddresses(def)).toEqual(def);
  });

  it('gives interfaces their slots ahead of controllers and disks, as libvirt 9.0 did for the same guest', () => {
    const def = assignAddresses(
      parseDomainXml(
        domainXml(`    <disk type='file' device='disk'>
      <source file='/i/a'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='virtio-serial' index='0'/>
    <interface type='user'>
      <model type='virtio'/>
    </interface>
    <input type='tablet' bus='virtio'/>
    <video>
      <model type='vga'/>
    </video>`),
      ),
    );
    const slot = (a: { address?: DeviceAddress } | undefined) => a?.address?.slot;
    expect(slot(def.devices.videos?.[0])).toBe('0x02');
    expect(slot(def.devices.interfaces?.[0])).toBe('0x03');
    expect(slot(def.devices.controllers?.[0])).toBe('0x04');
    expect(slot(def.devices.disks[0])).toBe('0x05');
    expect(slot(def.devices.inputs?.[0])).toBe('0x06');
    expect(assignAddresses(def)).toEqual(def);
  });
});

describe('device command line', () => {
  const parsed = (devices: string) => assignAddresses(parseDomainXml(domainXml(devices)));

  it('builds each device at its address', () => {
    const d = devicesOf(parseDomainXml(domainXml(BUILT_DEVICES)));
    expect(d).toEqual(
      expect.arrayContaining([
        'piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2',
        'qxl-vga,id=video0,vram_size=67108864,max_outputs=1,bus=pci.0,addr=0x2.0x0',
        'virtio-scsi-pci,id=scsi0,bus=pci.0,addr=0x4.0x0',
        'virtio-serial-pci,id=virtio-serial0,max_ports=16,bus=pci.0,addr=0x5.0x0',
        'scsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=0,drive=drive-sda,id=ua-sda',
        'virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel0,id=channel0,name=org.qemu.guest_agent.0',
        'usb-tablet,id=input0,bus=usb.0,port=1',
        'i6300esb,id=watchdog0,bus=pci.0,addr=0x7.0x0',
        'virtio-rng-pci,rng=objrng0,id=rng0,max-bytes=1024,period=2000,bus=pci.0,addr=0x8.0x0',
        'pvpanic,id=panic0,ioport=1285',
      ]),
    );
    const a = args(parseDomainXml(domainXml(BUILT_DEVICES))).join(' ');
    expect(a).toContain('-drive file=/dev/vg/guest,if=none,id=drive-sda,format=raw,cache=none');
    expect(a).toContain('-action watchdog=poweroff');
    expect(a).toContain('-object rng-random,id=objrng0,filename=/dev/random');
    expect(a).toContain('-chardev socket,id=charchannel0,path=/var/lib/libvirt/qemu/channel/target/domain-1-d1/org.qemu.guest_agent.0,server=on,wait=off');
    // PS/2 mouse is the machine's own i8042: nothing added.
    expect(a).not.toMatch(/ps2|i8042/);
  });

  it('builds disks on every bus, an empty cdrom, and each video and input model', () => {
    const d = devicesOf(
      parsed(`    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/i/b'/>
      <target dev='sdb' bus='sata'/>
    </disk>
    <video>
      <model type='bochs' vram='8192'/>
    </video>
    <video>
      <model type='virtio' heads='2'/>
    </video>
    <input type='mouse' bus='virtio'/>
    <controller type='usb' model='none'/>
    <panic model='pvpanic'/>`),
    );
    expect(d).toEqual(
      expect.arrayContaining([
        'ide-cd,bus=ide.1,unit=0,drive=drive-hdc,id=ua-hdc',
        'ich9-ahci,id=sata0,bus=pci.0,addr=0x3.0x0',
        'ide-hd,bus=sata0.1,drive=drive-sdb,id=ua-sdb',
        'bochs-display,id=video0,vgamem=8388608,bus=pci.0,addr=0x2.0x0',
        'virtio-gpu-pci,id=video1,max_outputs=2,bus=pci.0,addr=0x4.0x0',
        'virtio-mouse-pci,id=input0,bus=pci.0,addr=0x5.0x0',
        'pvpanic-pci,id=panic0,bus=pci.0,addr=0x6.0x0',
      ]),
    );
    expect(args(parsed("    <disk type='file' device='cdrom'>\n      <target dev='hdc' bus='ide'/>\n    </disk>"))).toContain(
      'if=none,id=drive-hdc,readonly=on',
    );
    for (const [model, device] of [
      ['vga', 'VGA,id=video0'],
      ['cirrus', 'cirrus-vga,id=video0'],
      ['virtio', 'virtio-vga,id=video0'],
    ]) {
      expect(devicesOf(parsed(`    <video>\n      <model type='${model}'/>\n    </video>`))).toContain(`${device},bus=pci.0,addr=0x2.0x0`);
    }
    expect(devicesOf(parsed("    <video>\n      <model type='none'/>\n    </video>")).join(' ')).not.toMatch(/video/);
  });

  it('refuses what it does not build with ConfigUnsupported', () => {
    const cases = [
      "<video><model type='vga'/></video><video><model type='cirrus'/></video>",
      "<controller type='scsi' index='0' model='lsilogic'/>",
      "<channel type='pty'><target type='virtio' name='x'/></channel>",
      "<rng model='virtio'><backend model='random'>/dev/hwrng</backend></rng>",
      "<watchdog model='i6300esb' action='reset'/><watchdog model='i6300esb' action='pause'/>",
      "<video><model type='qxl' ram='65536' vram='65536'/></video>",
      "<video><model type='qxl' vgamem='16384'/></video>",
      "<video><model type='cirrus' vram='16384'/></video>",
      "<video><model type='vga'/></video><video><model type='virtio' primary='yes'/></video>",
      "<controller type='scsi' index='0'/>",
      "<controller type='pci' index='1' model='pci-bridge'/>",
      "<rng model='virtio'><backend model='egd' type='tcp'><source mode='connect' host='127.0.0.1' service='708'/></backend></rng>",
      "<input type='mouse' bus='ps2'><address type='usb' bus='0' port='1'/></input>",
      "<disk type='file' device='disk'><source file='/i/a'/><target dev='vda' bus='virtio'/><boot order='1'/></disk>",
      "<video><model type='virtio'/><driver iommu='on'/></video>",
    ];
    for (const c of cases) {
      let err: unknown;
      try {
        args(parsed(c));
      } catch (e) {
        err = e;
      }
      expect((err as { type?: string })?.type, c).toBe('ConfigUnsupported');
    }
  });
});

describe('memballoon models (pure code)', () => {
  it.each([
    ['virtio', 'virtio-balloon-pci'],
    ['virtio-transitional', 'virtio-balloon-pci-transitional'],
    ['virtio-non-transitional', 'virtio-balloon-pci-non-transitional'],
  ])("model '%s' builds %s", (model, device) => {
    const def = assignAddresses(parseDomainXml(domainXml(`    <memballoon model='${model}'/>`)));
    expect(args(def).find((a) => a.includes('balloon0'))).toMatch(new RegExp(`^${device},id=balloon0`));
  });
});
