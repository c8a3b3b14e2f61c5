// Value checks for the modelled devices.
import {
  CHARDEV_TYPES,
  DISK_BUSES,
  DISK_CACHE_MODES,
  DISK_DEVICES,
  DISK_DRIVER_NAMES,
  DISK_FORMATS,
  DISK_STARTUP_POLICIES,
  DISK_TYPES,
  GRAPHICS_LISTEN_TYPES,
  GRAPHICS_TYPES,
  LIBVIRT_DISK_DRIVER_NAME,
  LIBVIRT_DISK_FORMATS,
  USB_CONTROLLER_MODELS,
  type CharDevDef,
  type DeviceAddress,
  type DiskDef,
  type GraphicsDef,
  type TreeForm,
  type UsbControllerDef,
} from './domain-model.js';
import type { Checker } from './validate-checker.js';
import { pathStep } from '../xml/xml-errors.js';
import { isForbiddenXmlName } from '../xml/xml-safety.js';

const DISK_TARGET = /^(?:(?:fd|hd|sd|vd|xvd|ubd)[a-z]{1,3}|nvme[0-9]{1,3}n[0-9]{1,3})$/;
const HOST = /^[A-Za-z0-9.:%_-]{1,255}$/;
const SIMPLE_NAME = /^[A-Za-z0-9._-]{1,255}$/;
/** libvirt takes any network name without '/' (it names a file); length bounded like a domain name. */
const NETWORK_NAME = /^[^/]{1,255}$/u;
const ALIAS = /^[A-Za-z0-9._:-]{1,255}$/;
const XML_NAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;
const ADDRESS_TYPES = ['pci', 'drive', 'virtio-serial', 'ccid', 'usb', 'spapr-vio', 'virtio-s390', 'ccw', 'virtio-mmio', 'isa', 'dimm', 'unassigned'] as const;

function checkAlias(c: Checker, alias: unknown, path: string): void {
  c.pattern(alias, ALIAS, `${path}/alias/@name`, 'device alias');
}

export function checkDisk(c: Checker, d: DiskDef<TreeForm>, p: string): void {
  c.object(d, p, 'disk');
  c.oneOf(DISK_TYPES, d.type, `${p}/@type`, 'disk type', true);
  c.oneOf(DISK_DEVICES, d.device, `${p}/@device`, 'disk device', true);
  if (d.driver !== undefined) {
    c.object(d.driver, `${p}/driver`, 'disk driver');
    c.supported(DISK_DRIVER_NAMES, LIBVIRT_DISK_DRIVER_NAME, d.driver.name, `${p}/driver/@name`, 'disk driver name');
    c.supported(DISK_FORMATS, LIBVIRT_DISK_FORMATS, d.driver.type, `${p}/driver/@type`, 'disk format');
    c.oneOf(DISK_CACHE_MODES, d.driver.cache, `${p}/driver/@cache`, 'disk cache mode');
  }
  if (d.source !== undefined) {
    c.object(d.source, `${p}/source`, 'disk source');
    if (d.source.file !== undefined && d.type !== 'file') c.fail(`source file is only valid for type='file' disks`, `${p}/source/@file`);
    if (d.source.dev !== undefined && d.type !== 'block') c.fail(`source dev is only valid for type='block' disks`, `${p}/source/@dev`);
    c.absPath(d.source.file, `${p}/source/@file`, 'disk source file');
    c.absPath(d.source.dev, `${p}/source/@dev`, 'disk source device');
    c.oneOf(DISK_STARTUP_POLICIES, d.source.startupPolicy, `${p}/source/@startupPolicy`, 'startup policy');
  }
  if ((d.device === 'disk' || d.device === 'lun') && (d.type === 'file' || d.type === 'block') && d.source?.file === undefined && d.source?.dev === undefined) {
    c.fail(`a ${d.type} disk of device '${d.device}' needs a source`, `${p}/source`);
  }
  c.object(d.target, `${p}/target`, 'disk target');
  c.pattern(c.str(d.target.dev, `${p}/target/@dev`, 'disk target'), DISK_TARGET, `${p}/target/@dev`, 'disk target');
  c.oneOf(DISK_BUSES, d.target.bus, `${p}/target/@bus`, 'disk bus');
  // virtio-blk has no removable media: QEMU cannot do it, the XML is fine.
  if (d.device === 'cdrom' && d.target.bus === 'virtio') c.unsupported(`a cdrom cannot use bus 'virtio'`, `${p}/target/@bus`);
  if (d.device === 'floppy' && d.target.bus !== undefined && d.target.bus !== 'fdc') {
    c.fail(`a floppy must use bus 'fdc', not '${d.target.bus}'`, `${p}/target/@bus`);
  }
  c.bool(d.readonly, `${p}/readonly`, 'readonly');
  c.bool(d.shareable, `${p}/shareable`, 'shareable');
  checkAddress(c, d.address, p);
  checkAlias(c, d.alias, p);
}

export function checkAddress(c: Checker, address: DeviceAddress | undefined, p: string): void {
  if (address === undefined) return;
  c.object(address, `${p}/address`, 'device address');
  c.oneOf(ADDRESS_TYPES, address.type, `${p}/address/@type`, 'address type', true);
  for (const [k, v] of Object.entries(address)) {
    if (!XML_NAME.test(k) || isForbiddenXmlName(k)) c.fail(`invalid address attribute name '${k}'`, `${p}/address`);
    c.pattern(v, SIMPLE_NAME, `${p}/address/@${k}`, 'address value');
  }
}

export function checkUsbController(c: Checker, u: UsbControllerDef, p: string): void {
  c.object(u, p, 'USB controller');
  c.optInt(u.index, 0, 2 ** 31 - 1, `${p}/@index`, 'controller index');
  c.oneOf(USB_CONTROLLER_MODELS, u.model, `${p}/@model`, 'USB controller model');
  checkAddress(c, u.address, p);
}

export function checkGraphics(c: Checker, g: GraphicsDef<TreeForm>, p: string): void {
  c.object(g, p, 'graphics');
  c.oneOf(GRAPHICS_TYPES, g.type, `${p}/@type`, 'graphics type', true);
  c.optInt(g.port, -1, 65535, `${p}/@port`, 'graphics port');
  if (g.type === 'vnc' && g.port !== undefined && g.port >= 0 && g.port < 5900 && g.autoport !== true) {
    c.fail(`VNC port ${g.port} is below 5900 (use -1 for automatic allocation)`, `${p}/@port`);
  }
  if (g.tlsPort !== undefined && g.type !== 'spice') c.fail('tlsPort is only valid for spice graphics', `${p}/@tlsPort`);
  c.optInt(g.tlsPort, -1, 65535, `${p}/@tlsPort`, 'TLS port');
  if (g.autoport !== undefined) c.bool(g.autoport, `${p}/@autoport`, 'autoport');
  c.pattern(g.listen, HOST, `${p}/@listen`, 'listen address');
  const listens = c.list<GraphicsDef<TreeForm>['listens'][number]>(g.listens, p, 'graphics listens');
  listens.forEach((l, i) => {
    const lp = `${p}/${pathStep('listen', i, listens.length)}`;
    c.object(l, lp, 'listen');
    c.oneOf(GRAPHICS_LISTEN_TYPES, l.type, `${lp}/@type`, 'listen type', true);
    c.pattern(l.address, HOST, `${lp}/@address`, 'listen address');
    c.pattern(l.network, NETWORK_NAME, `${lp}/@network`, 'network name');
    c.absPath(l.socket, `${lp}/@socket`, 'listen socket');
    if (l.type === 'network' && l.network === undefined) c.fail(`listen type 'network' needs a network`, `${lp}/@network`);
    if (l.type !== 'socket' && l.socket !== undefined) c.fail(`socket is only valid for listen type 'socket'`, `${lp}/@socket`);
  });
  const first = listens[0];
  if (g.listen !== undefined && first?.type === 'address' && first.address !== undefined && first.address !== g.listen) {
    c.fail(`listen attribute '${g.listen}' does not match the first <listen> address '${first.address}'`, `${p}/@listen`);
  }
  c.optStr(g.passwd, `${p}/@passwd`, 'graphics password');
}

export function checkCharDev(c: Checker, d: CharDevDef<TreeForm>, p: string): void {
  c.object(d, p, 'character device');
  c.oneOf(CHARDEV_TYPES, d.type, `${p}/@type`, 'character device type', true);
  c.absPath(d.sourcePath, `${p}/source/@path`, 'source path');
  c.oneOf(['on', 'off'], d.sourceAppend, `${p}/source/@append`, 'append');
  c.absPath(d.tty, `${p}/@tty`, 'tty');
  c.pattern(d.targetType, SIMPLE_NAME, `${p}/target/@type`, 'target type');
  c.optInt(d.targetPort, 0, 65535, `${p}/target/@port`, 'target port');
  checkAlias(c, d.alias, p);
}
