// Persistent domain definitions: one <name>.xml per domain in the host's state
// directory, as libvirt keeps them under /etc/libvirt/qemu.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { invalidDomainName } from '../common/domain-name.js';
import { ErrorType, vmError } from '../common/errors.js';
import { writeFileAtomic } from '../support/atomic-write.js';

export class DefinitionStore {
  constructor(private readonly dir: string) {
    mkdirSync(join(dir, 'domains'), { recursive: true, mode: 0o700 });
  }

  private path(name: string): string {
    // Names also arrive on their own (undefine, dumpxml): one with '/' would reach files outside the store.
    const why = invalidDomainName(name);
    if (why) throw vmError(ErrorType.OperationInvalid, why, { domain: String(name).slice(0, 300) });
    return join(this.dir, 'domains', `${name}.xml`);
  }

  has(name: string): boolean {
    return existsSync(this.path(name));
  }

  read(name: string): string | undefined {
    const path = this.path(name);
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  }

  write(name: string, xml: string): void {
    writeFileAtomic(this.path(name), xml);
  }

  remove(name: string): void {
    rmSync(this.path(name), { force: true });
  }

  names(): string[] {
    try {
      return readdirSync(join(this.dir, 'domains'))
        .filter((f) => f.endsWith('.xml'))
        .map((f) => f.slice(0, -4))
        .sort();
    } catch {
      return [];
    }
  }
}
