// Persistent domain definitions: one <name>.xml per domain in the host's state
// directory, as libvirt keeps them under /etc/libvirt/qemu.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-write.js';

export class DefinitionStore {
  constructor(private readonly dir: string) {
    mkdirSync(join(dir, 'domains'), { recursive: true, mode: 0o700 });
  }

  private path(name: string): string {
    return join(this.dir, 'domains', `${name}.xml`);
  }

  has(name: string): boolean {
    return existsSync(this.path(name));
  }

  read(name: string): string | undefined {
    try {
      return readFileSync(this.path(name), 'utf8');
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
