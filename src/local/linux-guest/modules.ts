// Which kernel modules the guest loads, and in what order. The Debian package ships no
// modules.dep (depmod runs at install time, which we skip), so dependencies come from each
// module's own .modinfo section ("depends=a,b"), and the order is a depth-first walk of them.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/**
 * The devices a test or demo domain may give the guest. Crypto modules that another module
 * asks for by algorithm name at load time (a soft dependency the walk cannot see) come just
 * before it. `needed` ones must exist in the kernel package; the others are taken when present.
 */
export const GUEST_MODULES: { name: string; needed?: boolean }[] = [
  { name: 'virtio_pci', needed: true },
  { name: 'virtio_net', needed: true },
  { name: 'virtio_blk', needed: true },
  { name: 'virtio_console' },
  { name: 'virtio_rng' },
  { name: 'virtio_balloon' },
  { name: 'virtio_input' },
  { name: 'e1000' },
  { name: 'e1000e' },
  { name: '8139cp' },
  { name: '8139too' },
  { name: 'crct10dif_generic' },
  { name: 'crc64_rocksoft_generic' },
  { name: 'sd_mod' },
  { name: 'sr_mod' },
  { name: 'virtio_scsi' },
  { name: 'ahci' },
  { name: 'ata_piix' },
  { name: 'i6300esb' },
  { name: 'pvpanic_mmio' },
  { name: 'pvpanic_pci' },
  { name: 'button' },
  { name: 'evdev' },
];

/** Module names treat '-' and '_' alike (virtio-rng.ko is module virtio_rng). */
const norm = (name: string): string => name.replace(/-/g, '_');

const KO = /\.ko(\.(xz|zst|gz))?$/;

/** Modules compiled into the kernel: a dependency on one of them needs no file. */
function builtinModules(modulesDir: string): Set<string> {
  let text = '';
  try {
    text = readFileSync(join(modulesDir, 'modules.builtin'), 'utf8');
  } catch {
    // no list: every dependency must then be a file
  }
  return new Set(
    text
      .split('\n')
      .filter(Boolean)
      .map((line) => norm(basename(line).replace(KO, ''))),
  );
}

function indexModules(dir: string, into = new Map<string, string>()): Map<string, string> {
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, ent.name);
    if (ent.isDirectory()) indexModules(path, into);
    else if (KO.test(ent.name)) into.set(norm(ent.name.replace(KO, '')), path);
  }
  return into;
}

/** busybox insmod takes a plain ELF object: packages that compress modules are decompressed here. */
export function readModule(path: string): Buffer {
  const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : undefined;
  if (!tool) return readFileSync(path);
  return execFileSync(tool, ['-dc', path], { maxBuffer: 256 * 1024 * 1024 });
}

function dependsOf(object: Buffer): string[] {
  const at = object.indexOf('\0depends=');
  if (at < 0) return [];
  const start = at + '\0depends='.length;
  const end = object.indexOf(0, start);
  const list = object.subarray(start, end).toString('utf8');
  return list ? list.split(',').map(norm) : [];
}

export interface ResolvedModule {
  name: string;
  /** File name inside the initramfs, flat under lib/modules/. */
  file: string;
  data: Buffer;
}

/** Modules of GUEST_MODULES present in `modulesDir`, with their dependencies, each after what it needs. */
export function resolveGuestModules(modulesDir: string, log: (line: string) => void): ResolvedModule[] {
  const index = indexModules(join(modulesDir, 'kernel'));
  const builtin = builtinModules(modulesDir);
  const order: ResolvedModule[] = [];
  const seen = new Set<string>();
  const visit = (name: string, chain: string[]): void => {
    if (seen.has(name) || builtin.has(name)) return;
    const path = index.get(name);
    if (!path) throw new Error(`module ${name} (needed by ${chain.join(' <- ') || 'the guest'}) is not in ${modulesDir}`);
    seen.add(name);
    const data = readModule(path);
    for (const dep of dependsOf(data)) visit(dep, [name, ...chain]);
    order.push({ name, file: `${basename(path).replace(KO, '')}.ko`, data });
  };
  for (const { name, needed } of GUEST_MODULES) {
    const key = norm(name);
    if (!index.has(key) && !builtin.has(key) && !needed) {
      log(`linux guest: kernel has no module ${name}; the guest goes without it`);
      continue;
    }
    visit(key, []);
  }
  return order;
}
