// Each guest's QEMU in a control group of its own, as libvirt's machine scopes:
// memory and CPU accounted per guest, and nothing of the worker's. Where systemd
// is PID 1 QEMU is started inside a transient scope (systemd-run --scope execs
// QEMU in the scope it registers); elsewhere the worker makes the cgroup v2
// directory itself and moves QEMU's pid in right after spawn, while QEMU still
// waits under -S with no guest code run. Either outlives the worker: a restart
// neither creates nor removes them; the scope or directory goes when QEMU exits.
import { existsSync, mkdirSync, readFileSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import type { ProcessIdentity } from '../security/index.js';

export type CgroupMode = 'off' | 'auto' | 'systemd' | 'cgroupfs';

export interface CgroupConfig {
  mode: CgroupMode;
  /** Where cgroups of guests go, relative to the cgroup v2 root ("vmferry.slice"); the systemd slice's name there. */
  parent: string;
  /** The cgroup v2 mount; default /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host. */
  root?: string;
}

/** Accounting the cgroup gets where the hierarchy offers it. */
export const WANTED_CONTROLLERS = ['memory', 'cpu'] as const;

const CGROUP2_MAGIC = 0x63677270;

export function isCgroup2(path: string): boolean {
  try {
    return statfsSync(path).type === CGROUP2_MAGIC;
  } catch {
    return false;
  }
}

/** The cgroup v2 mount: the unified root, or a hybrid host's /sys/fs/cgroup/unified. */
export function cgroup2Root(configured?: string): string | undefined {
  for (const p of configured ? [configured] : ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) if (isCgroup2(p)) return p;
  return undefined;
}

/** systemd runs as PID 1 and its manager answers (its private socket exists). */
export function systemdRunning(): boolean {
  try {
    return readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd' && existsSync('/run/systemd/private');
  } catch {
    return false;
  }
}

/** A unit or directory name for the guest: systemd's escaping is avoided by keeping to [A-Za-z0-9_.-]. */
export function scopeName(domain: string, uuid: string): string {
  const safe = domain.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
  return `machine-vmferry-${safe}-${uuid.replace(/-/g, '').slice(0, 8)}.scope`;
}

export type Placement = { kind: 'systemd'; unit: string; slice: string } | { kind: 'cgroupfs'; root: string; path: string };

/** What `mode` means on this host, decided once at worker start. */
export function resolveCgroupMode(config: CgroupConfig): CgroupMode {
  if (config.mode !== 'auto') return config.mode;
  if (systemdRunning()) return 'systemd';
  if (cgroup2Root(config.root)) return 'cgroupfs';
  throw vmError(ErrorType.ConfigUnsupported, 'cgroups: neither systemd (PID 1) nor a cgroup v2 hierarchy is available on this host; set VMFERRY_CGROUPS=off');
}

export function placementFor(config: CgroupConfig, mode: CgroupMode, domain: string, uuid: string): Placement | undefined {
  const unit = scopeName(domain, uuid);
  if (mode === 'systemd') return { kind: 'systemd', unit, slice: config.parent };
  if (mode === 'cgroupfs') {
    const root = cgroup2Root(config.root);
    if (!root) throw vmError(ErrorType.ConfigUnsupported, `cgroups: ${config.root ?? '/sys/fs/cgroup'} is not a cgroup v2 hierarchy`);
    return { kind: 'cgroupfs', root, path: join(config.parent, unit) };
  }
  return undefined;
}

/**
 * The command that starts QEMU: under systemd, systemd-run registers a scope
 * for itself and execs QEMU in it (same pid), dropping to QEMU's uid itself,
 * since an unprivileged caller could not create a system scope.
 */
export function wrapCommand(
  placement: Placement | undefined,
  binary: string,
  args: string[],
  identity: ProcessIdentity | undefined,
  systemdRun = 'systemd-run',
): { binary: string; args: string[]; identityInWrapper: boolean } {
  if (placement?.kind !== 'systemd') return { binary, args, identityInWrapper: false };
  const props = WANTED_CONTROLLERS.map((c) => `--property=${c === 'memory' ? 'MemoryAccounting' : 'CPUAccounting'}=yes`);
  const who = identity ? [`--uid=${identity.uid}`, `--gid=${identity.gid}`] : [];
  return {
    binary: systemdRun,
    args: ['--scope', '--quiet', '--collect', `--unit=${placement.unit}`, `--slice=${placement.slice}`, ...props, ...who, '--', binary, ...args],
    identityInWrapper: true,
  };
}

function writeControl(file: string, value: string): void {
  writeFileSync(file, value);
}

/** Turns on the wanted controllers from the root down to `dir`'s parent, as far as each level offers them. */
function enableControllers(root: string, rel: string): string[] {
  const parts = rel.split('/').filter(Boolean);
  let dir = root;
  let offered = readFileSync(join(root, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  const enabled: string[] = WANTED_CONTROLLERS.filter((c) => offered.includes(c));
  for (let i = 0; i < parts.length; i++) {
    if (enabled.length > 0) {
      try {
        writeControl(join(dir, 'cgroup.subtree_control'), enabled.map((c) => `+${c}`).join(' '));
      } catch (err) {
        throw vmError(ErrorType.OperationFailed, `cgroups: cannot enable ${enabled.join(', ')} in ${dir}: ${(err as Error).message}`);
      }
    }
    dir = join(dir, parts[i]!);
    mkdirSync(dir, { recursive: true });
    offered = readFileSync(join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  }
  return enabled.filter((c) => offered.includes(c));
}

/** cgroupfs: makes the guest's cgroup and moves QEMU (all its threads) into it. Returns the controllers it has. */
export function placeProcess(placement: Placement, pid: number): string[] {
  if (placement.kind !== 'cgroupfs') return [];
  const controllers = enableControllers(placement.root, placement.path);
  const dir = join(placement.root, placement.path);
  try {
    writeControl(join(dir, 'cgroup.procs'), String(pid));
  } catch (err) {
    throw vmError(ErrorType.OperationFailed, `cgroups: cannot move QEMU (pid ${pid}) into ${dir}: ${(err as Error).message}`, { pid, cgroup: dir });
  }
  return controllers;
}

/** The v2 cgroup a process is in ("/vmferry.slice/machine-…scope"), from /proc; undefined once it is gone. */
export function cgroupOf(pid: number): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

/**
 * cgroupfs: removes the guest's cgroup once QEMU has left it (systemd collects
 * its scopes itself). The kernel may still be tearing the last task down for a
 * moment after the pid is reaped, so EBUSY is retried briefly.
 */
export async function removeCgroup(placement: Placement | undefined): Promise<void> {
  if (placement?.kind !== 'cgroupfs') return;
  const dir = join(placement.root, placement.path);
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
