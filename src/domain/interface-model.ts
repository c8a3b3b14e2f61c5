// <interface>: the guest NICs vmferry builds. Like memballoon and the USB
// controllers, each <interface> element stays in the preserved document; the
// i-th InterfaceDef is written back into the i-th <interface>, so everything
// else inside it keeps its place. As in domain-model.ts, LIBVIRT_* lists what
// libvirt knows: a value there but not in vmferry's list is ConfigUnsupported.
import type { DeviceAddress } from './domain-model.js';
import type { VirtualPortDef } from './virtualport.js';

export const INTERFACE_TYPES = ['user', 'ethernet', 'bridge'] as const;
export type InterfaceType = (typeof INTERFACE_TYPES)[number];
export const LIBVIRT_INTERFACE_TYPES = [
  ...INTERFACE_TYPES,
  'network',
  'direct',
  'vhostuser',
  'server',
  'client',
  'mcast',
  'udp',
  'internal',
  'hostdev',
  'vdpa',
  'null',
  'vds',
] as const;

export const NIC_MODELS = ['virtio', 'e1000', 'e1000e', 'rtl8139'] as const;
export type NicModel = (typeof NIC_MODELS)[number];
/** libvirt passes any model name of this shape to the hypervisor. */
export const LIBVIRT_NIC_MODEL = /^[A-Za-z0-9_-]{1,64}$/;

export const LINK_STATES = ['up', 'down'] as const;
export type LinkState = (typeof LINK_STATES)[number];

/** The children of <interface> vmferry builds; any other child is refused (interface-parse.ts). */
export const INTERFACE_CHILDREN = ['mac', 'source', 'virtualport', 'target', 'model', 'link', 'boot', 'alias', 'address'] as const;

/** libvirt's prefix for generated MACs (the QEMU/KVM OUI). */
export const MAC_PREFIX = '52:54:00';

export interface InterfaceDef {
  /** Any libvirt type parses; the command line builds INTERFACE_TYPES and refuses the rest. */
  type: InterfaceType | (typeof LIBVIRT_INTERFACE_TYPES)[number];
  /** Lower-case colon form; filled in at parse when the XML has none (kept by define). */
  mac: string;
  /** Absent: libvirt's default for the machine, rtl8139 on pc. Other names parse and are refused when built. */
  model?: NicModel | string;
  /** `<source bridge=...>` of a bridge interface. */
  sourceBridge?: string;
  /** `<target dev=...>`: the host tap. An existing tap is used as is; otherwise the host worker creates one of this name. */
  targetDev?: string;
  /** `<link state=...>`; absent means up. */
  linkState?: LinkState;
  /** `<boot order=...>`. */
  bootOrder?: number;
  address?: DeviceAddress;
  alias?: string;
  /** `<virtualport>`: the port profile (domain/virtualport.ts). */
  virtualport?: VirtualPortDef;
  /**
   * Read only: child elements the XML holds that vmferry does not build
   * (bandwidth, filterref, driver, ...). They stay in the preserved
   * element; the command line refuses an interface that has any.
   */
  unbuilt?: string[];
}
