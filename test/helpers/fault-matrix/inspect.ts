// What a fault-matrix cell looks at when the job has ended: which QEMU runs the
// domain (found in /proc by the domain's RAM file, which carries its UUID, and
// matched to a host by that host's memory directory), what each host keeps in
// its run directory and memory directory, which processes its worker has under
// it besides QEMU, which of the cluster's QEMUs belong to no domain, and which
// sockets listen in the hosts' migration port ranges. Nothing here asks a
// worker: a worker could lie about what it leaked.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { isProcessAlive } from '../../../src/support/proc.js';
import { qemuPids } from '../world.js';
import type { TestCluster } from '../cluster.js';

export interface DomainWorld {
  /** host -> PIDs of QEMUs for the domain whose RAM file is in that host's memory dir. */
  qemu: Map<string, number[]>;
  /** host -> files below its run directory (relative paths). */
  run: Map<string, string[]>;
  /** host -> files in its memory directory. */
  shm: Map<string, string[]>;
  /** TCP ports listening in the given ranges. */
  listening: number[];
  /** host -> processes under its worker other than QEMU (compressors, dd, relays). */
  helpers: Map<string, string[]>;
  /** QEMUs of the cluster that belong to no domain this look was about. */
  strays: number[];
}

function files(dir: string, root = dir): string[] {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true }).map((d) => (d.isDirectory() ? `${d.name}/` : d.name));
  } catch {
    return [];
  }
  return names.flatMap((n) => (n.endsWith('/') ? files(join(dir, n), root) : [relative(root, join(dir, n))])).sort();
}

/**
 * Listening TCP sockets (IPv4 and IPv6) whose local port is in one of `ranges`, in this
 * process's network namespace and in those of `pids` (a worker inside a namespace).
 */
export function listeningPorts(ranges: Array<[number, number]>, pids: number[] = []): number[] {
  const ports = new Set<number>();
  const tables = ['self', ...pids.map(String)].flatMap((p) => [`/proc/${p}/net/tcp`, `/proc/${p}/net/tcp6`]);
  for (const table of tables) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // Columns: sl local_address rem_address st ...; st 0A = LISTEN.
      if (cols[3] !== '0A') continue;
      const port = parseInt((cols[1] ?? '').split(':')[1] ?? '', 16);
      if (ranges.some(([lo, hi]) => port >= lo && port <= hi)) ports.add(port);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

export function domainWorld(cluster: TestCluster, hosts: string[], uuid: string, ranges: Array<[number, number]>): DomainWorld {
  const qemu = new Map<string, number[]>();
  const run = new Map<string, string[]>();
  const shm = new Map<string, string[]>();
  for (const host of hosts) {
    const h = cluster.hosts.get(host)!;
    // A zombie is gone: its parent (the worker) may not have reaped it yet.
    qemu.set(
      host,
      qemuPids([join(h.memoryDir, `${uuid}.ram`)]).filter((pid) => isProcessAlive(pid)),
    );
    run.set(host, files(join(h.baseDir, 'run')));
    shm.set(host, files(h.memoryDir));
  }
  const helpers = new Map<string, string[]>();
  for (const host of hosts) {
    const pid = cluster.hosts.get(host)!.worker?.pid;
    // esbuild is tsx's compiler service (the worker runs from TypeScript sources), started when a module loads late.
    helpers.set(host, pid === undefined ? [] : childrenOf(pid).filter((c) => !c.startsWith('qemu-system') && c !== 'esbuild'));
  }
  const pids = hosts.map((h) => cluster.hosts.get(h)!.worker?.pid).filter((p): p is number => p !== undefined);
  const mine = new Set([...qemu.values()].flat());
  return { qemu, run, shm, listening: listeningPorts(ranges, pids), helpers, strays: clusterQemus(cluster).filter((p) => !mine.has(p)) };
}

/** Command names of the live processes whose parent is `pid`. */
export function childrenOf(pid: number): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const [state, ppid] = stat.slice(close + 2).split(' ');
      if (Number(ppid) === pid && state !== 'Z') out.push(stat.slice(stat.indexOf('(') + 1, close));
    } catch {
      // gone meanwhile
    }
  }
  return out.sort();
}

/** Every QEMU of the test cluster still alive (any domain), for the teardown check. */
export function clusterQemus(cluster: TestCluster): number[] {
  return qemuPids([cluster.root, ...[...cluster.hosts.values()].map((h) => h.memoryDir)]).filter((pid) => isProcessAlive(pid));
}
