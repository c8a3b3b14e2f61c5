// Semantic checks on a DomainDef, run after parsing (with line numbers) and
// again before formatting (a definition edited in code gets the same scrutiny).
// Value checks first, then what libvirt rejects across elements: duplicate disk
// targets, two graphics of one type, and the device cross-checks.
import { checkAcrossDevices } from './devices-crosscheck.js';
import { checkCpu } from './cpu-xml.js';
import { checkMoreDevices } from './devices-more-validate.js';
import { isUsbController } from './devices-parse.js';
import { checkCharDev, checkDisk, checkGraphics, checkUsbController } from './devices-validate.js';
import { checkInterfaces } from './interface-validate.js';
import {
  BOOT_DEVICES,
  CLOCK_OFFSETS,
  CRASH_ACTIONS,
  DOMAIN_TYPES,
  LIBVIRT_DOMAIN_TYPES,
  LIBVIRT_OS_TYPES,
  LIFECYCLE_ACTIONS,
  MEMBALLOON_MODELS,
  MEMORY_ACCESS_MODES,
  MEMORY_SOURCE_TYPES,
  OS_TYPES,
  VCPU_PLACEMENTS,
  type CharDevDef,
  type DiskDef,
  type DomainDef,
  type GraphicsDef,
  type TreeForm,
  type UsbControllerDef,
} from './domain-model.js';
import { checkLifecycleActions } from './lifecycle-validate.js';
import { MAX_MEMORY_KIB } from './memory-units.js';
import { expandDomainDef } from './preserved.js';
import { normalizeUuid } from './uuid.js';
import { Checker, CONTROL_CHAR } from './validate-checker.js';
import { childElements } from '../xml/xml-edit.js';
import { pathStep, type XmlLocator } from '../xml/xml-errors.js';
import { isForbiddenXmlName } from '../xml/xml-safety.js';
import type { XmlElement } from '../xml/xml-tree.js';

export const MAX_VCPUS = 4096;
export const MAX_NAME_BYTES = 255;
const ARCH = /^[A-Za-z0-9_]{1,32}$/;
const MACHINE = /^[A-Za-z0-9._+-]{1,64}$/;
const FEATURE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

export function validateDomainDef(def: DomainDef): void {
  validateTreeDef(expandDomainDef(def));
}

export function validateTreeDef(def: DomainDef<TreeForm>, locate?: XmlLocator): void {
  const c = new Checker(locate);
  c.object(def, '/domain', 'domain definition');
  const P = '/domain';
  c.supported(DOMAIN_TYPES, LIBVIRT_DOMAIN_TYPES, def.type, `${P}/@type`, 'domain type', true);
  c.optInt(def.id, -1, 2 ** 31 - 1, `${P}/@id`, 'domain id');
  checkName(c, def.name);
  if (normalizeUuid(c.str(def.uuid, `${P}/uuid`, 'UUID')) === undefined) c.fail(`invalid UUID '${def.uuid}'`, `${P}/uuid`);
  if (def.title !== undefined && c.str(def.title, `${P}/title`, 'title').includes('\n')) c.fail('title must not contain newlines', `${P}/title`);
  c.optStr(def.description, `${P}/description`, 'description');

  c.int(def.memoryKiB, 1, MAX_MEMORY_KIB, `${P}/memory`, 'memory (KiB)');
  c.int(def.currentMemoryKiB, 1, MAX_MEMORY_KIB, `${P}/currentMemory`, 'currentMemory (KiB)');
  if (def.currentMemoryKiB > def.memoryKiB) {
    c.fail(`currentMemory (${def.currentMemoryKiB} KiB) exceeds memory (${def.memoryKiB} KiB)`, `${P}/currentMemory`);
  }
  c.int(def.vcpus, 1, MAX_VCPUS, `${P}/vcpu`, 'vcpu count');
  c.oneOf(VCPU_PLACEMENTS, def.vcpuPlacement, `${P}/vcpu/@placement`, 'vcpu placement');
  c.optInt(def.vcpusCurrent, 1, def.vcpus, `${P}/vcpu/@current`, 'current vcpu count');

  c.object(def.os, `${P}/os`, 'os');
  c.supported(OS_TYPES, LIBVIRT_OS_TYPES, def.os.type, `${P}/os/type`, 'os type', true);
  c.pattern(def.os.arch, ARCH, `${P}/os/type/@arch`, 'architecture');
  c.pattern(def.os.machine, MACHINE, `${P}/os/type/@machine`, 'machine type');
  const boot = c.list<unknown>(def.os.boot, `${P}/os/boot`, 'boot devices');
  boot.forEach((b, i) => c.oneOf(BOOT_DEVICES, b, `${P}/os/${pathStep('boot', i, boot.length)}/@dev`, 'boot device', true));
  c.absPath(def.os.kernel, `${P}/os/kernel`, 'kernel');
  c.absPath(def.os.initrd, `${P}/os/initrd`, 'initrd');
  c.optStr(def.os.cmdline, `${P}/os/cmdline`, 'kernel command line');

  if (def.cpu !== undefined) {
    checkCpu(c, def.cpu, def.vcpus, `${P}/cpu`);
    const cells = def.cpu.numaCells;
    const total = cells?.reduce((sum, cell) => sum + cell.memoryKiB, 0);
    if (total !== undefined && total !== def.memoryKiB) c.fail(`memory (${def.memoryKiB} KiB) is not the sum of the NUMA cells (${total} KiB)`, `${P}/memory`);
  }
  const features = c.list<unknown>(def.features, `${P}/features`, 'features');
  const seenFeatures = new Set<string>();
  for (const f of features) {
    c.pattern(f, FEATURE, `${P}/features`, 'feature name');
    const name = f as string;
    if (isForbiddenXmlName(name)) c.fail(`feature name '${name}' is not allowed`, `${P}/features/${name}`);
    if (seenFeatures.has(name)) c.fail(`feature '${name}' is listed twice`, `${P}/features/${name}`);
    seenFeatures.add(name);
  }
  if (def.clock !== undefined) c.oneOf(CLOCK_OFFSETS, def.clock.offset, `${P}/clock/@offset`, 'clock offset');
  c.oneOf(LIFECYCLE_ACTIONS, def.onPoweroff, `${P}/on_poweroff`, 'on_poweroff action');
  c.oneOf(LIFECYCLE_ACTIONS, def.onReboot, `${P}/on_reboot`, 'on_reboot action');
  c.oneOf(CRASH_ACTIONS, def.onCrash, `${P}/on_crash`, 'on_crash action');
  checkLifecycleActions(c, def, P);
  if (def.memoryBacking !== undefined) {
    c.oneOf(MEMORY_SOURCE_TYPES, def.memoryBacking.sourceType, `${P}/memoryBacking/source/@type`, 'memory source type');
    c.oneOf(MEMORY_ACCESS_MODES, def.memoryBacking.accessMode, `${P}/memoryBacking/access/@mode`, 'memory access mode');
  }

  const D = `${P}/devices`;
  c.object(def.devices, D, 'devices');
  c.absPath(def.devices.emulator, `${D}/emulator`, 'emulator');
  const disks = c.list<DiskDef<TreeForm>>(def.devices.disks, D, 'disks');
  const graphics = c.list<GraphicsDef<TreeForm>>(def.devices.graphics, D, 'graphics');
  const serials = c.list<CharDevDef<TreeForm>>(def.devices.serials, D, 'serials');
  const consoles = c.list<CharDevDef<TreeForm>>(def.devices.consoles, D, 'consoles');
  const targets = new Map<string, string>();
  disks.forEach((d, i) => {
    const p = `${D}/${pathStep('disk', i, disks.length)}`;
    checkDisk(c, d, p);
    const other = targets.get(d.target.dev);
    if (other !== undefined) c.fail(`disk target '${d.target.dev}' is already used by ${other}`, `${p}/target/@dev`);
    targets.set(d.target.dev, p);
  });
  const graphicsTypes = new Map<string, string>();
  graphics.forEach((g, i) => {
    const p = `${D}/${pathStep('graphics', i, graphics.length)}`;
    checkGraphics(c, g, p);
    const other = graphicsTypes.get(g.type);
    if (other !== undefined) c.unsupported(`only one <graphics type='${g.type}'> is supported (first at ${other})`, `${p}/@type`);
    graphicsTypes.set(g.type, p);
  });
  serials.forEach((s, i) => checkCharDev(c, s, `${D}/${pathStep('serial', i, serials.length)}`));
  consoles.forEach((s, i) => checkCharDev(c, s, `${D}/${pathStep('console', i, consoles.length)}`));
  if (def.devices.usbControllers !== undefined) {
    const usb = c.list<UsbControllerDef>(def.devices.usbControllers, D, 'USB controllers');
    const paths = usbControllerPaths(def, usb.length);
    usb.forEach((u, i) => checkUsbController(c, u, paths[i] ?? `${D}/controller`));
  }
  checkInterfaces(c, def.devices.interfaces, D);
  if (def.devices.memballoon !== undefined) {
    c.oneOf(MEMBALLOON_MODELS, def.devices.memballoon.model, `${D}/memballoon/@model`, 'memballoon model', true);
  }
  checkMoreDevices(c, def);
  checkAcrossDevices(c, def);
}

/** Where each USB controller sits among the document's controllers, for error paths. */
function usbControllerPaths(def: DomainDef<TreeForm>, count: number): string[] {
  const root = def.preserved?.find((n): n is XmlElement => n.kind === 'element');
  const devices = root === undefined ? undefined : childElements(root, 'devices')[0];
  const controllers = devices === undefined ? [] : childElements(devices, 'controller');
  const total = controllers.length + Math.max(0, count - controllers.filter(isUsbController).length);
  const paths: string[] = [];
  controllers.forEach((el, i) => {
    if (isUsbController(el)) paths.push(`/domain/devices/${pathStep('controller', i, total)}`);
  });
  for (let i = controllers.length; paths.length < count; i++) paths.push(`/domain/devices/${pathStep('controller', i, total)}`);
  return paths;
}

function checkName(c: Checker, name: unknown): void {
  const p = '/domain/name';
  const s = c.str(name, p, 'domain name');
  if (s === '') c.fail('domain name is empty', p);
  if (s.includes('/')) c.fail(`domain name '${s}' must not contain '/'`, p);
  if (CONTROL_CHAR.test(s)) c.fail('domain name must not contain control characters', p);
  if (s === '.' || s === '..') c.fail(`domain name '${s}' is not allowed`, p);
  if (Buffer.byteLength(s, 'utf8') > MAX_NAME_BYTES) c.fail(`domain name is longer than ${MAX_NAME_BYTES} bytes`, p);
}
