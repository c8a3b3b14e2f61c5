// The device families that stay in the preserved document (like memballoon and
// the USB controllers): video, input, controllers other than USB, channels,
// rng, watchdog and panic. Each family is a list in document order; formatting
// writes the i-th item into the i-th matching element, so everything vmferry
// does not model inside them (alias, driver options, ...) keeps its place.
// As in domain-model.ts, LIBVIRT_* lists what libvirt knows: a value there but
// not in vmferry's list is ConfigUnsupported, a value in neither is XmlError.
import type { DeviceAddress } from './domain-model.js';

export const VIDEO_MODELS = ['vga', 'cirrus', 'bochs', 'virtio', 'qxl', 'none'] as const;
export type VideoModel = (typeof VIDEO_MODELS)[number];
export const LIBVIRT_VIDEO_MODELS = [...VIDEO_MODELS, 'vmvga', 'xen', 'vbox', 'parallels', 'gop', 'ramfb'] as const;

export const INPUT_TYPES = ['tablet', 'mouse', 'keyboard'] as const;
export type InputType = (typeof INPUT_TYPES)[number];
export const LIBVIRT_INPUT_TYPES = [...INPUT_TYPES, 'passthrough', 'evdev'] as const;
export const INPUT_BUSES = ['usb', 'ps2', 'virtio'] as const;
export type InputBus = (typeof INPUT_BUSES)[number];
export const LIBVIRT_INPUT_BUSES = [...INPUT_BUSES, 'xen', 'parallels', 'none'] as const;

/** Controller types other than usb (modelled in UsbControllerDef). */
export const CONTROLLER_TYPES = ['pci', 'virtio-serial', 'scsi', 'sata', 'ide'] as const;
export type ControllerType = (typeof CONTROLLER_TYPES)[number];
export const LIBVIRT_CONTROLLER_TYPES = [...CONTROLLER_TYPES, 'fdc', 'ccid', 'xenbus', 'isa'] as const;
/** The one model per type vmferry builds (pci: the i440fx root bus; scsi: virtio-scsi). */
export const CONTROLLER_MODELS: Record<ControllerType, readonly string[]> = {
  pci: ['pci-root'],
  'virtio-serial': ['virtio', 'virtio-transitional', 'virtio-non-transitional'],
  scsi: ['virtio-scsi'],
  sata: [],
  ide: ['piix3'],
};

export const CHANNEL_TARGET_TYPES = ['virtio'] as const;
export const LIBVIRT_CHANNEL_TARGET_TYPES = [...CHANNEL_TARGET_TYPES, 'guestfwd', 'xen'] as const;
export const CHANNEL_SOURCE_MODES = ['bind', 'connect'] as const;
export type ChannelSourceMode = (typeof CHANNEL_SOURCE_MODES)[number];

export const RNG_MODELS = ['virtio'] as const;
export const LIBVIRT_RNG_MODELS = [...RNG_MODELS, 'virtio-transitional', 'virtio-non-transitional'] as const;
export const RNG_BACKEND_MODELS = ['random'] as const;
export const LIBVIRT_RNG_BACKEND_MODELS = [...RNG_BACKEND_MODELS, 'egd', 'builtin'] as const;
/** Host entropy sources vmferry hands to QEMU; libvirt also takes /dev/hwrng. */
export const RNG_SOURCES = ['/dev/urandom', '/dev/random'] as const;

export const WATCHDOG_MODELS = ['i6300esb'] as const;
export const LIBVIRT_WATCHDOG_MODELS = [...WATCHDOG_MODELS, 'ib700', 'diag288', 'itco'] as const;
export const WATCHDOG_ACTIONS = ['reset', 'shutdown', 'poweroff', 'pause', 'none', 'inject-nmi'] as const;
export type WatchdogAction = (typeof WATCHDOG_ACTIONS)[number];
export const LIBVIRT_WATCHDOG_ACTIONS = [...WATCHDOG_ACTIONS, 'dump'] as const;

export const PANIC_MODELS = ['isa', 'pvpanic'] as const;
export type PanicModel = (typeof PANIC_MODELS)[number];
export const LIBVIRT_PANIC_MODELS = [...PANIC_MODELS, 'pseries', 'hyperv', 's390'] as const;

interface Addressed {
  address?: DeviceAddress;
}

/** `<video><model type vram heads primary/></video>`. */
export interface VideoDef extends Addressed {
  model: VideoModel;
  vramKiB?: number;
  heads?: number;
  primary?: boolean;
}

export interface InputDef extends Addressed {
  type: InputType;
  /** Absent: libvirt's default for the type (ps2 for mouse and keyboard, usb for tablet). */
  bus?: InputBus;
}

export interface ControllerDef extends Addressed {
  type: ControllerType;
  index?: number;
  model?: string;
  /** virtio-serial `ports`. */
  ports?: number;
}

/** `<channel type='unix'>`: a host socket wired to a named virtio-serial port. */
export interface ChannelDef extends Addressed {
  type: string;
  sourceMode?: ChannelSourceMode;
  /** Absent with mode bind: the host picks one under its run directory (in the live XML only). */
  sourcePath?: string;
  targetType?: string;
  targetName?: string;
}

export interface RngDef extends Addressed {
  model: string;
  backendModel: string;
  /** Text of `<backend>`; absent means libvirt's default, /dev/random. */
  backendSource?: string;
  rateBytes?: number;
  ratePeriodMs?: number;
}

export interface WatchdogDef extends Addressed {
  model: string;
  /** Absent: reset. */
  action?: string;
}

export interface PanicDef extends Addressed {
  /** Absent: isa on x86. */
  model?: string;
}

/** The in-document families of DevicesDef. Absent: the definition predates them, leave the document as is. */
export interface MoreDevicesDef {
  videos?: VideoDef[];
  inputs?: InputDef[];
  controllers?: ControllerDef[];
  channels?: ChannelDef[];
  rngs?: RngDef[];
  watchdogs?: WatchdogDef[];
  panics?: PanicDef[];
}
