// The kernel unpacks an initramfs from a "newc" cpio archive: a 110-byte ASCII header per entry
// (hex fields), the name, the data, each padded to 4 bytes, and a TRAILER!!! entry. Written here
// so the build needs no cpio binary and sets owner, mode and device numbers without being root.

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function pad4(n: number): Buffer {
  return Buffer.alloc((4 - (n % 4)) % 4);
}

function header(ino: number, mode: number, size: number, nameLen: number, rdev: [number, number] = [0, 0]): Buffer {
  const fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, rdev[0], rdev[1], nameLen, 0];
  return Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''), 'ascii');
}

function record(ino: number, path: string, mode: number, data: Buffer, rdev?: [number, number]): Buffer[] {
  const name = Buffer.from(`${path}\0`, 'utf8');
  const head = header(ino, mode, data.length, name.length, rdev);
  return [head, name, pad4(head.length + name.length), data, pad4(data.length)];
}

/** Paths are relative to the archive root ("init", "bin/busybox"); parents must come first. */
export function newcArchive(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  entries.forEach((e, i) => {
    const ino = i + 1;
    switch (e.kind) {
      case 'dir':
        parts.push(...record(ino, e.path, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0)));
        break;
      case 'file':
        parts.push(...record(ino, e.path, S_IFREG | (e.mode ?? 0o644), e.data));
        break;
      case 'symlink':
        parts.push(...record(ino, e.path, S_IFLNK | 0o777, Buffer.from(e.target, 'utf8')));
        break;
      case 'chardev':
        parts.push(...record(ino, e.path, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), [e.major, e.minor]));
        break;
    }
  });
  parts.push(...record(0, 'TRAILER!!!', 0, Buffer.alloc(0)));
  return Buffer.concat(parts);
}
