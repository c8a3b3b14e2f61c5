// What a soak compares before and after: each worker's open descriptors, the
// processes the host workers have under them, the cluster's QEMUs, listening
// ports in the migration ranges, and the files in the cluster's directories
// (run, state, memory). Also each worker's peak resident memory (VmHWM).
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { TestCluster } from '../cluster.js';
import { childrenOf, clusterQemus, listeningPorts } from './inspect.js';

export interface Resources {
  fds: Record<string, number>;
  children: Record<string, string[]>;
  qemus: number;
  listening: number[];
  files: string[];
}

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

function walk(dir: string, root: string, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = join(dir, n);
    try {
      if (lstatSync(p).isDirectory()) walk(p, root, out);
      else out.push(relative(root, p));
    } catch {
      // removed while we looked
    }
  }
}

export function workerPids(cluster: TestCluster): Record<string, number> {
  const pids: Record<string, number> = {};
  for (const h of cluster.hosts.values()) if (h.worker) pids[h.name] = h.worker.pid;
  if (cluster.control) pids.control = cluster.control.pid;
  return pids;
}

export function resourcesOf(cluster: TestCluster, ranges: Array<[number, number]>): Resources {
  const fds: Record<string, number> = {};
  const children: Record<string, string[]> = {};
  for (const [name, pid] of Object.entries(workerPids(cluster))) {
    fds[name] = fdCount(pid);
    if (name !== 'control') children[name] = childrenOf(pid);
  }
  const files: string[] = [];
  for (const h of cluster.hosts.values()) {
    walk(h.baseDir, cluster.root, files);
    walk(h.memoryDir, '/dev/shm', files);
  }
  return { fds, children, qemus: clusterQemus(cluster).length, listening: listeningPorts(ranges), files: files.sort() };
}

/** Peak resident set (VmHWM) of a process in MiB. */
export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
}
