// The storage and convergence benches' libvirt side: two private libvirtd instances (session
// mode as `nobody`, see test/helpers/libvirt.ts), one in each host namespace with a host
// UUID of its own, each with a directory pool over its image directory (so the
// destination creates the copy's image itself, as `--copy-storage-all` expects), and
// `virsh migrate --live --copy-storage-all` run as an operator types it, timed from
// start to exit.
import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LibvirtDaemon } from '../test/helpers/libvirt.js';

export interface LibvirtHost {
  daemon: LibvirtDaemon;
  /** Its image directory (owned by libvirt's user, a pool over it), and its address on the migration link. */
  images: string;
  addr: string;
}

export class LibvirtPair {
  readonly hosts: LibvirtHost[] = [];
  /** Files both daemons read: the guest's kernel and initrd, and its console log. */
  readonly shared: string;

  private constructor(readonly root: string) {
    this.shared = join(root, 'shared');
  }

  /**
   * Starts a daemon in each namespace: `sides` are [namespace, migration address]; `devices`:
   * character devices the daemons' user may open (LibvirtDaemon's option); `pool: false`: no
   * pool (the convergence bench has no disk, and libvirt without its storage driver has none).
   */
  static async start(sides: [string, string][], kernel: string, initrd: string, opts: { devices?: string[]; pool?: boolean } = {}): Promise<LibvirtPair> {
    // Readable by `nobody` down to the daemons' own directories (mkdtemp makes 0700).
    const pair = new LibvirtPair(mkdtempSync('/tmp/vmf-bench-lv-'));
    chmodSync(pair.root, 0o755);
    try {
      mkdirSync(pair.shared, { mode: 0o755 });
      copyFileSync(kernel, join(pair.shared, 'vmlinuz'));
      copyFileSync(initrd, join(pair.shared, 'initrd.img'));
      for (const [i, [ns, addr]] of sides.entries()) {
        const dir = join(pair.root, `h${i}`);
        mkdirSync(dir);
        const daemon = new LibvirtDaemon(dir, { netns: ns, hostUuid: randomUUID(), ...(opts.devices ? { devices: opts.devices } : {}) });
        pair.hosts.push({ daemon, images: '', addr });
        await daemon.start('raw');
        const images = daemon.ownedDir('images');
        pair.hosts[i]!.images = images;
        if (opts.pool === false) continue;
        daemon.virsh('pool-define-as', 'bench', 'dir', '--target', images);
        daemon.virsh('pool-start', 'bench');
      }
      const consoleDir = join(pair.shared, 'console');
      mkdirSync(consoleDir);
      const { uid, gid } = pair.hosts[0]!.daemon.user;
      chownSync(consoleDir, uid, gid);
      return pair;
    } catch (err) {
      await pair.stop();
      throw err;
    }
  }

  get kernel(): string {
    return join(this.shared, 'vmlinuz');
  }
  get initrd(): string {
    return join(this.shared, 'initrd.img');
  }
  get serialLog(): string {
    return join(this.shared, 'console', 'serial.log');
  }

  /** A file the daemons' user may read (virsh reads --xml as that user). */
  writeShared(name: string, text: string): string {
    const p = join(this.shared, 'console', name);
    writeFileSync(p, text, { mode: 0o644 });
    return p;
  }

  /** Destroys and undefines the bench's domain wherever it is, stops the daemons, removes every file. */
  async stop(name?: string): Promise<void> {
    for (const h of this.hosts) {
      if (name) {
        await h.daemon.virshAsync('destroy', name).catch(() => undefined);
        await h.daemon.virshAsync('undefine', name).catch(() => undefined);
      }
      await h.daemon.stop().catch(() => undefined);
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** `virsh domjobinfo --completed`'s "Total downtime", in ms, when libvirt reports it. */
export function downtimeOf(domjobinfo: string): number | undefined {
  const m = /Total downtime:\s+(\d+)\s*ms/.exec(domjobinfo);
  return m ? Number(m[1]) : undefined;
}
