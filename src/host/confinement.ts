// What confines one guest's QEMU beyond its command line: the uid and gid it runs
// as (the DAC driver's), the files labelled for that uid before QEMU starts (its
// disks, its RAM file, a private directory for its monitor socket), QEMU's seccomp
// sandbox, and its cgroup. Everything here is derived from the definition and the
// host's settings alone, so a restarted worker releases a guest it adopted exactly
// as the worker that started it would have.
import { chmodSync, closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ErrorType, vmError } from '../common/errors.js';
import type { DomainDef } from '../domain/index.js';
import type { ProcessIdentity, SecurityContext, SecurityDriver } from '../security/index.js';
import { placementFor, placeProcess, removeCgroup, resolveCgroupMode, wrapCommand, type CgroupConfig, type CgroupMode, type Placement } from './cgroups.js';

/** libvirt's qemu.conf `seccomp_sandbox = 1`: no obsolete syscalls, no set*id, no fork/exec, no scheduler or priority changes. */
export const SANDBOX_ARGS = ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny'];

export interface ConfinementConfig {
  runDir: string;
  memoryBackingDir: string;
  sandbox: boolean;
  cgroups: CgroupConfig;
}

export interface ConfinedLaunch {
  qmpSocket: string;
  identity?: ProcessIdentity;
  placement?: Placement;
  extraArgs: string[];
}

export class Confinement {
  readonly cgroupMode: CgroupMode;

  constructor(
    private readonly config: ConfinementConfig,
    private readonly security: SecurityDriver,
    private readonly log: Logger,
  ) {
    this.cgroupMode = resolveCgroupMode(config.cgroups);
    // A confined QEMU reaches its own entries by name; nobody else's can be listed.
    if (this.confinedUid()) for (const d of [config.runDir, config.memoryBackingDir]) chmodSync(d, 0o711);
  }

  private confinedUid(): boolean {
    return this.security.processIdentity?.({ domain: '', uuid: '00000000-0000-0000-0000-000000000000' }) !== undefined;
  }

  identity(def: { name: string; uuid: string }): ProcessIdentity | undefined {
    return this.security.processIdentity?.(ctxOf(def));
  }

  /** A confined QEMU binds its monitor in a directory of its own (the run directory is the worker's). */
  monitorDir(def: { name: string; uuid: string }): string {
    return join(this.config.runDir, `domain-${def.uuid.slice(0, 8)}-${def.name.slice(0, 20)}`);
  }

  qmpSocketFor(def: { name: string; uuid: string }): string {
    return this.identity(def) ? join(this.monitorDir(def), 'monitor.sock') : join(this.config.runDir, `${def.name}.qmp`);
  }

  /** Files QEMU opens itself at start, labelled for its uid. */
  private labelledPaths(def: DomainDef, memoryBackingFile: string | undefined): string[] {
    const disks = def.devices.disks.flatMap((d) => [d.source?.file, d.source?.dev]).filter((p): p is string => typeof p === 'string' && p !== '');
    return [...(this.identity(def) ? [this.monitorDir(def)] : []), ...disks, ...(memoryBackingFile ? [memoryBackingFile] : [])];
  }

  /** Refuses a second running guest whose uid (from the range) is the same as this one's: they could open each other's files. */
  checkUidFree(def: DomainDef, running: Iterable<{ name: string; uuid: string }>): void {
    const mine = this.identity(def);
    if (!mine) return;
    for (const other of running) {
      if (other.uuid === def.uuid) continue;
      if (this.identity(other)?.uid === mine.uid)
        throw vmError(
          ErrorType.OperationFailed,
          `domain '${def.name}' would run as uid ${mine.uid}, which domain '${other.name}' runs as; widen the uid range (VMFERRY_QEMU_UID_RANGE)`,
          { domain: def.name, other: other.name, uid: mine.uid },
        );
    }
  }

  /** Before spawn: the monitor directory and RAM file exist and everything QEMU opens carries its label. */
  async prepare(
    def: DomainDef,
    memoryBackingFile: string | undefined,
    binary: string,
    args: string[],
  ): Promise<ConfinedLaunch & { binary: string; args: string[] }> {
    const identity = this.identity(def);
    const ctx = ctxOf(def);
    if (identity) {
      mkdirSync(this.monitorDir(def), { recursive: true, mode: 0o700 });
    }
    // QEMU would create the file itself, in a directory it may not write, and unlabelled.
    if (memoryBackingFile && this.security.name !== 'none') closeSync(openSync(memoryBackingFile, 'a', 0o600));
    const done: string[] = [];
    try {
      for (const p of this.labelledPaths(def, memoryBackingFile)) {
        await this.security.labelPath(p, ctx);
        done.push(p);
      }
    } catch (err) {
      for (const p of done.reverse()) await this.security.restorePath(p, ctx).catch(() => undefined);
      if (identity) rmSync(this.monitorDir(def), { recursive: true, force: true });
      throw err;
    }
    const placement = placementFor(this.config.cgroups, this.cgroupMode, def.name, def.uuid);
    const extraArgs = this.config.sandbox ? SANDBOX_ARGS : [];
    const wrapped = wrapCommand(placement, binary, [...args, ...extraArgs], identity);
    return {
      qmpSocket: this.qmpSocketFor(def),
      identity: wrapped.identityInWrapper ? undefined : identity,
      ...(placement ? { placement } : {}),
      extraArgs,
      binary: wrapped.binary,
      args: wrapped.args,
    };
  }

  /** Right after spawn, before QEMU is told to run the guest (it waits under -S). */
  placeSpawned(placement: Placement | undefined, pid: number, domain: string): void {
    if (!placement) return;
    const controllers = placeProcess(placement, pid);
    if (placement.kind === 'cgroupfs') this.log.info({ domain, pid, cgroup: placement.path, controllers }, 'QEMU placed in its cgroup');
  }

  /** After QEMU is gone (or never started): labels back, the monitor directory and the cgroup removed. */
  async release(def: DomainDef, memoryBackingFile: string | undefined): Promise<void> {
    const ctx = ctxOf(def);
    for (const p of this.labelledPaths(def, memoryBackingFile).reverse()) {
      await this.security.restorePath(p, ctx).catch((err: unknown) => this.log.warn({ domain: def.name, path: p, err }, 'restoring a label failed'));
    }
    if (this.identity(def)) rmSync(this.monitorDir(def), { recursive: true, force: true });
    await removeCgroup(placementFor(this.config.cgroups, this.cgroupMode, def.name, def.uuid)).catch((err: unknown) =>
      this.log.warn({ domain: def.name, err }, 'removing the cgroup failed'),
    );
  }
}

function ctxOf(def: { name: string; uuid: string }): SecurityContext {
  return { domain: def.name, uuid: def.uuid };
}
