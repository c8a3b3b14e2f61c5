// One mutating operation per domain at a time on a host. Cluster-wide job
// exclusivity is Temporal's (one workflow ID per domain); this guards the host
// against two activities racing on the same QEMU, e.g. a retried start.
import { ErrorType, vmError } from '../../common/errors.js';

export class DomainLocks {
  private readonly holders = new Map<string, string>();

  async with<T>(name: string, job: string, fn: () => Promise<T>): Promise<T> {
    const holder = this.holders.get(name);
    if (holder !== undefined) {
      throw vmError(ErrorType.DomainBusy, `domain '${name}' is busy with job ${holder}`, { domain: name, job: holder });
    }
    this.holders.set(name, job);
    try {
      return await fn();
    } finally {
      this.holders.delete(name);
    }
  }

  withSync<T>(name: string, fn: () => T): T {
    const holder = this.holders.get(name);
    if (holder !== undefined) {
      throw vmError(ErrorType.DomainBusy, `domain '${name}' is busy with job ${holder}`, { domain: name, job: holder });
    }
    return fn();
  }

  holder(name: string): string | undefined {
    return this.holders.get(name);
  }
}
