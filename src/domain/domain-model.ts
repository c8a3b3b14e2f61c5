// The typed domain definition: the part of libvirt's domain schema vmferry
// reads and edits. Everything else in the document stays in `preserved`: the
// XML the definition was parsed from, with the list devices (disks, graphics,
// serials, consoles) cut out into their own `preserved` strings. It comes back
// out of formatDomainXml unchanged and in place. A DomainDef is plain JSON (the
// preserved parts are XML text, about the size of the input): it crosses
// Temporal activity boundaries as is. While the domain code works on a
// definition it holds the preserved parts as ordered trees (TreeForm).
import type { MoreDevicesDef } from './devices-more-model.js';
import type { InterfaceDef } from './interface-model.js';
import type { XmlElement, XmlNode } from '../xml/xml-tree.js';

/** Preserved XML as text: the public, serialisable form. */
export interface TextForm {
  doc: string;
  element: string;
}
/** Preserved XML as ordered trees: the working form inside the domain code. */
export interface TreeForm {
  doc: XmlNode[];
  element: XmlElement;
}
export type PreservedForm = TextForm | TreeForm;

// Where vmferry takes only part of what libvirt's schema allows, the LIBVIRT_*
// list says what libvirt knows: a value there but not in vmferry's list is a
// request vmferry does not support (ConfigUnsupported), a value in neither is
// invalid XML (XmlError).

export const DOMAIN_TYPES = ['kvm', 'qemu'] as const;
export type DomainType = (typeof DOMAIN_TYPES)[number];
export const LIBVIRT_DOMAIN_TYPES = [
  ...DOMAIN_TYPES,
  'kqemu',
  'xen',
  'lxc',
  'uml',
  'openvz',
  'test',
  'vmware',
  'hyperv',
  'vbox',
  'phyp',
  'vz',
  'bhyve',
  'hvf',
] as const;

export const VCPU_PLACEMENTS = ['static', 'auto'] as const;
export type VcpuPlacement = (typeof VCPU_PLACEMENTS)[number];

export const OS_TYPES = ['hvm'] as const;
export type OsType = (typeof OS_TYPES)[number];
export const LIBVIRT_OS_TYPES = [...OS_TYPES, 'xen', 'linux', 'xenpvh', 'exe', 'uml'] as const;

export const BOOT_DEVICES = ['fd', 'hd', 'cdrom', 'network'] as const;
export type BootDevice = (typeof BOOT_DEVICES)[number];

export const CPU_MODES = ['custom', 'host-model', 'host-passthrough', 'maximum'] as const;
export type CpuMode = (typeof CPU_MODES)[number];

export const CLOCK_OFFSETS = ['utc', 'localtime', 'timezone', 'variable', 'absolute'] as const;
export type ClockOffset = (typeof CLOCK_OFFSETS)[number];

export const LIFECYCLE_ACTIONS = ['destroy', 'restart', 'preserve', 'rename-restart'] as const;
export type LifecycleAction = (typeof LIFECYCLE_ACTIONS)[number];
export const CRASH_ACTIONS = [...LIFECYCLE_ACTIONS, 'coredump-destroy', 'coredump-restart'] as const;
export type CrashAction = (typeof CRASH_ACTIONS)[number];

export const MEMORY_SOURCE_TYPES = ['file', 'anonymous', 'memfd'] as const;
export type MemorySourceType = (typeof MEMORY_SOURCE_TYPES)[number];
export const MEMORY_ACCESS_MODES = ['shared', 'private'] as const;
export type MemoryAccessMode = (typeof MEMORY_ACCESS_MODES)[number];

export const DISK_TYPES = ['file', 'block', 'dir', 'network', 'volume', 'nvme', 'vhostuser', 'vhostvdpa'] as const;
export type DiskType = (typeof DISK_TYPES)[number];
export const DISK_DEVICES = ['disk', 'cdrom', 'floppy', 'lun'] as const;
export type DiskDevice = (typeof DISK_DEVICES)[number];
export const DISK_BUSES = ['ide', 'scsi', 'virtio', 'xen', 'usb', 'uml', 'sata', 'sd', 'fdc', 'none'] as const;
export type DiskBus = (typeof DISK_BUSES)[number];
export const DISK_FORMATS = ['raw', 'qcow2'] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];
/** libvirt's image formats for <driver type=...>. */
export const LIBVIRT_DISK_FORMATS = [
  ...DISK_FORMATS,
  'dir',
  'bochs',
  'cloop',
  'dmg',
  'iso',
  'vpc',
  'vdi',
  'fat',
  'vhd',
  'ploop',
  'cow',
  'qcow',
  'qed',
  'vmdk',
  'luks',
] as const;
/** libvirt's startupPolicy of a disk source: what to do when the file is missing. */
export const DISK_STARTUP_POLICIES = ['mandatory', 'requisite', 'optional'] as const;
export type DiskStartupPolicy = (typeof DISK_STARTUP_POLICIES)[number];
export const DISK_CACHE_MODES = ['default', 'none', 'writethrough', 'writeback', 'directsync', 'unsafe'] as const;
export type DiskCacheMode = (typeof DISK_CACHE_MODES)[number];
export const DISK_DRIVER_NAMES = ['qemu'] as const;
export type DiskDriverName = (typeof DISK_DRIVER_NAMES)[number];
/** libvirt takes any driver name of this shape (each hypervisor driver knows its own). */
export const LIBVIRT_DISK_DRIVER_NAME = /^[A-Za-z0-9_.+-]{1,64}$/;

export const GRAPHICS_TYPES = ['vnc', 'spice', 'sdl', 'rdp', 'desktop', 'egl-headless', 'dbus'] as const;
export type GraphicsType = (typeof GRAPHICS_TYPES)[number];
export const GRAPHICS_LISTEN_TYPES = ['address', 'network', 'socket', 'none'] as const;
export type GraphicsListenType = (typeof GRAPHICS_LISTEN_TYPES)[number];

export const CHARDEV_TYPES = [
  'null',
  'vc',
  'pty',
  'dev',
  'file',
  'pipe',
  'stdio',
  'udp',
  'tcp',
  'unix',
  'spicevmc',
  'spiceport',
  'nmdm',
  'qemu-vdagent',
  'dbus',
] as const;
export type CharDevType = (typeof CHARDEV_TYPES)[number];

export const MEMBALLOON_MODELS = ['virtio', 'virtio-transitional', 'virtio-non-transitional', 'xen', 'none'] as const;
export type MemballoonModel = (typeof MEMBALLOON_MODELS)[number];

/** libvirt's USB controller models; which of them QEMU can be given is the command line's business. */
export const USB_CONTROLLER_MODELS = [
  'piix3-uhci',
  'piix4-uhci',
  'ehci',
  'ich9-ehci1',
  'ich9-uhci1',
  'ich9-uhci2',
  'ich9-uhci3',
  'vt82c686b-uhci',
  'pci-ohci',
  'nec-xhci',
  'qusb1',
  'qusb2',
  'qemu-xhci',
  'none',
] as const;
export type UsbControllerModel = (typeof USB_CONTROLLER_MODELS)[number];

export interface OsDef {
  type: OsType;
  arch?: string;
  machine?: string;
  /** `<boot dev=...>` entries in order. */
  boot: BootDevice[];
  kernel?: string;
  initrd?: string;
  cmdline?: string;
}

export const CPU_MATCHES = ['minimum', 'exact', 'strict'] as const;
export type CpuMatch = (typeof CPU_MATCHES)[number];
export const CPU_CHECKS = ['none', 'partial', 'full'] as const;
export type CpuCheck = (typeof CPU_CHECKS)[number];
export const CPU_FALLBACKS = ['allow', 'forbid'] as const;
export type CpuFallback = (typeof CPU_FALLBACKS)[number];
export const CPU_FEATURE_POLICIES = ['force', 'require', 'optional', 'disable', 'forbid'] as const;
export type CpuFeaturePolicy = (typeof CPU_FEATURE_POLICIES)[number];

/** `<feature policy name>` inside `<cpu>`; libvirt reads a missing policy as 'require'. */
export interface CpuFeatureDef {
  policy?: CpuFeaturePolicy;
  name: string;
}

/** `<topology>`: sockets x dies x clusters x cores x threads must equal the vCPU count. */
export interface CpuTopologyDef {
  sockets: number;
  dies?: number;
  clusters?: number;
  cores: number;
  threads: number;
}

/** `<numa><cell>`: a guest NUMA node, its vCPUs (libvirt's list syntax, e.g. 0-1,4) and memory. */
export interface NumaCellDef {
  id?: number;
  cpus?: string;
  memoryKiB: number;
}

export interface CpuDef {
  mode?: CpuMode;
  match?: CpuMatch;
  check?: CpuCheck;
  /** Text of `<model>`; absent or empty in libvirt's `<model fallback='allow'/>`. */
  model?: string;
  fallback?: CpuFallback;
  /** `<feature>` elements in document order; absent means none. */
  features?: CpuFeatureDef[];
  topology?: CpuTopologyDef;
  /** `<numa>` cells; when present, the guest's memory is their sum (libvirt's rule). */
  numaCells?: NumaCellDef[];
}

export interface ClockDef {
  offset?: ClockOffset;
}

export interface MemoryBackingDef {
  sourceType?: MemorySourceType;
  accessMode?: MemoryAccessMode;
}

/** Attributes of a device `<address>` element, `type` included (pci, drive, ...). */
export type DeviceAddress = { type: string } & Record<string, string>;

export interface DiskDef<F extends PreservedForm = TextForm> {
  type: DiskType;
  device: DiskDevice;
  /** Present when the disk has a `<driver>` element (possibly with only unmodelled attributes). */
  driver?: { name?: DiskDriverName; type?: DiskFormat; cache?: DiskCacheMode };
  /**
   * `<source>` of a file disk (`file`) or block disk (`dev`). Undefined for an
   * empty drive. For other disk types the source is not modelled and is kept as is.
   */
  source?: { file?: string; dev?: string; startupPolicy?: DiskStartupPolicy };
  target: { dev: string; bus?: DiskBus };
  readonly: boolean;
  shareable: boolean;
  address?: DeviceAddress;
  /** Runtime device alias (`<alias name=...>`), live XML only unless it starts with `ua-`. */
  alias?: string;
  /** Internal: the original `<disk>` element (unmodelled parts); absent for a disk added in code. */
  preserved?: F['element'];
}

export interface GraphicsListenDef {
  type: GraphicsListenType;
  address?: string;
  network?: string;
  socket?: string;
}

export interface GraphicsDef<F extends PreservedForm = TextForm> {
  type: GraphicsType;
  /** vnc / spice port; -1 asks for automatic allocation. */
  port?: number;
  /** spice TLS port; -1 asks for automatic allocation. */
  tlsPort?: number;
  autoport?: boolean;
  /** The legacy `listen` attribute; it mirrors the first address-type `<listen>`. */
  listen?: string;
  listens: GraphicsListenDef[];
  passwd?: string;
  /** Internal: the original `<graphics>` element. */
  preserved?: F['element'];
}

export interface CharDevDef<F extends PreservedForm = TextForm> {
  type: CharDevType;
  /** `<source path=...>`: for pty the host side assigned at run time. */
  sourcePath?: string;
  /** `<source append=...>` of a file chardev: on keeps what the file holds (a migration destination opens the same log). */
  sourceAppend?: 'on' | 'off';
  /** `tty` attribute of a pty console / serial, run time only. */
  tty?: string;
  targetType?: string;
  targetPort?: number;
  alias?: string;
  /** Internal: the original `<serial>` / `<console>` element. */
  preserved?: F['element'];
}

export interface MemballoonDef {
  model: MemballoonModel;
  address?: DeviceAddress;
}

/**
 * `<controller type='usb'>`. The element stays in the preserved document (like
 * memballoon's); these values are written back into it, matched by position
 * among the USB controllers. Its other children (alias, master, ...) are kept.
 */
export interface UsbControllerDef {
  index?: number;
  /** Absent: the machine type's default (piix3-uhci on pc / i440fx). */
  model?: UsbControllerModel;
  address?: DeviceAddress;
}

/** The list devices, plus the in-document families of MoreDevicesDef (video, input, channel, ...). */
export interface DevicesDef<F extends PreservedForm = TextForm> extends MoreDevicesDef {
  emulator?: string;
  disks: DiskDef<F>[];
  graphics: GraphicsDef<F>[];
  serials: CharDevDef<F>[];
  consoles: CharDevDef<F>[];
  /**
   * USB controllers in document order; absent when the document has none.
   * Formatting leaves the preserved ones untouched when this is absent (a
   * definition from code that predates the field), and removes them for [].
   */
  usbControllers?: UsbControllerDef[];
  /** Guest NICs in document order (interface-model.ts); absent when the document has none. */
  interfaces?: InterfaceDef[];
  memballoon?: MemballoonDef;
}

export interface DomainDef<F extends PreservedForm = TextForm> {
  type: DomainType;
  /** Runtime domain id (live XML only). */
  id?: number;
  name: string;
  /** Dashed lowercase. */
  uuid: string;
  title?: string;
  description?: string;
  memoryKiB: number;
  currentMemoryKiB: number;
  vcpus: number;
  vcpuPlacement?: VcpuPlacement;
  /** `current` attribute of `<vcpu>`: vCPUs online at boot. */
  vcpusCurrent?: number;
  os: OsDef;
  cpu?: CpuDef;
  /** Element names inside `<features>`, in document order. */
  features: string[];
  clock?: ClockDef;
  onPoweroff?: LifecycleAction;
  onReboot?: LifecycleAction;
  onCrash?: CrashAction;
  memoryBacking?: MemoryBackingDef;
  devices: DevicesDef<F>;
  /**
   * Internal: the parsed document (everything not modelled above), list
   * devices replaced by markers. Absent for a definition built in code.
   */
  preserved?: F['doc'];
}

/** Deep copy; editing the copy never touches the original. */
export function cloneDomainDef(def: DomainDef): DomainDef {
  return structuredClone(def);
}

export function isOneOf<T extends string>(values: readonly T[], value: unknown): value is T {
  return typeof value === 'string' && (values as readonly string[]).includes(value);
}
