// The device part of the table of what vmferry builds (built-elements.ts):
// disks, controllers, input, video, channels, rng, watchdog, panic and the
// balloon, each with the addresses its builder in src/qemu/devices/ places it
// at. Values the builders or domain/*-validate.ts refuse with ConfigUnsupported
// themselves (a USB controller model, an address off the root PCI bus, a hub
// port) are left to them; everything else not listed here is refused.
import { ALIAS, attr, childNamed, childNames, EMPTY, textOf, type ElementRule } from './built-rule.js';
import { childElements } from '../xml/xml-edit.js';
import type { XmlElement } from '../xml/xml-tree.js';

const PCI_ADDRESS: ElementRule = {
  why: 'bus=pci.0,addr= (qemu/devices/pci.ts; domain/pci-address.ts refuses any bus but the root)',
  attrs: {
    domain: 'PCI domain (0 only)',
    bus: 'PCI bus (0 only)',
    slot: 'addr= slot',
    function: 'addr= function',
    multifunction: { why: 'multifunction=', values: ['on', 'off'] },
  },
};
const DRIVE_ADDRESS: ElementRule = {
  why: 'the IDE bus and unit, AHCI port, or SCSI channel/target/lun (qemu/devices/disk.ts, domain/bus-addresses.ts)',
  attrs: { controller: 'the controller index', bus: 'the bus', target: 'the SCSI target', unit: 'the unit' },
};
const VIRTIO_SERIAL_ADDRESS: ElementRule = {
  why: 'bus=virtio-serialN.0,nr= (qemu/devices/channel.ts, domain/bus-addresses.ts)',
  attrs: { controller: 'the controller index', bus: 'bus 0 only (bus-addresses.ts)', port: 'nr=' },
};
const USB_ADDRESS: ElementRule = {
  why: 'port= on usb.0 (qemu/devices/input.ts; bus-addresses.ts refuses hub ports)',
  attrs: { bus: 'bus 0 only', port: 'port=' },
};
const ISA_ADDRESS: ElementRule = { why: 'ioport= of the ISA pvpanic (qemu/devices/panic.ts)', attrs: { iobase: 'ioport=' } };

/** `<address>` of one of the types listed; the builders refuse a type that does not fit the device's bus. */
const address = (cases: Record<string, ElementRule>): ElementRule => ({ why: "the device's address", byAttr: { attr: 'type', cases } });
const PCI_ONLY = address({ pci: PCI_ADDRESS });
const PCI_DEVICE = { alias: ALIAS, address: PCI_ONLY };

const diskCase = (kind: 'file' | 'block'): ElementRule => ({
  why: `a -drive ${kind} backend and its device on its bus (qemu/devices/disk.ts)`,
  attrs: { device: { why: 'the device kinds built (a cdrom may be empty)', values: ['disk', 'cdrom'] } },
  children: {
    driver: {
      why: 'the -drive options',
      attrs: { name: "only 'qemu' is accepted by the model", type: 'format=', cache: 'cache=' },
    },
    source: {
      why: 'file=',
      attrs:
        kind === 'file'
          ? {
              file: 'file=',
              startupPolicy: 'applied before QEMU starts (host/startup-policy.ts)',
              index: 'libvirt run-time numbering of the chain, nothing in QEMU',
            }
          : // startup-policy.ts checks files only: a policy on a block disk would not be applied.
            { dev: 'file= (the block device)', index: 'libvirt run-time numbering of the chain, nothing in QEMU' },
    },
    // libvirt's live XML says "no backing chain" this way; a chain it names is refused (QEMU would open the image's own).
    backingStore: {
      why: 'empty: the image has no backing file',
      refuse: (el) => (childNames(el).length > 0 ? 'a backing chain named in the XML is not built' : undefined),
    },
    target: {
      why: 'the device name and bus',
      attrs: {
        dev: 'drive id, and the default drive address',
        bus: { why: 'the buses built (qemu/devices/disk.ts)', values: ['virtio', 'ide', 'sata', 'scsi'] },
      },
    },
    readonly: { ...EMPTY, why: 'readonly=on' },
    shareable: { ...EMPTY, why: 'share-rw=on on the device, a shared disk lease (host/leases/), and the migration safety checks' },
    alias: ALIAS,
    // virtio disks sit on a PCI slot, the others at a drive address.
    address: address({ pci: PCI_ADDRESS, drive: DRIVE_ADDRESS }),
  },
});

const VIDEO_TYPES = ['vga', 'cirrus', 'bochs', 'virtio', 'qxl', 'none'];
const VIDEO_VRAM = ['vga', 'qxl', 'bochs'];
const VIDEO_HEADS = ['virtio', 'qxl'];

const VIDEO: ElementRule = {
  why: 'the video card (qemu/devices/video.ts)',
  children: {
    model: {
      why: 'the card model and its sizes',
      attrs: {
        type: { why: 'the cards built', values: VIDEO_TYPES },
        vram: 'vgamem_mb= (vga), vram_size= (qxl), vgamem= (bochs)',
        heads: 'max_outputs= (virtio, qxl)',
        primary: { why: 'the first card is the primary one', values: ['yes', 'no'] },
      },
      // video.ts passes vram and heads to the models that have them; elsewhere the value would be dropped.
      refuse: (el) => {
        const type = attr(el, 'type') ?? 'vga';
        if (!VIDEO_TYPES.includes(type)) return undefined; // the type attribute's rule names it
        if (attr(el, 'vram') !== undefined && !VIDEO_VRAM.includes(type)) return `vram is built for ${VIDEO_VRAM.join(', ')} only, not ${type}`;
        const heads = attr(el, 'heads');
        if (heads !== undefined && heads !== '1' && !VIDEO_HEADS.includes(type))
          return `more than one head is built for ${VIDEO_HEADS.join(', ')} only, not ${type}`;
        return undefined;
      },
    },
    ...PCI_DEVICE,
  },
};

const INPUT: ElementRule = {
  why: 'an input device: PS/2 is the machine i8042, USB and virtio ones are built (qemu/devices/input.ts)',
  attrs: {
    type: { why: 'the input devices built', values: ['mouse', 'keyboard', 'tablet'] },
    bus: { why: 'the buses built', values: ['ps2', 'usb', 'virtio'] },
  },
  // A PS/2 device is the machine's own: an address on it would be dropped.
  refuse: (el) => {
    const bus = attr(el, 'bus') ?? (attr(el, 'type') === 'tablet' ? 'usb' : 'ps2');
    return bus === 'ps2' && childNamed(el, 'address') !== undefined ? 'a PS/2 input device has no address to build' : undefined;
  },
  children: { alias: ALIAS, address: address({ usb: USB_ADDRESS, pci: PCI_ADDRESS }) },
};

const CONTROLLER: ElementRule = {
  why: 'a controller (qemu/devices/controllers.ts, usb-controller.ts)',
  byAttr: {
    attr: 'type',
    cases: {
      usb: {
        why: 'piix3-usb-uhci or qemu-xhci (qemu/devices/usb-controller.ts checks model, index, count and machine)',
        attrs: { index: 'controller index', model: 'controller model' },
        children: PCI_DEVICE,
      },
      // The machine's own host bridge: libvirt names it; bridges and PCIe roots are not built.
      pci: {
        why: "the pc machine's PCI root",
        attrs: { index: { why: 'the root', values: ['0'] }, model: { why: 'the root of the pc machine', values: ['pci-root'] } },
        children: { alias: ALIAS },
      },
      // The pc machine's built-in PIIX3 IDE controller at 00:01.1.
      ide: {
        why: "the pc machine's IDE controller",
        attrs: { index: { why: 'the built-in one', values: ['0'] }, model: { why: 'the PIIX3 one', values: ['piix3'] } },
        children: PCI_DEVICE,
      },
      'virtio-serial': {
        why: 'virtio-serial-pci (qemu/devices/controllers.ts)',
        attrs: { index: 'controller index', model: { why: 'virtio-serial-pci', values: ['virtio'] }, ports: 'max_ports=' },
        children: PCI_DEVICE,
      },
      scsi: {
        why: 'virtio-scsi-pci (qemu/devices/controllers.ts)',
        attrs: { index: 'controller index', model: { why: 'virtio-scsi-pci', values: ['virtio-scsi'] } },
        refuse: (el) => (attr(el, 'model') === undefined ? "a SCSI controller without a model (libvirt's default, lsilogic) is not built" : undefined),
        children: PCI_DEVICE,
      },
      sata: { why: 'ich9-ahci (qemu/devices/controllers.ts)', attrs: { index: 'controller index' }, children: PCI_DEVICE },
    },
  },
};

const CHANNEL: ElementRule = {
  why: 'a virtio-serial port on a host socket (qemu/devices/channel.ts)',
  byAttr: {
    attr: 'type',
    absent: 'pty',
    cases: {
      unix: {
        why: 'a socket chardev and a virtserialport (qemu/devices/channel.ts)',
        children: {
          source: {
            why: 'the socket',
            attrs: {
              mode: { why: 'QEMU listens (bind) or connects', values: ['bind', 'connect'] },
              path: 'path= (host/device-setup.ts picks one when absent)',
            },
          },
          target: {
            why: 'the port',
            attrs: {
              type: { why: 'a virtio-serial port', values: ['virtio'] },
              name: 'name=',
              state: "libvirt's run-time report of the guest side, nothing in QEMU",
            },
          },
          alias: ALIAS,
          address: address({ 'virtio-serial': VIRTIO_SERIAL_ADDRESS }),
        },
      },
    },
  },
};

const RNG_SOURCES = ['/dev/urandom', '/dev/random'];

const RNG: ElementRule = {
  why: 'virtio-rng-pci on an rng-random object (qemu/devices/rng.ts)',
  attrs: { model: { why: 'virtio-rng-pci', values: ['virtio'] } },
  children: {
    rate: {
      why: 'max-bytes= and period=',
      attrs: { bytes: 'max-bytes=', period: 'period=' },
      refuse: (el) => (attr(el, 'bytes') === undefined ? 'a rate needs bytes (a period alone limits nothing)' : undefined),
    },
    backend: {
      why: 'the rng-random object reading a host device',
      attrs: { model: { why: 'rng-random', values: ['random'] } },
      refuse: (el) => {
        if (childElements(el).length > 0) return 'a backend holding elements is not built';
        const source = textOf(el).trim();
        return source === '' || RNG_SOURCES.includes(source) ? undefined : `source '${source}' is not built (only ${RNG_SOURCES.join(' or ')})`;
      },
    },
    ...PCI_DEVICE,
  },
};

const WATCHDOG: ElementRule = {
  why: 'i6300esb and -action watchdog= (qemu/devices/watchdog.ts)',
  attrs: {
    model: { why: 'i6300esb', values: ['i6300esb'] },
    action: {
      why: "QEMU's watchdog actions ('dump' needs libvirt to write the dump)",
      values: ['reset', 'shutdown', 'poweroff', 'pause', 'none', 'inject-nmi'],
    },
  },
  children: PCI_DEVICE,
};

const PANIC: ElementRule = {
  why: 'pvpanic (isa) or pvpanic-pci (qemu/devices/panic.ts)',
  attrs: { model: { why: 'the panic devices built', values: ['isa', 'pvpanic'] } },
  children: { alias: ALIAS, address: address({ isa: ISA_ADDRESS, pci: PCI_ADDRESS }) },
};

const MEMBALLOON: ElementRule = {
  why: 'virtio-balloon-pci (qemu/devices/balloon.ts checks the model)',
  attrs: { model: 'balloon model' },
  children: PCI_DEVICE,
};

/** The primary card is the first <video>: libvirt moves a later primary='yes' to the front, vmferry does not. */
function laterPrimaryVideo(devices: XmlElement): string | undefined {
  const videos = childElements(devices, 'video');
  const i = videos.findIndex((v) => attr(childNamed(v, 'model'), 'primary') === 'yes');
  return i > 0 ? `video[${i + 1}] has primary='yes' but vmferry makes the first <video> the primary card: list it first` : undefined;
}

export const DEVICES_REFUSE = laterPrimaryVideo;

/** The device elements below <devices> built by the device builders. */
export const DEVICE_RULES: Readonly<Record<string, ElementRule>> = {
  disk: { why: 'a disk', byAttr: { attr: 'type', absent: 'file', cases: { file: diskCase('file'), block: diskCase('block') } } },
  controller: CONTROLLER,
  input: INPUT,
  video: VIDEO,
  channel: CHANNEL,
  rng: RNG,
  watchdog: WATCHDOG,
  panic: PANIC,
  memballoon: MEMBALLOON,
};
