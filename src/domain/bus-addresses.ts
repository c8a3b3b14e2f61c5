// Addresses on the buses behind the PCI devices, honoured and assigned as
// libvirt does: a disk's `<address type='drive'>` from its target name (hda is
// IDE bus 0 unit 0, sdb SATA port 1 or SCSI unit 1, ...), a virtio-serial port
// per channel (from 1: port 0 is the console's), a USB port per USB input. The
// controllers these imply are added to the definition when missing (SATA,
// virtio-serial), as libvirt adds them when it parses the XML.
import { ErrorType } from '../common/errors.js';
import type { DeviceAddress, DiskDef, DomainDef, TreeForm } from './domain-model.js';
import type { ControllerDef } from './devices-more-model.js';
import { isI440fx } from './pci-address.js';
import { locatedError, pathStep, xmlError } from '../xml/xml-errors.js';

const D = '/domain/devices';
/** QEMU's default max_ports of a virtio-serial controller. */
const VIRTIO_SERIAL_PORTS = 31;
const USB_PORTS: Record<string, number> = { 'piix3-uhci': 2, 'qemu-xhci': 4 };

export interface DriveAddress {
  controller: number;
  bus: number;
  target: number;
  unit: number;
}

/** libvirt's disk index of a target name: the letters after the prefix in base 26 (sda 0, sdz 25, sdaa 26). */
export function diskNameIndex(dev: string): number {
  const letters = /^(?:fd|hd|sd|vd|xvd|ubd)([a-z]+)$/.exec(dev)?.[1] ?? 'a';
  let idx = 0;
  for (let i = 0; i < letters.length; i++) idx = (idx + (i === 0 ? 0 : 1)) * 26 + (letters.charCodeAt(i) - 97);
  return idx;
}

export function diskBus(d: DiskDef<TreeForm> | DiskDef): string {
  return d.target.bus ?? (d.target.dev.startsWith('vd') ? 'virtio' : d.target.dev.startsWith('sd') ? 'scsi' : 'ide');
}

function defaultDrive(bus: string, idx: number): DriveAddress {
  if (bus === 'ide') return { controller: Math.floor(idx / 4), bus: Math.floor((idx % 4) / 2), target: 0, unit: idx % 2 };
  if (bus === 'sata') return { controller: Math.floor(idx / 6), bus: 0, target: 0, unit: idx % 6 };
  // SCSI, wide bus: 15 units per controller, unit 7 is the controller itself.
  const unit = idx % 15;
  return { controller: Math.floor(idx / 15), bus: 0, target: 0, unit: unit >= 7 ? unit + 1 : unit };
}

function num(a: DeviceAddress, name: string, path: string, max: number): number {
  const text = a[name];
  if (text === undefined) return 0;
  const n = /^[0-9]{1,6}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n > max) throw xmlError(`address ${name} '${text}' is not a number in 0..${max}`, { path: `${path}/address/@${name}` });
  return n;
}

/** A disk's drive address, checked against what its bus has. */
export function parseDriveAddress(a: DeviceAddress, bus: string, path: string): DriveAddress {
  if (a.type !== 'drive') throw xmlError(`a disk on bus '${bus}' needs an address of type 'drive', not '${a.type}'`, { path: `${path}/address/@type` });
  const limits = bus === 'ide' ? [0, 1, 0, 1] : bus === 'sata' ? [31, 0, 0, 5] : [31, 0, 255, 16383];
  const [c, b, t, u] = limits as [number, number, number, number];
  return { controller: num(a, 'controller', path, c), bus: num(a, 'bus', path, b), target: num(a, 'target', path, t), unit: num(a, 'unit', path, u) };
}

function driveAttrs(x: DriveAddress): DeviceAddress {
  return { type: 'drive', controller: String(x.controller), bus: String(x.bus), target: String(x.target), unit: String(x.unit) };
}

function controllersOf(def: DomainDef<TreeForm>): ControllerDef[] {
  return (def.devices.controllers ??= []);
}

function hasController(def: DomainDef<TreeForm>, type: string, index: number): ControllerDef | undefined {
  return def.devices.controllers?.find((c) => c.type === type && (c.index ?? 0) === index);
}

function assignDrives(def: DomainDef<TreeForm>): void {
  const disks = def.devices.disks;
  const used = new Map<string, string>();
  disks.forEach((d, i) => {
    const bus = diskBus(d);
    if (bus !== 'ide' && bus !== 'sata' && bus !== 'scsi') return;
    const path = `${D}/${pathStep('disk', i, disks.length)}`;
    const drive = d.address === undefined ? defaultDrive(bus, diskNameIndex(d.target.dev)) : parseDriveAddress(d.address, bus, path);
    if (bus === 'ide' && drive.controller !== 0) {
      throw locatedError(ErrorType.ConfigUnsupported, `disk ${d.target.dev}: only IDE controller 0 (the PIIX3's) is supported`, { path: `${path}/address` });
    }
    const key = `${bus}:${drive.controller}:${drive.bus}:${drive.target}:${drive.unit}`;
    const other = used.get(key);
    if (other !== undefined) throw xmlError(`disk ${d.target.dev}: drive address ${key} is already used by disk ${other}`, { path: `${path}/address` });
    used.set(key, d.target.dev);
    if (bus === 'sata' && hasController(def, 'sata', drive.controller) === undefined) controllersOf(def).push({ type: 'sata', index: drive.controller });
    if (bus === 'scsi' && hasController(def, 'scsi', drive.controller) === undefined) {
      throw locatedError(
        ErrorType.ConfigUnsupported,
        `disk ${d.target.dev} needs <controller type='scsi' index='${drive.controller}' model='virtio-scsi'>: libvirt's default SCSI controller (lsilogic) is not built`,
        { path },
      );
    }
    d.address ??= driveAttrs(drive);
  });
}

function assignChannels(def: DomainDef<TreeForm>): void {
  const channels = def.devices.channels ?? [];
  const virtio = channels.filter((c) => c.targetType === 'virtio');
  if (virtio.length > 0 && !def.devices.controllers?.some((c) => c.type === 'virtio-serial')) controllersOf(def).push({ type: 'virtio-serial', index: 0 });
  const used = new Set<string>();
  const wanting: typeof virtio = [];
  channels.forEach((ch, i) => {
    if (ch.targetType !== 'virtio') return;
    const path = `${D}/${pathStep('channel', i, channels.length)}`;
    const a = ch.address;
    if (a === undefined) return void wanting.push(ch);
    if (a.type !== 'virtio-serial')
      throw xmlError(`a virtio channel needs an address of type 'virtio-serial', not '${a.type}'`, { path: `${path}/address/@type` });
    const controller = num(a, 'controller', path, 31);
    const port = num(a, 'port', path, VIRTIO_SERIAL_PORTS - 1);
    if (num(a, 'bus', path, 0) !== 0 || hasController(def, 'virtio-serial', controller) === undefined) {
      throw xmlError(`channel: no virtio-serial controller ${controller} bus ${a.bus ?? 0}`, { path: `${path}/address` });
    }
    if (port === 0) throw xmlError('channel: virtio-serial port 0 is reserved for a console', { path: `${path}/address/@port` });
    const key = `${controller}:${port}`;
    if (used.has(key)) throw xmlError(`channel: virtio-serial port ${key} is already used`, { path: `${path}/address` });
    used.add(key);
  });
  const first = Math.min(...(def.devices.controllers ?? []).filter((c) => c.type === 'virtio-serial').map((c) => c.index ?? 0));
  for (const ch of wanting) {
    let port = 1;
    while (used.has(`${first}:${port}`)) port++;
    if (port >= VIRTIO_SERIAL_PORTS) throw locatedError(ErrorType.ConfigUnsupported, 'no free virtio-serial port left', { path: `${D}/channel` });
    used.add(`${first}:${port}`);
    ch.address = { type: 'virtio-serial', controller: String(first), bus: '0', port: String(port) };
  }
}

function assignUsbPorts(def: DomainDef<TreeForm>): void {
  const inputs = def.devices.inputs ?? [];
  for (const input of inputs) input.bus ??= input.type === 'tablet' ? 'usb' : 'ps2';
  const usbInputs = inputs.filter((x) => x.bus === 'usb');
  if (usbInputs.length === 0) return;
  const named = def.devices.usbControllers ?? [];
  const controller = named.length === 0 && isI440fx(def.os.machine) ? 'piix3-uhci' : named.find((u) => u.model !== 'none')?.model;
  if (controller === undefined) throw xmlError('USB is disabled for this domain (no USB controller), but it has USB input devices', { path: `${D}/input` });
  const ports = USB_PORTS[controller] ?? 2;
  const used = new Set<number>();
  inputs.forEach((x, i) => {
    if (x.bus !== 'usb' || x.address === undefined) return;
    const path = `${D}/${pathStep('input', i, inputs.length)}`;
    if (x.address.type !== 'usb') throw xmlError(`a USB input needs an address of type 'usb', not '${x.address.type}'`, { path: `${path}/address/@type` });
    const portText = x.address.port ?? '';
    if (portText.includes('.'))
      throw locatedError(ErrorType.ConfigUnsupported, `USB port '${portText}' is behind a hub; hubs are not supported`, { path: `${path}/address/@port` });
    const port = num(x.address, 'port', path, ports);
    if (num(x.address, 'bus', path, 0) !== 0 || port === 0)
      throw xmlError(`USB address bus ${x.address.bus ?? 0} port ${portText} does not exist`, { path: `${path}/address` });
    if (used.has(port)) throw xmlError(`USB port ${port} is already used`, { path: `${path}/address/@port` });
    used.add(port);
  });
  for (const x of usbInputs) {
    if (x.address !== undefined) continue;
    let port = 1;
    while (used.has(port)) port++;
    if (port > ports)
      throw locatedError(ErrorType.ConfigUnsupported, `no free port left on the ${controller} USB controller (${ports} ports, hubs not supported)`, {
        path: `${D}/input`,
      });
    used.add(port);
    x.address = { type: 'usb', bus: '0', port: String(port) };
  }
}

/** Fills in drive, virtio-serial and USB addresses (and the controllers they imply) in place. */
export function assignBusAddresses(def: DomainDef<TreeForm>): void {
  assignDrives(def);
  assignChannels(def);
  assignUsbPorts(def);
}

/** The drive address a disk on ide, sata or scsi sits at: its own, or libvirt's default for its target name. */
export function driveAddressOf(d: DiskDef, path = '/domain/devices/disk'): DriveAddress {
  const bus = diskBus(d);
  return d.address === undefined ? defaultDrive(bus, diskNameIndex(d.target.dev)) : parseDriveAddress(d.address, bus, path);
}
