// A directory only its owner lists, below parents made searchable: a QEMU confined to
// its own uid (DAC) reaches its run directory and RAM file through the parents the
// worker created, and cannot list anything in them.
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export function mkdirPrivate(dir: string): void {
  const parent = dirname(dir);
  const first = mkdirSync(parent, { recursive: true, mode: 0o711 });
  // The worker's umask (077) takes the search bits away from what mkdir made; parents that existed keep their mode.
  if (first !== undefined)
    for (let d = parent; ; d = dirname(d)) {
      chmodSync(d, 0o711);
      if (d === first || d === dirname(d)) break;
    }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}
