// Domain definition -> QEMU argument vector. Always -nodefaults and -S: the worker
// finishes configuration over QMP (passwords never go on a command line, where
// /proc/<pid>/cmdline would show them) and then starts the CPUs itself.
import { accessSync, constants } from 'node:fs';
import { ErrorType, vmError } from '../common/errors.js';
import { checkBuilt } from '../domain/built-check.js';
import type { DomainDef } from '../domain/domain-model.js';
import type { AccelProbe } from './probe.js';
import { balloonArgs } from './devices/balloon.js';
import { cpuArgs, numaArgs, smpArgs } from './devices/cpu.js';
import { channelArgs } from './devices/channel.js';
import { controllerArgs } from './devices/controllers.js';
import { diskArgs } from './devices/disk.js';
import { graphicsArgs } from './devices/graphics.js';
import { inputArgs } from './devices/input.js';
import { panicArgs } from './devices/panic.js';
import { interfaceArgs } from './devices/interface.js';
import { q } from './devices/quote.js';
import { serialArgs } from './devices/serial.js';
import { rngArgs } from './devices/rng.js';
import { usbControllerArgs } from './devices/usb-controller.js';
import { videoArgs } from './devices/video.js';
import { watchdogArgs } from './devices/watchdog.js';
import { lifecycleActionArgs } from './lifecycle-args.js';

export interface CommandLinePaths {
  qmpSocket: string;
  /** Guest RAM file, for domains with a file memory backing. */
  memoryBackingFile?: string;
  /** Extra devices/options the caller adds (e.g. -incoming defer). */
  extra?: string[];
  /** Host tap of each interface (by index) for ethernet and bridge types, ready before QEMU starts. */
  taps?: (string | undefined)[];
  /** The host's probe for the domain's accelerator: settles optional CPU features. */
  cpuFacts?: AccelProbe;
}

/** The machine a definition without one runs (an alias: the QEMU at hand picks its version). */
export const DEFAULT_MACHINE = 'pc';

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

export function buildQemuArgs(def: DomainDef, paths: CommandLinePaths & { spicePorts?: number[] }): string[] {
  // Whatever a caller checked before: nothing reaches QEMU that is not built.
  checkBuilt(def);
  const accel = accelFor(def);
  const machine = [
    def.os.machine ?? DEFAULT_MACHINE,
    `accel=${accel}`,
    'usb=off',
    'dump-guest-core=off',
    `acpi=${def.features.includes('acpi') ? 'on' : 'off'}`,
  ];
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
  args.push('-machine', machine.join(','), '-m', `size=${def.memoryKiB}k`, ...smpArgs(def));
  args.push(...cpuArgs(def, accel === 'kvm' ? 'kvm' : 'tcg', paths.cpuFacts), ...numaArgs(def));
  if (def.clock?.offset === 'localtime') args.push('-rtc', 'base=localtime');
  else args.push('-rtc', 'base=utc');
  args.push(...lifecycleActionArgs(def));
  if (def.os.kernel) args.push('-kernel', def.os.kernel);
  if (def.os.initrd) args.push('-initrd', def.os.initrd);
  if (def.os.cmdline !== undefined) args.push('-append', def.os.cmdline);
  const order = def.os.boot.map((b) => BOOT_LETTERS[b]).join('');
  if (order) args.push('-boot', `order=${order}`);
  // Before the devices QEMU places itself, so none of them can take the controller's slot.
  args.push(...usbControllerArgs(def), ...videoArgs(def), ...controllerArgs(def));
  for (const d of def.devices.disks) args.push(...diskArgs(def, d));
  args.push(...interfaceArgs(def, paths.taps));
  let spiceIndex = 0;
  for (const g of def.devices.graphics) {
    args.push(...graphicsArgs(g, g.type === 'spice' ? paths.spicePorts?.[spiceIndex++] : undefined));
  }
  args.push(...serialArgs(def), ...channelArgs(def), ...inputArgs(def), ...balloonArgs(def), ...rngArgs(def), ...watchdogArgs(def), ...panicArgs(def));
  args.push(...(paths.extra ?? []));
  return args;
}
