// <virtualport type='openvswitch'> on a bridge interface, as libvirt does it:
// the tap is added to the Open vSwitch bridge with external-ids naming the
// port (iface-id, attached-mac, vm-id, iface-status, port-profile) when the
// domain's QEMU is set up (start, restore, migration Prepare), and removed from
// it when that QEMU is gone (destroy, Confirm on the source, every rollback).
// ovs-vsctl is looked up on the worker's PATH each time: a host without it
// refuses such a domain before anything is made, never starting it on a plain
// Linux bridge instead.
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { ErrorType, vmError } from '../common/errors.js';
import type { DomainDef } from '../domain/domain-model.js';
import type { InterfaceDef } from '../domain/interface-model.js';
import { which } from '../support/which.js';

const run = promisify(execFile);
/** libvirt's --timeout for every ovs-vsctl call (seconds): a dead ovsdb-server fails the call instead of hanging it. */
const OVS_TIMEOUT_S = 5;

export function ovsVsctl(): string | undefined {
  return which('ovs-vsctl');
}

export function isOvsPort(n: InterfaceDef): boolean {
  return n.type === 'bridge' && n.virtualport?.type === 'openvswitch';
}

/** Refuses, before anything is made, a domain with an openvswitch port on a host that has no Open vSwitch. */
export function checkOvsAvailable(def: DomainDef, host: string): void {
  const list = def.devices.interfaces ?? [];
  const i = list.findIndex(isOvsPort);
  if (i < 0 || ovsVsctl() !== undefined) return;
  const path = `/domain/devices/interface${list.length > 1 ? `[${i + 1}]` : ''}/virtualport`;
  throw vmError(
    ErrorType.ConfigUnsupported,
    `<virtualport type='openvswitch'> needs Open vSwitch on host ${host}, and ovs-vsctl is not on its PATH (at ${path})`,
    {
      path,
      host,
    },
  );
}

async function vsctl(args: string[]): Promise<void> {
  const bin = ovsVsctl();
  if (bin === undefined) throw vmError(ErrorType.ConfigUnsupported, "ovs-vsctl is not on the host worker's PATH");
  try {
    await run(bin, [`--timeout=${OVS_TIMEOUT_S}`, ...args], { timeout: (OVS_TIMEOUT_S + 5) * 1000 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw vmError(ErrorType.OperationFailed, `ovs-vsctl ${args.join(' ')} failed: ${stderr || (err as Error).message}`);
  }
}

/** Adds the tap to the bridge and names the port as libvirt does (virNetDevOpenvswitchAddPort). */
export async function addOvsPort(bridge: string, tap: string, n: InterfaceDef, vmUuid: string): Promise<void> {
  const vp = n.virtualport!;
  const set = (kv: string) => ['--', 'set', 'Interface', tap, kv];
  await vsctl([
    '--',
    '--may-exist',
    'add-port',
    bridge,
    tap,
    ...set(`external-ids:attached-mac="${n.mac}"`),
    ...set(`external-ids:iface-id="${vp.interfaceId!}"`),
    ...set(`external-ids:vm-id="${vmUuid}"`),
    ...set('external-ids:iface-status=active'),
    ...(vp.profileId !== undefined ? set(`external-ids:port-profile="${vp.profileId}"`) : []),
  ]);
}

/**
 * Removes the port; synchronous because it runs when QEMU is seen gone, with the
 * tap removal. A port already gone is fine; any other failure is returned for the log.
 */
export function removeOvsPortSync(tap: string): string | undefined {
  const bin = ovsVsctl();
  if (bin === undefined) return `ovs-vsctl is no longer on the PATH: port ${tap} left in Open vSwitch`;
  const r = spawnSync(bin, [`--timeout=${OVS_TIMEOUT_S}`, '--', '--if-exists', 'del-port', tap], { encoding: 'utf8', timeout: (OVS_TIMEOUT_S + 5) * 1000 });
  return r.status === 0 ? undefined : (r.stderr?.trim() ?? r.error?.message ?? `exit ${r.status}`);
}

/**
 * The port's PortData external-id, which libvirt moves with a migrating domain
 * (the cookie's <network> element): read on the source after Perform.
 */
export async function getOvsPortData(tap: string): Promise<string | undefined> {
  const bin = ovsVsctl();
  if (bin === undefined) return undefined;
  const { stdout } = await run(bin, [`--timeout=${OVS_TIMEOUT_S}`, '--if-exists', 'get', 'Interface', tap, 'external_ids:PortData'], {
    timeout: (OVS_TIMEOUT_S + 5) * 1000,
  });
  const v = stdout.trim().replace(/^"(.*)"$/, '$1');
  return v === '' ? undefined : v;
}

/** Sets the PortData the source sent on the destination's port, at Finish. */
export async function setOvsPortData(tap: string, data: string): Promise<void> {
  await vsctl(['set', 'Interface', tap, `external_ids:PortData=${data}`]);
}

/** The cookie's <network> interfaces for a domain's openvswitch ports, with the PortData each has (libvirt's order: by index). */
export async function ovsCookieInterfaces(def: DomainDef): Promise<{ index: number; vporttype: string; portdata?: string }[]> {
  const out: { index: number; vporttype: string; portdata?: string }[] = [];
  const list = def.devices.interfaces ?? [];
  for (const [index, n] of list.entries()) {
    if (!isOvsPort(n) || n.targetDev === undefined) continue;
    const portdata = await getOvsPortData(n.targetDev);
    out.push({ index, vporttype: 'openvswitch', ...(portdata !== undefined ? { portdata } : {}) });
  }
  return out;
}
