// The migration cookie's schema: the small XML document each phase of a v3
// migration hands to the next one, in libvirt's <qemu-migration> shape. It
// carries the domain's name and UUID, the sending host's name and UUID, the
// features the receiver must understand (<feature name='...'/>, mandatory ones
// only), and one element per optional piece of data: graphics relocation, lock
// state, the persistent definition, network port data, NBD, statistics,
// capabilities. Elements of features vmferry does not model travel as text.
/** libvirt's cookie feature names, in libvirt's order (the order <feature> elements are written in). */
export const COOKIE_FEATURES = [
  'graphics',
  'lockstate',
  'persistent',
  'network',
  'nbd',
  'statistics',
  'memory-hotplug',
  'cpu-hotplug',
  'cpu',
  'allowReboot',
  'capabilities',
  'block-dirty-bitmaps',
] as const;

export type CookieFeature = (typeof COOKIE_FEATURES)[number];

/** The features whose data this module reads and writes; the default for `understood`. */
export const MODELLED_FEATURES: readonly CookieFeature[] = ['graphics', 'lockstate', 'persistent', 'network', 'nbd', 'statistics', 'capabilities'];

// libvirt's RPC caps a cookie at 4 MiB (REMOTE_MIGRATE_COOKIE_MAX, 16 KiB in old releases); ours stays at 16 KiB, so a persistent <domain> over ~15 KiB cannot travel in a cookie.
export const MAX_COOKIE_BYTES = 16 * 1024;

/** libvirt's graphics types (virDomainGraphicsType). */
export const GRAPHICS_TYPES = ['sdl', 'vnc', 'rdp', 'desktop', 'spice', 'egl-headless', 'dbus'] as const;
export type GraphicsType = (typeof GRAPHICS_TYPES)[number];

export interface CookieGraphics {
  type: GraphicsType;
  port: number;
  /** Written for spice only; -1 when spice runs without TLS. */
  tlsPort?: number;
  listen: string;
  /** Subject of the destination's TLS server certificate (<cert info='subject' value='...'/>). */
  tlsSubject?: string;
}

export interface CookieNetInterface {
  /** Index of the interface in the domain definition. */
  index?: number;
  /** virtualport type: 802.1Qbg, 802.1Qbh, openvswitch, midonet, ... */
  vporttype: string;
  portdata?: string;
}

/**
 * One disk to copy, as Begin announces it. libvirt writes target and capacity;
 * vmferry adds what the destination needs to create the same image (libvirt's
 * parser ignores attributes it does not know): the allocation the copy will
 * need room for, the qcow2 cluster size, and for copy-storage-inc the backing
 * file the top image names (which must already be on the destination).
 */
export interface CookieNbdDisk {
  target: string;
  capacityBytes: number;
  allocationBytes?: number;
  clusterSizeBytes?: number;
  backingFile?: string;
  backingFormat?: string;
}

export interface CookieNbd {
  /** Port of the destination's NBD server (absent when not known yet). */
  port?: number;
  disks: CookieNbdDisk[];
}

export interface CookieCapability {
  name: string;
  auto: boolean;
}

/** Statistics elements libvirt writes, in its order; `delta` is the only signed one. */
export const COOKIE_STATS_FIELDS = [
  'started',
  'stopped',
  'sent',
  'delta',
  'time_elapsed',
  'downtime',
  'setup_time',
  'memory_total',
  'memory_processed',
  'memory_remaining',
  'memory_bps',
  'memory_constant',
  'memory_normal',
  'memory_normal_bytes',
  'memory_dirty_rate',
  'memory_iteration',
  'memory_postcopy_requests',
  'memory_page_size',
  'disk_total',
  'disk_processed',
  'disk_remaining',
  'disk_bps',
  'compression_cache',
  'compression_bytes',
  'compression_pages',
  'compression_cache_misses',
  'compression_overflow',
  'auto_converge_throttle',
] as const;

export const STATS_FIELD_SET: ReadonlySet<string> = new Set(COOKIE_STATS_FIELDS);

export interface MigrationCookie {
  /** Domain name (libvirt writes the original name when the destination renames). */
  name: string;
  /** Domain UUID, dashed lowercase after parsing. */
  uuid: string;
  /** Name of the host that wrote the cookie. */
  hostname: string;
  /** UUID of the host that wrote the cookie, dashed lowercase after parsing. */
  hostuuid: string;
  /**
   * What the cookie carries: one entry per data element present and understood,
   * plus every mandatory feature. Parsing fills it; formatting requires every
   * data element given to be listed here (libvirt writes an element only when
   * both its flag and its data are set).
   */
  features: CookieFeature[];
  /**
   * Features the receiver must understand (<feature name='...'/>). Formatting
   * adds 'lockstate' whenever features lists it and 'persistent' whenever a
   * persistent definition is present, as libvirt marks them.
   */
  mandatory: CookieFeature[];
  graphics?: CookieGraphics;
  lockState?: { driver: string; leases?: string };
  /** The persistent definition, kept as the raw <domain>...</domain> text. */
  persistentXml?: string;
  network?: { interfaces: CookieNetInterface[] };
  nbd?: CookieNbd;
  /** <statistics>: element name to value (ms, bytes, bytes/s, pages as libvirt has them). */
  stats?: Record<string, number>;
  capabilities?: CookieCapability[];
  /**
   * Top-level elements vmferry does not model (<cpu>, <allowReboot>,
   * <blockDirtyBitmaps>, whatever a newer libvirt adds), each as its XML text,
   * in document order. Parsing keeps them and formatting writes them back, so
   * a cookie passing through this side loses nothing.
   */
  unmodelled?: string[];
}

export interface CookieExpectation {
  /** The domain the cookie must be about (libvirt compares the original name). */
  name: string;
  uuid: string;
  /** Features this side understands in this phase; default MODELLED_FEATURES. Data of other features is ignored. */
  understood?: readonly CookieFeature[];
  /** This host's UUID: a cookie written by this same host is refused (same-host migration). */
  localHostUuid?: string;
}

const FEATURE_SET: ReadonlySet<unknown> = new Set(COOKIE_FEATURES);
const GRAPHICS_SET: ReadonlySet<unknown> = new Set(GRAPHICS_TYPES);

export function isCookieFeature(name: unknown): name is CookieFeature {
  return FEATURE_SET.has(name);
}

export function isGraphicsType(type: unknown): type is GraphicsType {
  return GRAPHICS_SET.has(type);
}
export const COOKIE_ROOT = 'qemu-migration';
/** How deep the cookie nests outside the persistent definition (which is a domain's business). */
export const MAX_COOKIE_DEPTH = 8;

/** Statistics values that may be negative. */
export function statsFieldMin(field: string): number {
  return field === 'delta' || field === 'auto_converge_throttle' ? Number.MIN_SAFE_INTEGER : 0;
}

/** The data element of each feature that has one (memory- and cpu-hotplug are flags only). */
export const FEATURE_ELEMENT: Readonly<Partial<Record<CookieFeature, string>>> = {
  graphics: 'graphics',
  lockstate: 'lockstate',
  persistent: 'domain',
  network: 'network',
  nbd: 'nbd',
  statistics: 'statistics',
  cpu: 'cpu',
  allowReboot: 'allowReboot',
  capabilities: 'capabilities',
  'block-dirty-bitmaps': 'blockDirtyBitmaps',
};

/** Where the data elements stand after the <feature> list: libvirt writes them in feature order. */
export const COOKIE_ELEMENT_ORDER: readonly string[] = COOKIE_FEATURES.flatMap((f) => FEATURE_ELEMENT[f] ?? []);

/** Top-level elements with a field in MigrationCookie; every other one is unmodelled. */
export const MODELLED_ELEMENTS: ReadonlySet<string> = new Set([
  'name',
  'uuid',
  'hostname',
  'hostuuid',
  'feature',
  ...MODELLED_FEATURES.flatMap((f) => FEATURE_ELEMENT[f] ?? []),
]);
