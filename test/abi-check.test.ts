// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// ABI stability (src/migration/abi-check*.ts) without QEMU: a full Linux-guest
// domain, then per family one change the guest would see (refused, the message
// names the field) and one change only the host sees (accepted). The split of
// guest-visible and host-side fields is libvirt's virDomainDefCheckABIStability.
import { describe, expect, it } from 'vitest';
import { isVmError } from '../src/common/errors.js';
import { parseDomainXml } from '../src/domain/index.js';
import { checkAbiStability } from '../src/migration/abi-check.js';

const pci = (slot: string) => `<address type='pci' domain='0x0000' bus='0x00' slot='${slot}' function='0x0'/>`;

const SOURCE = `<domain type='qemu'>
  <name>guest</name>
  <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>
  <title>web server</title>
  <memory unit='MiB'>512</memory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
  </os>
  <features>
    <acpi/>
    <apic eoi='on'/>
    <pae/>
  </features>
  <cpu mode='custom' match='exact' check='partial'>
    <model fallback='forbid'>qemu64</model>
    <topology sockets='1' dies='1' cores='2' threads='1'/>
    <feature policy='require' name='sse4.2'/>
    <feature policy='disable' name='svm'/>
  </cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='pit' tickpolicy='delay'/>
    <timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/vmferry/images/guest.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <serial>WD-0001</serial>
      ${pci('0x06')}
    </disk>
    <controller type='usb' index='0' model='piix3-uhci'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'/>
    <controller type='virtio-serial' index='0' ports='16'>
      ${pci('0x05')}
    </controller>
    <interface type='bridge'>
      <mac address='52:54:00:ab:cd:ef'/>
      <source bridge='br0'/>
      <target dev='vnet7'/>
      <model type='e1000'/>
      <link state='up'/>
      <boot order='2'/>
      ${pci('0x03')}
    </interface>
    <serial type='pty'>
      <target type='isa-serial' port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <source mode='bind' path='/run/vmferry/channel/guest/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <input type='tablet' bus='usb'>
      <address type='usb' bus='0' port='1'/>
    </input>
    <input type='mouse' bus='ps2'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
    <video>
      <model type='vga' vram='16384' heads='1' primary='yes'/>
      ${pci('0x02')}
    </video>
    <watchdog model='i6300esb' action='reset'>
      ${pci('0x07')}
    </watchdog>
    <memballoon model='virtio'>
      ${pci('0x04')}
    </memballoon>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
      ${pci('0x08')}
    </rng>
    <panic model='isa'>
      <address type='isa' iobase='0x505'/>
    </panic>
    <sound model='ich6'>
      ${pci('0x09')}
    </sound>
  </devices>
</domain>
`;

/** [family, change, text in SOURCE, replacement, refusal message (undefined: the change is accepted)]. */
const CASES: [string, string, string, string, RegExp | undefined][] = [
  [
    'interface',
    'model e1000 -> virtio',
    "<model type='e1000'/>",
    "<model type='virtio'/>",
    /interface 52:54:00:ab:cd:ef model 'virtio' does not match source 'e1000'/,
  ],
  ['interface', 'MAC address', "<mac address='52:54:00:ab:cd:ef'/>", "<mac address='52:54:00:ab:cd:00'/>", /interface 52:54:00:ab:cd:ef MAC address/],
  ['interface', 'PCI slot', `${pci('0x03')}\n    </interface>`, `${pci('0x0a')}\n    </interface>`, /interface 52:54:00:ab:cd:ef address/],
  [
    'interface',
    'one more NIC',
    '<serial type=',
    "<interface type='user'><model type='virtio'/></interface><serial type=",
    /interface count 2 does not match source 1/,
  ],
  [
    'interface',
    'bridge, tap, link state and boot order (host side)',
    "<source bridge='br0'/>\n      <target dev='vnet7'/>\n      <model type='e1000'/>\n      <link state='up'/>\n      <boot order='2'/>",
    "<source bridge='br1'/>\n      <target dev='vnet9'/>\n      <model type='e1000'/>\n      <link state='down'/>\n      <boot order='1'/>",
    undefined,
  ],
  [
    'interface',
    'type bridge -> user (host side)',
    "<interface type='bridge'>\n      <mac address='52:54:00:ab:cd:ef'/>\n      <source bridge='br0'/>\n      <target dev='vnet7'/>",
    "<interface type='user'>\n      <mac address='52:54:00:ab:cd:ef'/>",
    undefined,
  ],
  [
    'video',
    'model vga -> cirrus',
    "<model type='vga' vram='16384'",
    "<model type='cirrus' vram='16384'",
    /video\[0\] model 'cirrus' does not match source 'vga'/,
  ],
  ['video', 'vram', "vram='16384'", "vram='8192'", /video\[0\] vram \(KiB\) 8192 does not match source 16384/],
  ['video', 'heads', "heads='1'", "heads='2'", /video\[0\] heads 2 does not match source 1/],
  ['video', 'PCI slot', `${pci('0x02')}\n    </video>`, `${pci('0x0b')}\n    </video>`, /video\[0\] address/],
  [
    'input',
    'tablet bus usb -> virtio',
    "<input type='tablet' bus='usb'>\n      <address type='usb' bus='0' port='1'/>",
    "<input type='tablet' bus='virtio'>",
    /input\[0\] bus 'virtio' does not match source 'usb'/,
  ],
  ['input', 'USB port', "<address type='usb' bus='0' port='1'/>", "<address type='usb' bus='0' port='2'/>", /input\[0\] address/],
  [
    'input',
    'mouse -> keyboard',
    "<input type='mouse' bus='ps2'/>",
    "<input type='keyboard' bus='ps2'/>",
    /input\[1\] type 'keyboard' does not match source 'mouse'/,
  ],
  ['input', 'default bus left out (ps2 for a mouse)', "<input type='mouse' bus='ps2'/>", "<input type='mouse'/>", undefined],
  ['controller', 'virtio-serial ports', "ports='16'", "ports='8'", /controller\[1\] ports 8 does not match source 16/],
  [
    'controller',
    'virtio-serial index',
    "<controller type='virtio-serial' index='0'",
    "<controller type='virtio-serial' index='1'",
    /controller\[1\] index 1 does not match source 0/,
  ],
  ['controller', 'USB model', "model='piix3-uhci'", "model='qemu-xhci'", /USB controller\[0\] model 'qemu-xhci' does not match source 'piix3-uhci'/],
  [
    'channel',
    'target name',
    "<target type='virtio' name='org.qemu.guest_agent.0'/>",
    "<target type='virtio' name='org.example.agent'/>",
    /channel\[0\] target name 'org.example.agent' does not match/,
  ],
  ['channel', 'virtio-serial port', "port='1'/>\n    </channel>", "port='2'/>\n    </channel>", /channel\[0\] address/],
  ['channel', 'socket path (host side)', '/run/vmferry/channel/guest/org.qemu.guest_agent.0', '/srv/agent.sock', undefined],
  ['rng', 'PCI slot', `${pci('0x08')}\n    </rng>`, `${pci('0x0c')}\n    </rng>`, /rng\[0\] address/],
  ['rng', 'one rng less', /<rng model='virtio'>[^]*?<\/rng>/.source, '', /rng count 0 does not match source 1/],
  ['rng', 'backend source (host side)', "<backend model='random'>/dev/urandom</backend>", "<backend model='random'>/dev/random</backend>", undefined],
  ['watchdog', 'PCI slot', `${pci('0x07')}\n    </watchdog>`, `${pci('0x0d')}\n    </watchdog>`, /watchdog\[0\] address/],
  ['watchdog', 'action reset -> poweroff (host side)', "action='reset'", "action='poweroff'", undefined],
  [
    'panic',
    'model isa -> pvpanic',
    "<panic model='isa'>\n      <address type='isa' iobase='0x505'/>\n    </panic>",
    "<panic model='pvpanic'/>",
    /panic\[0\] model 'pvpanic' does not match source 'isa'/,
  ],
  [
    'memballoon',
    'model virtio -> none',
    `<memballoon model='virtio'>\n      ${pci('0x04')}\n    </memballoon>`,
    "<memballoon model='none'/>",
    /memory balloon model 'none' does not match source 'virtio'/,
  ],
  ['memballoon', 'PCI slot', `${pci('0x04')}\n    </memballoon>`, `${pci('0x0e')}\n    </memballoon>`, /memory balloon address/],
  ['disk', 'bus virtio -> scsi', "<target dev='vda' bus='virtio'/>", "<target dev='vda' bus='scsi'/>", /disk vda bus 'scsi' does not match source 'virtio'/],
  ['disk', 'serial', '<serial>WD-0001</serial>', '<serial>WD-0002</serial>', /disk vda serial 'WD-0002' does not match source 'WD-0001'/],
  [
    'disk',
    'source path and cache (host side)',
    "cache='none'/>\n      <source file='/var/lib/vmferry/images/guest.qcow2'/>",
    "cache='writeback'/>\n      <source file='/srv/images/guest.qcow2'/>",
    undefined,
  ],
  ['sound (unmodelled)', 'model ich6 -> ac97', "<sound model='ich6'>", "<sound model='ac97'>", /sound\[0\] model 'ac97' does not match source 'ich6'/],
  ['sound (unmodelled)', 'PCI slot', `${pci('0x09')}\n    </sound>`, `${pci('0x0f')}\n    </sound>`, /sound\[0\] address/],
  [
    'serial',
    'target port',
    "<target type='isa-serial' port='0'/>",
    "<target type='isa-serial' port='1'/>",
    /serial\[0\] target port 1 does not match source 0/,
  ],
  [
    'cpu',
    'feature policy require -> disable',
    "<feature policy='require' name='sse4.2'/>",
    "<feature policy='disable' name='sse4.2'/>",
    /CPU feature sse4.2 policy 'disable' does not match source 'require'/,
  ],
  [
    'cpu',
    'feature added',
    "<feature policy='disable' name='svm'/>",
    "<feature policy='disable' name='svm'/>\n    <feature name='aes'/>",
    /CPU feature aes policy 'require' does not match source none/,
  ],
  [
    'cpu',
    'model',
    "<model fallback='forbid'>qemu64</model>",
    "<model fallback='forbid'>Westmere</model>",
    /CPU model 'Westmere' does not match source 'qemu64'/,
  ],
  [
    'cpu',
    'mode custom -> host-model',
    "<cpu mode='custom' match='exact' check='partial'>\n    <model fallback='forbid'>qemu64</model>",
    "<cpu mode='host-model' check='partial'>\n    <model fallback='forbid'/>",
    /CPU mode 'host-model' does not match source 'custom'/,
  ],
  ['cpu', 'topology', "cores='2' threads='1'", "cores='1' threads='2'", /CPU topology/],
  [
    'cpu',
    'feature order and spelled-out default policy (same CPU)',
    "<feature policy='require' name='sse4.2'/>\n    <feature policy='disable' name='svm'/>",
    "<feature policy='disable' name='svm'/>\n    <feature name='sse4.2'/>",
    undefined,
  ],
  ['cpu', 'check and match (how libvirt verifies, not what the guest gets)', "match='exact' check='partial'", "match='minimum' check='none'", undefined],
  ['clock', 'offset utc -> localtime', "<clock offset='utc'>", "<clock offset='localtime'>", /clock offset 'localtime' does not match source 'utc'/],
  [
    'clock',
    'hpet timer present',
    "<timer name='hpet' present='no'/>",
    "<timer name='hpet' present='yes'/>",
    /clock timer hpet present 'yes' does not match source 'no'/,
  ],
  ['clock', 'timer removed', "<timer name='hpet' present='no'/>", '', /clock timer count 2 does not match source 3/],
  ['clock', 'tick policy (host side)', "<timer name='rtc' tickpolicy='catchup'/>", "<timer name='rtc' tickpolicy='delay'/>", undefined],
  ['features', 'pae removed', '    <pae/>\n', '', /features/],
  ['features', 'apic eoi off', "<apic eoi='on'/>", "<apic eoi='off'/>", /feature <apic>/],
  ['domain', 'title (host side)', '<title>web server</title>', '<title>db server</title>', undefined],
  ['domain', 'on_crash action (host side)', '<on_crash>destroy</on_crash>', '<on_crash>restart</on_crash>', undefined],
  [
    'domain',
    'emulator binary (host side)',
    '<emulator>/usr/bin/qemu-system-x86_64</emulator>',
    '<emulator>/usr/local/bin/qemu-system-x86_64</emulator>',
    undefined,
  ],
  ['domain', 'graphics listen address (host side)', "listen='127.0.0.1'/>", "listen='0.0.0.0'/>", undefined],
  ['domain', 'machine type', "machine='pc-i440fx-7.2'", "machine='pc-i440fx-7.1'", /machine type 'pc-i440fx-7.1' does not match source 'pc-i440fx-7.2'/],
];

function refusal(dest: string): Error | undefined {
  try {
    checkAbiStability(parseDomainXml(dest), parseDomainXml(SOURCE));
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

describe('ABI stability check', () => {
  it('accepts the source definition itself and its round trip through JSON', () => {
    const src = parseDomainXml(SOURCE);
    expect(() => checkAbiStability(parseDomainXml(SOURCE), src)).not.toThrow();
    expect(() => checkAbiStability(JSON.parse(JSON.stringify(src)) as typeof src, src)).not.toThrow();
  });

  it.each(CASES)('%s: %s', (_family, _change, from, to, expected) => {
    const pattern = new RegExp(from);
    const isRegex = from.startsWith('<rng model');
    expect(isRegex ? pattern.test(SOURCE) : SOURCE.includes(from)).toBe(true);
    const dest = isRegex ? SOURCE.replace(pattern, to) : SOURCE.replace(from, to);
    expect(dest).not.toBe(SOURCE);
    const err = refusal(dest);
    if (expected === undefined) {
      expect(err).toBeUndefined();
    } else {
      expect(err).toBeDefined();
      expect(isVmError(err) && err.type).toBe('ConfigUnsupported');
      expect(err!.message).toMatch(expected);
    }
  });

  it("takes a default spelled out as the default: a NIC's rtl8139, a panic's isa", () => {
    const bare = SOURCE.replace("<model type='e1000'/>", '').replace("<panic model='isa'>", '<panic>');
    const spelled = SOURCE.replace("<model type='e1000'/>", "<model type='rtl8139'/>");
    expect(() => checkAbiStability(parseDomainXml(spelled), parseDomainXml(bare))).not.toThrow();
    expect(() => checkAbiStability(parseDomainXml(SOURCE), parseDomainXml(bare))).toThrow(
      /interface 52:54:00:ab:cd:ef model 'e1000' does not match source 'rtl8139'/,
    );
  });

  it('compares a family from the document when one definition predates its model', () => {
    const src = parseDomainXml(SOURCE);
    const old = parseDomainXml(SOURCE.replace("ports='16'", "ports='8'"));
    delete old.devices.controllers;
    expect(() => checkAbiStability(old, src)).toThrow(/controller\[2\] ports '8' does not match source '16'/);
  });
});
