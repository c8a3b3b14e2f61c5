import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';

/** Write-then-rename so a crash leaves either the old file or the new one, never half of one. */
export function writeFileAtomic(path: string, data: string, mode = 0o600): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
