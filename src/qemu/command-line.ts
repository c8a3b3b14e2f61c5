// Domain definition -> QEMU argument vector. Always -nodefaults and -S: the worker
// finishes configuration over QMP (passwords never go on a command line, where
// /proc/<pid>/cmdline would show them) and then starts the CPUs itself.
import { accessSync, constants } from 'node:fs';
import { ErrorType, vmError } from '../common/errors.js';
import type { DiskDef, DomainDef, GraphicsDef } from '../domain/domain-model.js';
import { usbControllerArgs } from './usb-controller.js';

export interface CommandLinePaths {
  qmpSocket: string;
  /** Guest RAM file, for domains with a file memory backing. */
  memoryBackingFile?: string;
  /** Extra devices/options the caller adds (e.g. -incoming defer). */
  extra?: string[];
}

/** QEMU's option parser treats ',' as a separator; a literal comma is written twice. */
function q(value: string): string {
  return value.replace(/,/g, ',,');
}

const BOOT_LETTERS: Record<string, string> = { hd: 'c', cdrom: 'd', network: 'n', fd: 'a' };

function accelFor(def: DomainDef): string {
  if (def.type === 'qemu') return 'tcg';
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    throw vmError(ErrorType.ConfigUnsupported, `domain '${def.name}' is type='kvm' but /dev/kvm is not usable on this host; use type='qemu' for emulation`);
  }
  return 'kvm';
}

function cpuArgs(def: DomainDef, accel: string): string[] {
  const cpu = def.cpu;
  if (!cpu?.mode && !cpu?.model) return [];
  if (cpu.mode === 'host-passthrough' || cpu.mode === 'host-model') return ['-cpu', accel === 'kvm' ? 'host' : 'max'];
  if (cpu.mode === 'maximum') return ['-cpu', 'max'];
  return cpu.model ? ['-cpu', q(cpu.model)] : [];
}

function diskArgs(disk: DiskDef, index: number, state: { ahci: boolean }): string[] {
  const dev = disk.target.dev;
  if (disk.type !== 'file') throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: only type='file' disks are supported`);
  const drive = [`if=none`, `id=drive-${dev}`];
  if (disk.source?.file) drive.unshift(`file=${q(disk.source.file)}`);
  if (disk.driver?.type) drive.push(`format=${disk.driver.type}`);
  if (disk.driver?.cache && disk.driver.cache !== 'default') drive.push(`cache=${disk.driver.cache}`);
  if (disk.readonly || disk.device === 'cdrom') drive.push('readonly=on');
  const bus = disk.target.bus ?? (dev.startsWith('vd') ? 'virtio' : 'ide');
  const args = ['-drive', drive.join(',')];
  const id = `ua-${dev}`;
  switch (bus) {
    case 'virtio':
      if (disk.device === 'cdrom') throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: a cdrom cannot sit on a virtio bus`);
      return [...args, '-device', `virtio-blk-pci,drive=drive-${dev},id=${id}`];
    case 'ide':
      return [...args, '-device', `${disk.device === 'cdrom' ? 'ide-cd' : 'ide-hd'},drive=drive-${dev},id=${id}`];
    case 'sata': {
      const pre = state.ahci ? [] : ['-device', 'ahci,id=sata0'];
      state.ahci = true;
      return [...pre, ...args, '-device', `${disk.device === 'cdrom' ? 'ide-cd' : 'ide-hd'},drive=drive-${dev},id=${id},bus=sata0.${index}`];
    }
    default:
      throw vmError(ErrorType.ConfigUnsupported, `disk ${dev}: bus '${bus}' is not supported`);
  }
}

function listenAddress(g: GraphicsDef): string {
  return g.listens.find((l) => l.type === 'address')?.address ?? g.listen ?? '127.0.0.1';
}

function graphicsArgs(g: GraphicsDef, spicePort: number | undefined): string[] {
  const addr = listenAddress(g);
  const host = addr.includes(':') ? `[${addr}]` : addr;
  if (g.type === 'vnc') {
    const auto = g.autoport || g.port === undefined || g.port < 0;
    // to=99 lets QEMU pick the first free display itself: no race with another guest.
    const display = auto ? `${host}:0,to=99` : `${host}:${(g.port ?? 5900) - 5900}`;
    return ['-vnc', `${display}${g.passwd !== undefined ? ',password=on' : ''}`];
  }
  if (g.type === 'spice') {
    const opts = [`port=${spicePort ?? g.port}`, `addr=${addr}`];
    if (g.passwd === undefined) opts.push('disable-ticketing=on');
    return ['-spice', opts.join(',')];
  }
  throw vmError(ErrorType.ConfigUnsupported, `graphics type '${g.type}' is not supported`);
}

export function buildQemuArgs(def: DomainDef, paths: CommandLinePaths & { spicePorts?: number[] }): string[] {
  const accel = accelFor(def);
  const machine = [def.os.machine ?? 'pc', `accel=${accel}`, 'usb=off', 'dump-guest-core=off', `acpi=${def.features.includes('acpi') ? 'on' : 'off'}`];
  const args: string[] = [
    '-name',
    `guest=${q(def.name)},debug-threads=on`,
    '-uuid',
    def.uuid,
    '-nodefaults',
    '-no-user-config',
    '-S',
    '-msg',
    'timestamp=on',
    '-display',
    'none',
    '-chardev',
    `socket,id=charmonitor,path=${q(paths.qmpSocket)},server=on,wait=off`,
    '-mon',
    'chardev=charmonitor,id=monitor,mode=control',
  ];
  if (def.memoryBacking?.sourceType === 'file') {
    if (!paths.memoryBackingFile) throw vmError(ErrorType.InternalError, 'file memory backing needs a path');
    const share = def.memoryBacking.accessMode === 'shared' ? 'on' : 'off';
    args.push('-object', `memory-backend-file,id=pc.ram,mem-path=${q(paths.memoryBackingFile)},size=${def.memoryKiB}K,share=${share}`);
    machine.push('memory-backend=pc.ram');
  }
  args.push('-machine', machine.join(','), '-m', `size=${def.memoryKiB}k`, '-smp', String(def.vcpusCurrent ?? def.vcpus));
  args.push(...cpuArgs(def, accel));
  if (def.clock?.offset === 'localtime') args.push('-rtc', 'base=localtime');
  else args.push('-rtc', 'base=utc');
  if (def.onReboot === 'destroy') args.push('-no-reboot');
  if (def.onPoweroff === 'preserve') args.push('-no-shutdown');
  if (def.os.kernel) args.push('-kernel', def.os.kernel);
  if (def.os.initrd) args.push('-initrd', def.os.initrd);
  if (def.os.cmdline !== undefined) args.push('-append', def.os.cmdline);
  const order = def.os.boot.map((b) => BOOT_LETTERS[b]).join('');
  if (order) args.push('-boot', `order=${order}`);
  // Before the devices QEMU places itself, so none of them can take the controller's slot.
  args.push(...usbControllerArgs(def));
  const diskState = { ahci: false };
  def.devices.disks.forEach((d, i) => args.push(...diskArgs(d, i, diskState)));
  let spiceIndex = 0;
  for (const g of def.devices.graphics) {
    args.push(...graphicsArgs(g, g.type === 'spice' ? paths.spicePorts?.[spiceIndex++] : undefined));
  }
  def.devices.serials.forEach((s, i) => {
    if (s.type !== 'pty') throw vmError(ErrorType.ConfigUnsupported, `serial ${i}: only type='pty' is supported`);
    args.push('-chardev', `pty,id=charserial${i}`, '-device', `isa-serial,chardev=charserial${i},id=serial${i}`);
  });
  for (const c of def.devices.consoles) {
    // A serial-type console is the first serial port seen from the other side: libvirt formats both.
    if (c.targetType !== undefined && c.targetType !== 'serial')
      throw vmError(ErrorType.ConfigUnsupported, `console target '${c.targetType}' is not supported`);
  }
  const balloon = def.devices.memballoon?.model;
  if (balloon && balloon !== 'none') {
    if (!balloon.startsWith('virtio')) throw vmError(ErrorType.ConfigUnsupported, `memballoon model '${balloon}' is not supported`);
    args.push('-device', 'virtio-balloon-pci,id=balloon0');
  }
  args.push(...(paths.extra ?? []));
  return args;
}
