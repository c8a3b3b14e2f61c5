// "Two hosts with a real network" for guests (root only): one L2 segment that spans both
// simulated hosts, so a guest migrated from one to the other keeps its address, and a client
// in a third namespace that talks to it.
//
//   ns a: bridge brA ── tap (QEMU)        ns b: bridge brB ── tap (QEMU after migration)
//            └──────── veth "join" ──────────────┘
//            └── veth ── ns client (clientAddr)
//
// - createGuestNetwork(): makes host namespaces a and b, or, given existing ones (a
//   createNetnsPair() pair, whose migration and management links stay separate), puts the
//   bridges into those. Bridges carry no address: the hosts switch frames, they do not route.
// - addTap(ns): a persistent tap on that host's bridge; QEMU started in the same namespace
//   (prefix(ns)) opens it with `-netdev tap,ifname=NAME,script=no,downscript=no`.
// - guestAddr(i) / clientAddr / prefixLen: addresses on the segment (10.231.N.64/26, clear of
//   the /30 links netns.ts makes from the same N).
// - destroy(): removes everything this made (taps, veths, bridges, namespaces it created),
//   idempotent and safe after a half-done create.
// Names derive from this process's PID and a counter. No shell: `ip` with argument vectors.
import { spawnSync } from 'node:child_process';

export interface GuestNetwork {
  a: string;
  b: string;
  client: string;
  bridgeA: string;
  bridgeB: string;
  clientAddr: string;
  prefixLen: number;
  /** Guest address i (0-based) on the segment, without the prefix. */
  guestAddr(i: number): string;
  addTap(ns: string): string;
  prefix(ns: string): string[];
  destroy(): void;
}

let counter = 0;

function ip(args: string[], opts: { tolerate?: boolean } = {}): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0 && !opts.tolerate) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr?.trim() || r.error?.message || `exit ${r.status}`}`);
}

/** `bridge`: one name for both hosts' bridges (as a real cluster names them alike, so a migrated definition finds its bridge). */
export function createGuestNetwork(hosts?: { a: string; b: string }, opts: { bridge?: string } = {}): GuestNetwork {
  const k = counter++;
  const id = `${process.pid % 100000}${k}`;
  const n = ((process.pid * 7 + k) % 240) + 10;
  const ownHosts = !hosts;
  const a = hosts?.a ?? `vmf-${process.pid}-${k}ga`;
  const b = hosts?.b ?? `vmf-${process.pid}-${k}gb`;
  const client = `vmf-${process.pid}-${k}gc`;
  // Interface names: at most 15 characters.
  const bridgeA = opts.bridge ?? `vg${id}ba`;
  const bridgeB = opts.bridge ?? `vg${id}bb`;
  const join = [`vg${id}ja`, `vg${id}jb`] as const;
  const cli = [`vg${id}ca`, `vg${id}cc`] as const;
  const taps: { ns: string; name: string }[] = [];
  const made: string[] = [];
  const net: GuestNetwork = {
    a,
    b,
    client,
    bridgeA,
    bridgeB,
    clientAddr: `10.231.${n}.126`,
    prefixLen: 26,
    guestAddr: (i) => {
      if (i < 0 || i > 60) throw new Error(`guest address index ${i} out of range`);
      return `10.231.${n}.${65 + i}`;
    },
    addTap: (ns) => {
      const bridge = ns === a ? bridgeA : ns === b ? bridgeB : undefined;
      if (!bridge) throw new Error(`${ns} is not a host of this guest network`);
      const name = `vg${id}t${taps.length}`;
      ip(['-n', ns, 'tuntap', 'add', 'dev', name, 'mode', 'tap']);
      taps.push({ ns, name });
      ip(['-n', ns, 'link', 'set', name, 'master', bridge]);
      ip(['-n', ns, 'link', 'set', name, 'up']);
      return name;
    },
    prefix: (ns) => ['ip', 'netns', 'exec', ns],
    destroy: () => {
      for (const t of taps.splice(0)) ip(['-n', t.ns, 'link', 'del', t.name], { tolerate: true });
      // A veth goes with either end; a namespace takes what is inside it.
      ip(['-n', a, 'link', 'del', join[0]], { tolerate: true });
      ip(['-n', a, 'link', 'del', cli[0]], { tolerate: true });
      ip(['-n', a, 'link', 'del', bridgeA], { tolerate: true });
      ip(['-n', b, 'link', 'del', bridgeB], { tolerate: true });
      for (const ns of made.splice(0).reverse()) ip(['netns', 'del', ns], { tolerate: true });
    },
  };
  try {
    for (const ns of ownHosts ? [a, b, client] : [client]) {
      ip(['netns', 'add', ns]);
      made.push(ns);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    for (const [ns, br] of [
      [a, bridgeA],
      [b, bridgeB],
    ] as const) {
      // No STP: ports forward at once, and the segment has no loop to break.
      ip(['-n', ns, 'link', 'add', br, 'type', 'bridge', 'stp_state', '0']);
      ip(['-n', ns, 'link', 'set', br, 'up']);
    }
    ip(['link', 'add', join[0], 'netns', a, 'type', 'veth', 'peer', 'name', join[1], 'netns', b]);
    ip(['-n', a, 'link', 'set', join[0], 'master', bridgeA, 'up']);
    ip(['-n', b, 'link', 'set', join[1], 'master', bridgeB, 'up']);
    ip(['link', 'add', cli[0], 'netns', a, 'type', 'veth', 'peer', 'name', cli[1], 'netns', client]);
    ip(['-n', a, 'link', 'set', cli[0], 'master', bridgeA, 'up']);
    ip(['-n', client, 'addr', 'add', `${net.clientAddr}/${net.prefixLen}`, 'dev', cli[1]]);
    ip(['-n', client, 'link', 'set', cli[1], 'up']);
  } catch (err) {
    net.destroy();
    throw err;
  }
  return net;
}
