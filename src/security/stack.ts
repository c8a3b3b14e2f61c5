// Several drivers on one host (DAC and SELinux, as libvirt's stack does): labels
// go on in order and come off in reverse, and a restore tries every member.
import type { ProcessIdentity, SecurityContext, SecurityDriver } from './driver.js';
import { ErrorType, vmError } from '../common/errors.js';
import { errnoMessage, restoreFailed, restoreFailuresOf, type RestoreFailure } from './errors.js';

export class StackDriver implements SecurityDriver {
  readonly name = 'stack';

  constructor(readonly members: readonly SecurityDriver[]) {}

  labelPath(path: string, ctx: SecurityContext): Promise<void> {
    return this.label(
      path,
      (d) => d.labelPath(path, ctx),
      (d) => d.restorePath(path, ctx),
    );
  }

  restorePath(path: string, ctx: SecurityContext): Promise<void> {
    return this.restore(path, (d) => d.restorePath(path, ctx));
  }

  labelFd(fd: number, ctx: SecurityContext): Promise<void> {
    return this.label(
      `fd ${fd}`,
      (d) => d.labelFd(fd, ctx),
      (d) => d.restoreFd(fd, ctx),
    );
  }

  restoreFd(fd: number, ctx: SecurityContext): Promise<void> {
    return this.restore(`fd ${fd}`, (d) => d.restoreFd(fd, ctx));
  }

  /** In order; nothing to roll back, as nothing is remembered. */
  async labelHandedFd(fd: number, ctx: SecurityContext): Promise<void> {
    for (const d of this.members) await d.labelHandedFd(fd, ctx);
  }

  /** The first member that runs QEMU as someone (DAC). */
  processIdentity(ctx: SecurityContext): ProcessIdentity | undefined {
    for (const d of this.members) {
      const id = d.processIdentity?.(ctx);
      if (id) return id;
    }
    return undefined;
  }

  /** A member that fails leaves the target as it found it: the members before it are rolled back. */
  private async label(target: string, label: (d: SecurityDriver) => Promise<void>, undo: (d: SecurityDriver) => Promise<void>): Promise<void> {
    const done: SecurityDriver[] = [];
    for (const d of this.members) {
      try {
        await label(d);
        done.push(d);
      } catch (err) {
        const rollback = await this.tryAll(target, done.reverse(), undo);
        if (rollback.length === 0) throw err;
        const details = ((err as { details?: unknown[] }).details?.[0] ?? { driver: d.name, target, step: 'label' }) as Record<string, unknown>;
        throw vmError(ErrorType.OperationFailed, `${errnoMessage(err)} (and rolling back ${rollback.map((f) => f.driver).join(', ')} failed)`, {
          ...details,
          restoreFailures: rollback,
        });
      }
    }
  }

  private async restore(target: string, restore: (d: SecurityDriver) => Promise<void>): Promise<void> {
    const failures = await this.tryAll(target, [...this.members].reverse(), restore);
    if (failures.length) throw restoreFailed(failures);
  }

  private async tryAll(target: string, drivers: SecurityDriver[], fn: (d: SecurityDriver) => Promise<void>): Promise<RestoreFailure[]> {
    const failures: RestoreFailure[] = [];
    for (const d of drivers) {
      try {
        await fn(d);
      } catch (err) {
        const inner = restoreFailuresOf(err);
        failures.push(...(inner.length ? inner : [{ driver: d.name, target, message: errnoMessage(err) }]));
      }
    }
    return failures;
  }
}
