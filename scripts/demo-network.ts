// The demo's network (root only): one Linux bridge in this machine's own namespace, where
// both simulated hosts' workers run, so both name the same bridge in the guest's
// <interface type='bridge'> and a guest migrated between them keeps its address. The bridge
// carries an address of its own, through which the demo reads the guest's counter.
// Named after the demo's Temporal port (two demos on other ports do not meet); setting it
// up again after a crash finds and reuses what the crashed run left; teardown removes it.
// No shell: `ip` with argument vectors.
import { spawnSync } from 'node:child_process';

export interface DemoNetwork {
  bridge: string;
  hostAddr: string;
  guestAddr: string;
  prefixLen: number;
  teardown(): void;
}

function ip(args: string[]): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: r.stderr?.trim() || r.error?.message || `exit ${r.status}` };
}

function must(args: string[]): void {
  const r = ip(args);
  if (!r.ok) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr}`);
}

function linkKind(dev: string): string | undefined | null {
  const r = ip(['-d', '-j', 'link', 'show', 'dev', dev]);
  if (!r.ok) return null;
  return (JSON.parse(r.stdout) as { linkinfo?: { info_kind?: string } }[])[0]?.linkinfo?.info_kind;
}

export function demoBridgeName(temporalPort: number): string {
  return `vmfdemo${temporalPort}`;
}

/** A bridge with a fixed MAC and an address on it, made or found (idempotent); `teardown` deletes it. */
export function setUpBridge(bridge: string, mac: string, hostAddr: string, prefixLen: number): () => void {
  const teardown = (): void => {
    const r = ip(['link', 'del', 'dev', bridge]);
    if (!r.ok && !/Cannot find device|does not exist/.test(r.stderr)) throw new Error(`ip link del ${bridge} failed: ${r.stderr}`);
  };
  const kind = linkKind(bridge);
  // A fixed MAC: a bridge otherwise takes its lowest port's, which changes with each tap a
  // restore or migration makes, and the guest's ARP entry for this side would go stale.
  if (kind === null) must(['link', 'add', bridge, 'address', mac, 'type', 'bridge', 'stp_state', '0']);
  else if (kind !== 'bridge') throw new Error(`${bridge} exists and is not a bridge (${kind ?? 'no kind'})`);
  try {
    must(['link', 'set', 'dev', bridge, 'address', mac]);
    must(['addr', 'replace', `${hostAddr}/${prefixLen}`, 'dev', bridge]);
    must(['link', 'set', 'dev', bridge, 'up']);
  } catch (err) {
    teardown();
    throw err;
  }
  return teardown;
}

/** The demo's bridge and its address, made or found (idempotent). Undefined when not root: no network then. */
export function setUpDemoNetwork(temporalPort: number): DemoNetwork | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const bridge = demoBridgeName(temporalPort);
  // 10.239.0.0/16 is clear of the test helpers' 10.231-10.233 subnets.
  const n = temporalPort % 250;
  const mac = `02:76:6d:66:${((temporalPort >> 8) & 0xff).toString(16).padStart(2, '0')}:${(temporalPort & 0xff).toString(16).padStart(2, '0')}`;
  const hostAddr = `10.239.${n}.1`;
  const teardown = setUpBridge(bridge, mac, hostAddr, 24);
  return { bridge, hostAddr, guestAddr: `10.239.${n}.2`, prefixLen: 24, teardown };
}
