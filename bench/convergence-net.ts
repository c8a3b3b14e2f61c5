// The convergence bench's network (root): two host namespaces joined by a migration link
// shaped to a fixed rate in both directions (tc tbf on each end: the link, not a tool's
// setting, is what the guest outruns, so every tool faces the same limit with its own
// defaults), one guest segment spanning both hosts (a bridge named alike in each) and a
// client namespace on it, and a relay so workers inside the namespaces reach the
// Temporal server. Bytes that crossed the migration link are read from its counters.
import { spawnSync } from 'node:child_process';
import { createGuestNetwork, type GuestNetwork } from '../test/helpers/guest-network.js';
import { createNetnsPair, type NetnsPair } from '../test/helpers/netns.js';
import { forwardTcp, type TcpForward } from '../test/helpers/tcp-forward.js';

function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

function tc(args: string[]): void {
  const r = spawnSync('tc', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tc ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** The interface of `ns` that holds `addr`. */
function ifaceWith(ns: string, addr: string): string {
  const links = JSON.parse(ip(['-n', ns, '-j', '-4', 'addr', 'show'])) as { ifname: string; addr_info: { local: string }[] }[];
  const hit = links.find((l) => l.addr_info.some((a) => a.local === addr));
  if (!hit) throw new Error(`no interface with ${addr} in ${ns}`);
  return hit.ifname;
}

export class BenchNet {
  private constructor(
    readonly pair: NetnsPair,
    readonly guests: GuestNetwork,
    readonly relay: TcpForward,
  ) {}

  /** Builds it all; `linkMiBps` shapes the migration link both ways. */
  static async create(bridge: string, linkMiBps: number, temporal: { host: string; port: number }): Promise<BenchNet> {
    const pair = createNetnsPair();
    let guests: GuestNetwork | undefined;
    try {
      guests = createGuestNetwork({ a: pair.a, b: pair.b }, { bridge });
      // burst: a few 64 KiB segments (veth offloads hand tbf large ones); latency bounds the queue as a real link's buffer does.
      const rate = `${linkMiBps * 8 * 1.048576}mbit`;
      for (const [ns, dev] of [
        [pair.a, ifaceWith(pair.a, pair.addrA)],
        [pair.b, pair.migIfB],
      ] as const)
        tc(['-n', ns, 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '50ms']);
      const relay = await forwardTcp([pair.mgmtRootA, pair.mgmtRootB], temporal);
      return new BenchNet(pair, guests, relay);
    } catch (err) {
      guests?.destroy();
      pair.destroy();
      throw err;
    }
  }

  get hosts(): { ns: string; addr: string; mgmtRoot: string }[] {
    return [
      { ns: this.pair.a, addr: this.pair.addrA, mgmtRoot: this.pair.mgmtRootA },
      { ns: this.pair.b, addr: this.pair.addrB, mgmtRoot: this.pair.mgmtRootB },
    ];
  }

  /** Bytes that crossed the migration link so far, both ways (counted at b's end). */
  linkBytes(): number {
    const s = (
      JSON.parse(ip(['-n', this.pair.b, '-s', '-j', 'link', 'show', 'dev', this.pair.migIfB])) as {
        stats64: { rx: { bytes: number }; tx: { bytes: number } };
      }[]
    )[0]!.stats64;
    return s.rx.bytes + s.tx.bytes;
  }

  /** A tap named `name` on the bridge of each host, owned by `uid` (libvirt's unprivileged daemons open it, managed='no'). */
  userTaps(name: string, uid: number, bridge: string): void {
    for (const { ns } of this.hosts) {
      ip(['-n', ns, 'tuntap', 'add', 'dev', name, 'mode', 'tap', 'user', String(uid)]);
      ip(['-n', ns, 'link', 'set', name, 'master', bridge, 'up']);
    }
  }

  async destroy(): Promise<void> {
    await this.relay.close();
    this.guests.destroy();
    // The namespaces take the taps, the shaping and the links with them.
    this.pair.destroy();
  }
}
