// "Nothing changed": what a test compares before and after a refused request.
// The domains each host lists, every file a host or the test owns (name, kind,
// size; symlink targets), and the QEMU processes started for this test cluster
// (found in /proc by the cluster's directories in their command lines).
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import type { TestCluster } from './cluster.js';

export interface World {
  domains: string[];
  files: string[];
  qemu: number[];
}

function kindOf(path: string): string {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return `link->${readlinkSync(path)}`;
  if (st.isSocket()) return 'socket';
  if (st.isFIFO()) return 'fifo';
  if (st.isFile()) return `file:${st.size}`;
  return 'other';
}

/**
 * Files (not directories: an empty directory made on first use is no leftover)
 * below `dir`. Log directories are skipped: logs are records of refusals too.
 */
function walk(dir: string, root: string, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const p = join(dir, name);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue; // removed while we looked
    }
    if (st.isDirectory()) {
      if (name !== 'log') walk(p, root, out);
      continue;
    }
    // A live status file's reason follows QEMU's events (a dump's STOP/RESUME): its presence is what counts.
    const status = basename(dir) === 'run' && name.endsWith('.xml');
    out.push(`${relative(root, p)} ${status ? 'status' : kindOf(p)}`);
  }
}

/** PIDs of qemu-system processes whose command line mentions one of `markers`. */
export function qemuPids(markers: string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!basename(argv[0] ?? '').startsWith('qemu-system')) continue;
    if (argv.some((a) => markers.some((m) => a.includes(m)))) pids.push(Number(entry));
  }
  return pids.sort((a, b) => a - b);
}

/** The domains each host lists (through the domainOperation workflow). */
export async function domainsOf(cluster: TestCluster, hosts: string[]): Promise<string[]> {
  const lists = await Promise.all(
    hosts.map(async (host) => {
      const r = await cluster.op(host, { op: 'list' });
      if (!('domains' in r)) throw new Error(`list on ${host} answered ${JSON.stringify(r)}`);
      return r.domains.map((d) => `${host}/${d.name} ${d.uuid} ${d.state}${d.persistent ? ' persistent' : ''}`);
    }),
  );
  return lists.flat();
}

/** Files and QEMU processes only: cheap enough to take around every case. */
export function localWorldOf(cluster: TestCluster, extraDirs: string[] = []): World {
  const files: string[] = [];
  const markers = [cluster.root];
  for (const h of cluster.hosts.values()) {
    walk(h.baseDir, cluster.root, files);
    walk(h.memoryDir, '/dev/shm', files);
    markers.push(h.memoryDir);
  }
  for (const d of extraDirs) walk(d, '/', files);
  return { domains: [], files: [...new Set(files)].sort(), qemu: qemuPids(markers) };
}

export async function worldOf(cluster: TestCluster, hosts: string[], extraDirs: string[] = []): Promise<World> {
  const domains = await domainsOf(cluster, hosts);
  return { ...localWorldOf(cluster, extraDirs), domains };
}
