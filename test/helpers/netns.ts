// Two network namespaces for tests that need hosts with really separate
// addresses, or a network cut between them (root only).
//
//   root ns ── mgmtRootA/mgmtA ── ns a ══ migration link addrA/addrB ══ ns b ── mgmtB/mgmtRootB ── root ns
//
// - create(): the namespaces, a veth pair between them (the "migration
//   network", what cut() breaks) and one veth pair from each to the root
//   namespace (a "management network" through which a worker inside reaches
//   services in the root namespace, e.g. a Temporal server; see tcp-forward.ts).
// - prefix(ns): a command prefix that runs a program inside a namespace
//   (`ip netns exec NAME`, which execs: the child's PID is the program's own).
// - cut() / restore(): take the migration link down / up again.
// - destroy(): deletes the namespaces and every veth (idempotent, best effort,
//   safe after a half-done create()). Call it in afterAll even when tests fail.
// Names and subnets derive from this process's PID and a counter, so files
// running at the same time cannot collide. No shell: `ip` with argument vectors.
import { spawnSync } from 'node:child_process';

export interface NetnsPair {
  /** Namespace names. */
  a: string;
  b: string;
  /** Addresses on the migration link: a's and b's. */
  addrA: string;
  addrB: string;
  /** b's end of the migration link (where a capture sees everything between the hosts). */
  migIfB: string;
  /** Root-side management addresses that a and b each reach the root namespace through. */
  mgmtRootA: string;
  mgmtRootB: string;
  prefix(ns: string): string[];
  cut(): void;
  restore(): void;
  destroy(): void;
}

let counter = 0;

function ip(args: string[], opts: { tolerate?: boolean } = {}): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0 && !opts.tolerate) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr?.trim() || r.error?.message || `exit ${r.status}`}`);
}

export function createNetnsPair(): NetnsPair {
  const k = counter++;
  const id = `${process.pid % 100000}${k}`;
  const n = ((process.pid * 7 + k) % 240) + 10;
  const a = `vmf-${process.pid}-${k}a`;
  const b = `vmf-${process.pid}-${k}b`;
  // veth names: at most 15 characters.
  const mig = [`vf${id}ma`, `vf${id}mb`] as const;
  const mgA = [`vf${id}ra`, `vf${id}ia`] as const;
  const mgB = [`vf${id}rb`, `vf${id}ib`] as const;
  const pair: NetnsPair = {
    a,
    b,
    addrA: `10.231.${n}.1`,
    addrB: `10.231.${n}.2`,
    migIfB: mig[1],
    mgmtRootA: `10.232.${n}.1`,
    mgmtRootB: `10.233.${n}.1`,
    prefix: (ns) => ['ip', 'netns', 'exec', ns],
    cut: () => ip(['-n', a, 'link', 'set', mig[0], 'down']),
    restore: () => ip(['-n', a, 'link', 'set', mig[0], 'up']),
    destroy: () => {
      // Deleting a namespace deletes the veth ends inside it, and with them their peers.
      ip(['netns', 'del', a], { tolerate: true });
      ip(['netns', 'del', b], { tolerate: true });
      for (const dev of [mig[0], mgA[0], mgB[0]]) ip(['link', 'del', dev], { tolerate: true });
    },
  };
  try {
    ip(['netns', 'add', a]);
    ip(['netns', 'add', b]);
    for (const ns of [a, b]) ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    ip(['link', 'add', mig[0], 'netns', a, 'type', 'veth', 'peer', 'name', mig[1], 'netns', b]);
    ip(['-n', a, 'addr', 'add', `${pair.addrA}/30`, 'dev', mig[0]]);
    ip(['-n', b, 'addr', 'add', `${pair.addrB}/30`, 'dev', mig[1]]);
    ip(['-n', a, 'link', 'set', mig[0], 'up']);
    ip(['-n', b, 'link', 'set', mig[1], 'up']);
    for (const [ns, [root, inner], rootAddr, innerAddr] of [
      [a, mgA, pair.mgmtRootA, `10.232.${n}.2`],
      [b, mgB, pair.mgmtRootB, `10.233.${n}.2`],
    ] as const) {
      ip(['link', 'add', root, 'type', 'veth', 'peer', 'name', inner, 'netns', ns]);
      ip(['addr', 'add', `${rootAddr}/30`, 'dev', root]);
      ip(['link', 'set', root, 'up']);
      ip(['-n', ns, 'addr', 'add', `${innerAddr}/30`, 'dev', inner]);
      ip(['-n', ns, 'link', 'set', inner, 'up']);
    }
  } catch (err) {
    pair.destroy();
    throw err;
  }
  return pair;
}
