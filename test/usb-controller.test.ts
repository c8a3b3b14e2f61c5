// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// USB controllers in the domain XML model (read, written back in place,
// validated) and on QEMU's command line (libvirt's default piix3-uhci is built,
// also when a pc domain names no controller, as libvirt reads such XML; every
// other model refused with a typed error). Pure code, no QEMU started
// (the interop test restores a libvirt image of a guest with the controller).
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { formatDomainXml, parseDomainXml, validateDomainDef, type DomainDef, type UsbControllerDef } from '../src/domain/index.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';

const PIIX3 = `    <controller type='usb' index='0' model='piix3-uhci'>
      <alias name='usb'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>`;
const PCI_ROOT = "    <controller type='pci' index='0' model='pci-root'/>";
const DISK = "    <disk type='file' device='disk'>\n      <source file='/img/a.raw'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>";

function domainXml(devices: string, machine = 'pc-i440fx-7.2'): string {
  return [
    "<domain type='qemu'>",
    '  <name>usb1</name>',
    '  <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>',
    "  <memory unit='MiB'>64</memory>",
    '  <os>',
    `    <type arch='x86_64' machine='${machine}'>hvm</type>`,
    '  </os>',
    '  <devices>',
    devices,
    '  </devices>',
    '</domain>',
    '',
  ].join('\n');
}

function failureOf(fn: () => unknown): ApplicationFailure {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected an error, nothing was thrown');
}

function withUsb(def: DomainDef, usb: UsbControllerDef[] | undefined): DomainDef {
  const copy = structuredClone(def);
  if (usb === undefined) delete copy.devices.usbControllers;
  else copy.devices.usbControllers = usb;
  return copy;
}

function usbDevice(def: DomainDef): string[] {
  const args = buildQemuArgs(def, { qmpSocket: '/run/x.sock' });
  return args.filter((a, i) => args[i - 1] === '-device' && a.startsWith('piix3-usb-uhci'));
}

describe('USB controllers in the domain model', () => {
  it("reads libvirt's default controller and formats the document back byte for byte", () => {
    const xml = domainXml([DISK, PIIX3, PCI_ROOT].join('\n'));
    const def = parseDomainXml(xml);
    expect(def.devices.usbControllers).toEqual([
      { index: 0, model: 'piix3-uhci', address: { type: 'pci', domain: '0x0000', bus: '0x00', slot: '0x01', function: '0x2' } },
    ]);
    expect(formatDomainXml(def)).toBe(xml);
    expect(parseDomainXml(formatDomainXml(JSON.parse(JSON.stringify(def)) as DomainDef))).toEqual(def);
  });

  it('reads a controller without model, model none and ich9 companions (same index) in document order', () => {
    const xml = domainXml(
      [
        PCI_ROOT,
        "    <controller type='usb' index='0' model='ich9-ehci1'/>",
        "    <controller type='usb' index='0' model='ich9-uhci1'>\n      <master startport='0'/>\n    </controller>",
        "    <controller type='usb'/>",
        "    <controller type='usb' model='none'/>",
      ].join('\n'),
    );
    const def = parseDomainXml(xml);
    expect(def.devices.usbControllers).toEqual([{ index: 0, model: 'ich9-ehci1' }, { index: 0, model: 'ich9-uhci1' }, {}, { model: 'none' }]);
    expect(formatDomainXml(def)).toBe(xml);
  });

  it('has no usbControllers when the document has none; other controllers are in their own list', () => {
    const def = parseDomainXml(domainXml([DISK, PCI_ROOT].join('\n')));
    expect(def.devices.usbControllers).toBeUndefined();
    expect(def.devices).toEqual({
      disks: [expect.anything()],
      graphics: [],
      serials: [],
      consoles: [],
      controllers: [{ type: 'pci', index: 0, model: 'pci-root' }],
    });
  });

  it('writes an edited model and address in place, nothing else', () => {
    const xml = domainXml([DISK, PIIX3, PCI_ROOT].join('\n'));
    const def = parseDomainXml(xml);
    const out = formatDomainXml(
      withUsb(def, [{ index: 0, model: 'piix3-uhci', address: { type: 'pci', domain: '0x0000', bus: '0x00', slot: '0x05', function: '0x0' } }]),
    );
    const before = xml.split('\n');
    const after = out.split('\n');
    expect(after.length).toBe(before.length);
    expect(after.filter((l, i) => l !== before[i])).toEqual(["      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>"]);
    expect(formatDomainXml(withUsb(def, [{ index: 0, model: 'none' }]))).toContain(
      "<controller type='usb' index='0' model='none'>\n      <alias name='usb'/>\n    </controller>",
    );
  });

  it('removes controllers dropped from the list, adds new ones after the disks, leaves them alone when the list is absent', () => {
    const xml = domainXml([DISK, PIIX3, PCI_ROOT].join('\n'));
    const def = parseDomainXml(xml);
    expect(formatDomainXml(withUsb(def, []))).toBe(domainXml([DISK, PCI_ROOT].join('\n')));
    expect(formatDomainXml(withUsb(def, undefined))).toBe(xml);
    const bare = parseDomainXml(domainXml(DISK));
    const added = formatDomainXml(
      withUsb(bare, [{ index: 0, model: 'piix3-uhci', address: { type: 'pci', domain: '0x0000', bus: '0x00', slot: '0x01', function: '0x2' } }]),
    );
    expect(added).toBe(
      domainXml(
        [
          DISK,
          "    <controller type='usb' index='0' model='piix3-uhci'>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>\n    </controller>",
        ].join('\n'),
      ),
    );
    expect(parseDomainXml(added).devices.usbControllers).toEqual([
      { index: 0, model: 'piix3-uhci', address: { type: 'pci', domain: '0x0000', bus: '0x00', slot: '0x01', function: '0x2' } },
    ]);
  });

  it('refuses an unknown model, a bad index and a bad address, saying where', () => {
    const bad = failureOf(() => parseDomainXml(domainXml([PCI_ROOT, "    <controller type='usb' index='0' model='turbo-usb'/>"].join('\n'))));
    expect(bad.type).toBe('XmlError');
    expect(bad.message).toMatch(
      /USB controller model 'turbo-usb' is not one of .*piix3-uhci.* at \/domain\/devices\/controller\[2\]\/@model \(line 10, column 5\)/,
    );
    expect(failureOf(() => parseDomainXml(domainXml("    <controller type='usb' index='x'/>"))).message).toMatch(/controller index 'x' is not an integer/);
    expect(failureOf(() => parseDomainXml(domainXml("    <controller type='usb' index='-1'/>"))).message).toMatch(/controller index -1 is out of range/);
    expect(failureOf(() => parseDomainXml(domainXml("    <controller type='usb'>\n      <address type='warp'/>\n    </controller>"))).message).toMatch(
      /address type 'warp'/,
    );
    const def = parseDomainXml(domainXml(PIIX3));
    expect(failureOf(() => validateDomainDef(withUsb(def, [{ model: 'ehci2' as UsbControllerDef['model'] }]))).type).toBe('XmlError');
    // Two devices on one PCI address, as libvirt refuses it.
    expect(
      failureOf(() =>
        parseDomainXml(
          domainXml(
            [
              PIIX3,
              "    <controller type='ide' index='0'>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>\n    </controller>",
            ].join('\n'),
          ),
        ),
      ).message,
    ).toMatch(/PCI address 0000:00:01.2 is already used/);
  });
});

describe('USB controllers on the QEMU command line', () => {
  const parsed = (devices: string, machine?: string) => parseDomainXml(domainXml(devices, machine));

  it("builds libvirt's default piix3-uhci at the XML's PCI address (slot 1 function 2 when none is given)", () => {
    expect(usbDevice(parsed(PIIX3))).toEqual(['piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2']);
    expect(usbDevice(parsed("    <controller type='usb' index='0'/>", 'pc'))).toEqual(['piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2']);
    expect(usbDevice(parsed("    <controller type='usb'>\n      <address type='pci' slot='5' function='0'/>\n    </controller>"))).toEqual([
      'piix3-usb-uhci,id=usb,bus=pci.0,addr=0x5.0x0',
    ]);
  });

  it("builds libvirt's default for a pc domain that names no USB controller (libvirt leaves it out of save-image XML)", () => {
    expect(usbDevice(parsed(PCI_ROOT))).toEqual(['piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2']);
    expect(usbDevice(parsed(DISK, 'pc'))).toEqual(['piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2']);
  });

  it('builds qemu-xhci at its address; refuses a slot past 31 as bad XML', () => {
    expect(
      buildQemuArgs(parsed("    <controller type='usb' index='0' model='qemu-xhci'>\n      <address type='pci' slot='0x05'/>\n    </controller>"), {
        qmpSocket: '/run/x.sock',
      }),
    ).toContain('qemu-xhci,id=usb,bus=pci.0,addr=0x5.0x0');
    const f = failureOf(() =>
      buildQemuArgs(parsed("    <controller type='usb' index='0'>\n      <address type='pci' slot='0x20'/>\n    </controller>"), { qmpSocket: '/run/x.sock' }),
    );
    expect(f.type).toBe('XmlError');
    expect(f.message).toMatch(/PCI address slot '0x20' is not a number in 0..31/);
  });

  it('builds no USB device for model none, nor on another machine type that names none', () => {
    expect(usbDevice(parsed("    <controller type='usb' index='0' model='none'/>"))).toEqual([]);
    expect(buildQemuArgs(parsed("    <controller type='usb' model='none'/>"), { qmpSocket: '/run/x.sock' }).join(' ')).not.toMatch(/usb-|uhci/);
    expect(buildQemuArgs(parsed(PCI_ROOT, 'pc-q35-7.2'), { qmpSocket: '/run/x.sock' }).join(' ')).not.toMatch(/usb-|uhci/);
  });

  it('refuses every other USB controller with ConfigUnsupported, before QEMU runs', () => {
    const cases: [string, string | undefined, RegExp][] = [
      ["    <controller type='usb' index='0' model='nec-xhci'/>", undefined, /USB controller model 'nec-xhci' is not supported/],
      [
        "    <controller type='usb' index='0' model='ich9-ehci1'/>\n    <controller type='usb' index='0' model='ich9-uhci1'/>",
        undefined,
        /only one USB controller is supported/,
      ],
      ["    <controller type='usb' index='1' model='piix3-uhci'/>", undefined, /USB controller index 1 is not supported/],
      ["    <controller type='usb' index='0'/>", 'pc-q35-7.2', /only supported on the pc \(i440fx\) machine, not 'pc-q35-7.2'/],
      [
        "    <controller type='usb' index='0'>\n      <address type='pci' domain='0x0000' bus='0x01' slot='0x01' function='0x0'/>\n    </controller>",
        undefined,
        /root PCI bus/,
      ],
    ];
    for (const [devices, machine, message] of cases) {
      const f = failureOf(() => buildQemuArgs(parsed(devices, machine), { qmpSocket: '/run/x.sock' }));
      expect(f.type).toBe('ConfigUnsupported');
      expect(f.message).toMatch(message);
    }
  });
});
