// The cluster a fault-matrix file runs its cells on: its own Temporal dev server
// (one column stops and restarts it on the same database), two host workers fm-a
// and fm-b with every hold point armed, a disk lockspace, TLS certificates (for
// --tls and --tunnelled) and a migration port range each, and a control worker;
// optionally two more hosts in network namespaces whose migration link a cell can
// cut. Also what injects a fault and restarts what crashed, as a supervisor would.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../../src/local/free-port.js';
import { createNetnsPair, type NetnsPair } from '../netns.js';
import { forwardTcp, type TcpForward } from '../tcp-forward.js';
import { makeCa, makeHostCert, tunnelEnv } from '../tunnel-certs.js';
import { Holds } from './holds.js';
import { STORAGE_POINT_NAMES } from './storage-cells.js';
import { clusterQemus, domainWorld } from './inspect.js';
import { OwnServer, OwnServerCluster } from './own-server.js';
import { MatrixTable } from './table.js';

// A killed control worker's workflows wait on its sticky queue; 1 s instead of 10 s per control-kill cell.
const CONTROL_ENV = { VMFERRY_STICKY_QUEUE_TIMEOUT_MS: '1000' };
export const A = 'fm-a';
export const B = 'fm-b';
/** Hosts in two network namespaces, for the network cut: the migration link between them is what is cut. */
export const NA = 'fm-na';
export const NB = 'fm-nb';
/** The stall detector's limit on the namespaced hosts: a cut link stalls TCP without an error. */
export const STALL_MS = 5000;

export const POINT_NAMES = ['begin', 'prepare', 'perform', 'perform-late', 'perform-done', 'finish', 'confirm'];
const SAVE_POINT_NAMES = ['before-stream', 'mid-stream', 'after-stream'];

export type Fault =
  'kill -9 src worker' | 'kill -9 dst worker' | 'kill -9 control' | 'restart Temporal' | 'kill -9 src QEMU' | 'kill -9 dst QEMU' | 'cut network';

export interface MatrixOptions {
  /** First port of each host's migration range (four ports each, ten apart): files running at once must not share them. */
  portBase: number;
  /** Start fm-na and fm-nb in network namespaces too (the network column). */
  netns?: boolean;
}

export class Matrix {
  readonly server = new OwnServer();
  cluster!: OwnServerCluster;
  readonly root = mkdtempSync(join(tmpdir(), 'vmf-fm-faults-'));
  readonly holds: Holds;
  readonly table = new MatrixTable();
  readonly images = join(this.root, 'images');
  readonly lockspace = join(this.root, 'lockspace');
  readonly ranges: Record<string, [number, number]>;
  net?: NetnsPair;
  private relay?: TcpForward;

  constructor(private readonly opts: MatrixOptions) {
    const hosts = opts.netns ? [A, B, NA, NB] : [A, B];
    this.ranges = Object.fromEntries(hosts.map((h, i) => [h, [opts.portBase + 10 * i, opts.portBase + 10 * i + 3]]));
    this.holds = new Holds(new Map(hosts.map((h) => [h, join(this.root, h)])));
  }

  get hosts(): string[] {
    return Object.keys(this.ranges);
  }

  async start(): Promise<void> {
    const { server, holds, ranges } = this;
    await server.start();
    this.cluster = new OwnServerCluster(server.address);
    const cluster = this.cluster;
    await cluster.connect();
    const faults = [...POINT_NAMES, ...STORAGE_POINT_NAMES]
      .map((n) => `migrate.${n}=hold`)
      .concat(SAVE_POINT_NAMES.map((n) => `save.${n}=hold`))
      .join(',');
    // fm-a and fm-b also hold disk leases in one lockspace and have TLS certificates, for the storage and tunnelled cells.
    const ca = makeCa(this.root, 'fm-ca');
    const tls = new Map(await Promise.all([A, B].map(async (h) => [h, tunnelEnv(`127.0.0.1:${await freePort()}`, makeHostCert(this.root, ca, h))] as const)));
    await Promise.all([
      ...[A, B].map((h) =>
        cluster.startHost(h, {
          ...tls.get(h)!,
          VMFERRY_LOCKSPACE_DIR: this.lockspace,
          VMFERRY_FAULTS: faults,
          VMFERRY_FAULT_DIR: holds.dirs.get(h)!,
          VMFERRY_HOST_MIGRATION_PORT_MIN: String(ranges[h]![0]),
          VMFERRY_HOST_MIGRATION_PORT_MAX: String(ranges[h]![1]),
          VMFERRY_AUTO_DESTROY_INTERVAL_MS: '500',
        }),
      ),
      cluster.startControl(CONTROL_ENV),
    ]);
    if (this.opts.netns) {
      // Two more hosts, each inside its own network namespace: the migration link between them
      // is what the network column cuts; each reaches this file's Temporal through a relay.
      const net = createNetnsPair();
      this.net = net;
      const relay = await forwardTcp([net.mgmtRootA, net.mgmtRootB], { host: '127.0.0.1', port: Number(server.address.split(':')[1]) });
      this.relay = relay;
      await Promise.all(
        (
          [
            [NA, net.a, net.addrA, net.mgmtRootA],
            [NB, net.b, net.addrB, net.mgmtRootB],
          ] as const
        ).map(([h, ns, addr, via]) =>
          cluster.startHost(
            h,
            {
              VMFERRY_FAULTS: faults,
              VMFERRY_FAULT_DIR: holds.dirs.get(h)!,
              VMFERRY_HOST_MIGRATION_ADDRESS: addr,
              VMFERRY_HOST_MIGRATION_PORT_MIN: String(ranges[h]![0]),
              VMFERRY_HOST_MIGRATION_PORT_MAX: String(ranges[h]![1]),
              VMFERRY_AUTO_DESTROY_INTERVAL_MS: '500',
              VMFERRY_MIGRATION_STALL_TIMEOUT_MS: String(STALL_MS),
              TEMPORAL_ADDRESS: `${via}:${relay.port}`,
            },
            { commandPrefix: net.prefix(ns) },
          ),
        ),
      );
    }
    mkdirSync(this.images);
    holds.start();
  }

  /** Prints and keeps the table; stops everything. Returns the QEMUs the cells left. */
  async stop(title: string, artifact: string): Promise<number[]> {
    this.holds.stop();
    console.log(`\n${title}\n${this.table.format()}`);
    this.table.write(join('test-artifacts', artifact));
    const cluster = this.cluster as OwnServerCluster | undefined;
    await cluster?.removeAllDomains(this.hosts).catch(() => undefined);
    const stray = cluster ? clusterQemus(cluster) : [];
    await cluster?.stop();
    await this.relay?.close();
    this.net?.destroy();
    await this.server.stop();
    rmSync(this.root, { recursive: true, force: true });
    return stray;
  }

  /** Injects the fault while the step holds; restarts what crashed. Returns what was done, or 'n/a'. */
  async inject(fault: Fault, uuid: string, r?: { host: string; point: string }): Promise<string> {
    const { cluster, holds } = this;
    switch (fault) {
      case 'kill -9 src worker':
      case 'kill -9 dst worker': {
        const host = fault === 'kill -9 src worker' ? A : B;
        await cluster.hosts.get(host)!.worker!.kill9();
        holds.release(); // the dead worker's marker; the restarted worker's retry passes
        await cluster.startHost(host);
        return 'killed';
      }
      case 'kill -9 control':
        await cluster.control!.kill9();
        holds.release();
        await cluster.startControl(CONTROL_ENV);
        return 'killed';
      case 'restart Temporal':
        await this.server.restart();
        return 'restarted';
      case 'kill -9 src QEMU':
      case 'kill -9 dst QEMU': {
        const host = fault === 'kill -9 src QEMU' ? A : B;
        const pids = domainWorld(cluster, [host], uuid, []).qemu.get(host)!;
        if (pids.length === 0) return 'n/a';
        for (const pid of pids) process.kill(pid, 'SIGKILL');
        return `killed QEMU ${pids.join(' ')}${r ? ` while ${r.host} held at ${r.point}` : ''}`;
      }
      case 'cut network':
        this.net!.cut(); // restored once the job has ended
        return 'cut the migration link';
    }
  }
}
