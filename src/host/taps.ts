// Host taps for <interface type='ethernet'|'bridge'>, made with `ip` (argument
// vectors, no shell) in the worker's own network namespace, where the QEMU it
// starts opens them. A tap the XML names and that already exists belongs to
// the operator: used, never touched. Every tap the worker creates is written to
// a ledger (<runDir>/<domain>.taps) BEFORE it is created, so a worker that dies
// at any point leaves a list its successor can clean (cleanOrphans, at
// reconnect); the ledger's taps go when that domain's QEMU goes. A tap of an
// openvswitch virtualport is added to the OVS bridge instead of being enslaved
// to a Linux bridge (host/openvswitch.ts), the port listed in a second ledger
// (<domain>.ovs) first, and removed from OVS before the tap goes.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { ErrorType, vmError } from '../common/errors.js';
import type { DomainDef } from '../domain/domain-model.js';
import { writeFileAtomic } from '../support/atomic-write.js';
import { addOvsPort, isOvsPort, removeOvsPortSync } from './openvswitch.js';

const run = promisify(execFile);
const LEDGER = '.taps';
const OVS_LEDGER = '.ovs';
/** libvirt's prefix for generated tap names; the migratable XML drops names of this form. */
const AUTO_PREFIX = 'vnet';

export function ledgerPath(runDir: string, name: string, kind: typeof LEDGER | typeof OVS_LEDGER = LEDGER): string {
  return join(runDir, `${name}${kind}`);
}

/** The OVS ports the worker added for a domain (taps it may not have created). */
export function ovsLedgerPath(runDir: string, name: string): string {
  return ledgerPath(runDir, name, OVS_LEDGER);
}

function readLedger(runDir: string, name: string, kind: typeof LEDGER | typeof OVS_LEDGER = LEDGER): string[] {
  try {
    const v: unknown = JSON.parse(readFileSync(ledgerPath(runDir, name, kind), 'utf8'));
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args, { timeout: 10_000 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw vmError(ErrorType.OperationFailed, `ip ${args.join(' ')} failed: ${stderr || (err as Error).message}`);
  }
}

async function linkKind(dev: string): Promise<string | undefined | null> {
  try {
    const { stdout } = await run('ip', ['-d', '-j', 'link', 'show', 'dev', dev], { timeout: 10_000 });
    const info = (JSON.parse(stdout) as { linkinfo?: { info_kind?: string } }[])[0];
    return info?.linkinfo?.info_kind ?? undefined;
  } catch {
    return null;
  }
}

async function linkNames(): Promise<Set<string>> {
  const { stdout } = await run('ip', ['-j', 'link', 'show'], { timeout: 10_000 });
  return new Set((JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname));
}

export class HostTaps {
  /** Name picking and creation are serialised: two launches never pick one name. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly runDir: string,
    private readonly log: Logger,
  ) {}

  /**
   * Makes the taps of every ethernet / bridge interface ready; returns them by
   * interface index (undefined for user networking). On failure the taps made
   * here are removed again.
   */
  async prepare(name: string, def: DomainDef): Promise<(string | undefined)[]> {
    const job = this.queue.then(() => this.prepareNow(name, def));
    this.queue = job.catch(() => undefined);
    return await job;
  }

  private async prepareNow(name: string, def: DomainDef): Promise<(string | undefined)[]> {
    const list = def.devices.interfaces ?? [];
    if (!list.some((n) => n.type !== 'user')) return [];
    const created = readLedger(this.runDir, name);
    const ports = readLedger(this.runDir, name, OVS_LEDGER);
    const taps: (string | undefined)[] = [];
    try {
      let existing = await linkNames();
      let next = 0;
      for (const n of list) {
        if (n.type === 'user') {
          taps.push(undefined);
          continue;
        }
        const ovs = isOvsPort(n);
        // An OVS bridge is not a Linux bridge: ovs-vsctl add-port says when it does not exist.
        if (n.type === 'bridge' && !ovs && (await linkKind(n.sourceBridge!)) !== 'bridge') {
          throw vmError(ErrorType.OperationFailed, `bridge '${n.sourceBridge}' does not exist on host`, { bridge: n.sourceBridge });
        }
        const toOvs = async (tap: string): Promise<void> => {
          ports.push(tap);
          writeFileAtomic(ledgerPath(this.runDir, name, OVS_LEDGER), JSON.stringify(ports));
          await addOvsPort(n.sourceBridge!, tap, n, def.uuid);
        };
        let tap = n.targetDev;
        if (tap !== undefined && existing.has(tap)) {
          // The operator's tap stays theirs; its port on the OVS bridge is the virtualport's, so it is added (and removed at the end).
          if (ovs) await toOvs(tap);
          taps.push(tap);
          continue;
        }
        while (tap === undefined) {
          const candidate = `${AUTO_PREFIX}${next++}`;
          if (!existing.has(candidate)) tap = candidate;
        }
        created.push(tap);
        writeFileAtomic(ledgerPath(this.runDir, name), JSON.stringify(created));
        await ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
        if (ovs) await toOvs(tap);
        else if (n.type === 'bridge') await ip(['link', 'set', 'dev', tap, 'master', n.sourceBridge!]);
        await ip(['link', 'set', 'dev', tap, 'up']);
        existing = new Set([...existing, tap]);
        taps.push(tap);
      }
      return taps;
    } catch (err) {
      this.removeCreated(name);
      throw err;
    }
  }

  /** Removes the taps this worker (or a previous one) created for the domain. Synchronous: it runs when QEMU is seen gone. */
  removeCreated(name: string): void {
    const ovsPath = ovsLedgerPath(this.runDir, name);
    if (existsSync(ovsPath)) {
      for (const tap of readLedger(this.runDir, name, OVS_LEDGER)) {
        const failed = removeOvsPortSync(tap);
        if (failed !== undefined) this.log.warn({ domain: name, tap, stderr: failed }, 'could not remove the Open vSwitch port');
      }
      rmSync(ovsPath, { force: true });
    }
    const path = ledgerPath(this.runDir, name);
    if (!existsSync(path)) return;
    for (const tap of readLedger(this.runDir, name)) {
      const r = spawnSync('ip', ['link', 'del', 'dev', tap], { encoding: 'utf8', timeout: 10_000 });
      // Already gone (the worker died between ledger and creation) is fine.
      if (r.status !== 0 && !/Cannot find device|does not exist/.test(r.stderr ?? '')) {
        this.log.warn({ domain: name, tap, stderr: r.stderr?.trim() }, 'could not remove tap');
      }
    }
    rmSync(path, { force: true });
  }

  /** At reconnect: the taps of every domain whose QEMU is not known to be alive. */
  cleanOrphans(aliveNames: ReadonlySet<string>): void {
    for (const f of readdirSync(this.runDir)) {
      const kind = [LEDGER, OVS_LEDGER].find((k) => f.endsWith(k));
      if (kind === undefined) continue;
      const name = f.slice(0, -kind.length);
      if (aliveNames.has(name)) continue;
      this.log.info(
        { domain: name, taps: readLedger(this.runDir, name), ovsPorts: readLedger(this.runDir, name, OVS_LEDGER) },
        'removing taps left by a previous worker',
      );
      this.removeCreated(name);
    }
  }
}
