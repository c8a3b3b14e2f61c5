// <virtualport type='openvswitch'> through real Temporal and real QEMU, on two
// host workers in their own network namespaces (the taps are real). This kernel
// has no Open vSwitch datapath (CONFIG_OPENVSWITCH is not set, no modules), so
// no real OVS runs here: each host's PATH holds a recording ovs-vsctl stand-in
// that logs its argument vector into the same log the host hook (libvirt's
// calling convention) writes. The log shows the order libvirt keeps: the port
// added after the prepare hook and before start, on the destination at Prepare;
// removed after stopped and before release, on the source at Confirm and on the
// destination when a migration rolls back. The source's port data (PortData)
// is read after Perform and set on the destination's port at Finish, as libvirt
// moves it in the cookie. With the stand-in taken away, a domain with such a
// port is refused at start, Prepare and restore with ConfigUnsupported and
// nothing is made.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RestoreResult, SaveResult } from '../src/common/save-types.js';
import { isProcessAlive } from '../src/support/proc.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, failureOf, namesOf, startMigration } from './helpers/migration.js';
import { createNetnsPair, type NetnsPair } from './helpers/netns.js';
import { runJob } from './helpers/save.js';
import { forwardTcp, type TcpForward } from './helpers/tcp-forward.js';

const isRoot = process.getuid?.() === 0;
// A's destination CPUs "fail to start" (fault point): a migration to A rolls back.
const A = 'vport-a';
const B = 'vport-b';
const IFACE_ID = '5f1e6a43-3c4b-4c8e-a0a5-7d4b1c2e9f10';
const NIC = `
    <interface type='bridge'>
      <mac address='52:54:00:5e:00:0a'/>
      <source bridge='ovsbr0'/>
      <virtualport type='openvswitch'><parameters interfaceid='${IFACE_ID}' profileid='gold'/></virtualport>
      <model type='virtio'/>
    </interface>`;

const cluster = new TestCluster();
let pair: NetnsPair | undefined;
let relay: TcpForward | undefined;

const dirOf = (host: string): string => join(cluster.root, `hooks-${host}`);
const ovsBinDir = (host: string): string => join(cluster.root, `ovs-bin-${host}`);

const HOOK = (dir: string) => `#!/bin/sh
cat > "${dir}/last-$2.xml"
echo "$1 $2 $3 $4" >> "${dir}/calls.log"
exit 0
`;
// The stand-in: every call's argv in ovs-args.log; add-port, del-port and the setting of PortData also in the hook's log,
// where the order shows; `get ... PortData` answers with the host's portdata file, when there is one.
const OVS = (dir: string) => `#!/bin/sh
echo "$*" >> "${dir}/ovs-args.log"
case " $* " in
  *" get Interface "*) if [ -e "${dir}/portdata" ]; then echo "\\"$(cat "${dir}/portdata")\\""; fi ;;
  *"external_ids:PortData="*) echo "ovs portdata $(echo "$*" | sed 's/.* set Interface \\([^ ]*\\) external_ids:PortData=\\(.*\\)/\\1 \\2/')" >> "${dir}/calls.log" ;;
  *" add-port "*) echo "ovs add-port $(echo "$*" | sed 's/.* add-port \\([^ ]*\\) \\([^ ]*\\).*/\\1 \\2/')" >> "${dir}/calls.log" ;;
  *" del-port "*) echo "ovs del-port $(echo "$*" | sed 's/.* del-port \\([^ ]*\\).*/\\1/') -" >> "${dir}/calls.log" ;;
esac
exit 0
`;

function setUpHost(host: string): void {
  mkdirSync(dirOf(host), { recursive: true });
  mkdirSync(ovsBinDir(host), { recursive: true });
  writeFileSync(join(dirOf(host), 'qemu'), HOOK(dirOf(host)));
  chmodSync(join(dirOf(host), 'qemu'), 0o755);
  writeFileSync(join(ovsBinDir(host), 'ovs-vsctl'), OVS(dirOf(host)));
  chmodSync(join(ovsBinDir(host), 'ovs-vsctl'), 0o755);
}

/** Takes the stand-in off the host's PATH (the worker looks it up at each use) or puts it back. */
function ovsPresent(host: string, present: boolean): void {
  const on = join(ovsBinDir(host), 'ovs-vsctl');
  const off = `${on}.off`;
  if (present && existsSync(off)) renameSync(off, on);
  if (!present && existsSync(on)) renameSync(on, off);
}

/** Hook calls ("DOMAIN OP SUBOP -") and stand-in calls ("ovs add-port BRIDGE TAP" / "ovs del-port TAP -"), in order. */
function calls(host: string): string[] {
  const log = join(dirOf(host), 'calls.log');
  return existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
}

function clearCalls(...hosts: string[]): void {
  for (const h of hosts) for (const f of ['calls.log', 'ovs-args.log']) rmSync(join(dirOf(h), f), { force: true });
}

const hooks = (name: string, ops: string[]) => ops.map((op) => `${name} ${op} ${['stopped', 'release'].includes(op) ? 'end' : 'begin'} -`);

function linkExists(host: string, dev: string): boolean {
  const ns = host === A ? pair!.a : pair!.b;
  return spawnSync('ip', ['-n', ns, 'link', 'show', 'dev', dev], { stdio: 'ignore' }).status === 0;
}

beforeAll(async () => {
  if (!isRoot) return;
  setUpHost(A);
  setUpHost(B);
  pair = createNetnsPair();
  const [host, port] = cluster.address.split(':') as [string, string];
  relay = await forwardTcp([pair.mgmtRootA, pair.mgmtRootB], { host, port: Number(port) });
  const env = (h: string, mgmt: string, addr: string) => ({
    VMFERRY_HOST_HOOKS_DIR: dirOf(h),
    PATH: `${ovsBinDir(h)}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    TEMPORAL_ADDRESS: `${mgmt}:${relay!.port}`,
    VMFERRY_HOST_MIGRATION_ADDRESS: addr,
  });
  await cluster.connect();
  await Promise.all([
    cluster.startHost(A, { ...env(A, pair.mgmtRootA, pair.addrA), VMFERRY_FAULTS: 'migrate.finish=fail' }, { commandPrefix: pair.prefix(pair.a) }),
    cluster.startHost(B, env(B, pair.mgmtRootB, pair.addrB), { commandPrefix: pair.prefix(pair.b) }),
    cluster.startControl(),
  ]);
}, 120_000);

afterAll(async () => {
  if (isRoot) {
    ovsPresent(A, true);
    ovsPresent(B, true);
    await cluster.removeAllDomains([A, B]).catch(() => undefined);
    await cluster.stop();
  }
  await relay?.close();
  pair?.destroy();
});

describe.skipIf(!isRoot)('openvswitch virtualport on real hosts (recording ovs-vsctl stand-in: no OVS datapath in this kernel)', () => {
  it('start adds the tap to the OVS bridge with libvirt external-ids between prepare and start; destroy removes it between stopped and release', async () => {
    clearCalls(A);
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'vp1', uuid, extraDevices: NIC }) });
    const d = domainOf(await cluster.op(A, { op: 'start', name: 'vp1' }));
    expect(d.state).toBe('running');
    expect(calls(A)).toEqual([...hooks('vp1', ['prepare']), 'ovs add-port ovsbr0 vnet0', ...hooks('vp1', ['start', 'started'])]);
    expect(linkExists(A, 'vnet0')).toBe(true);
    const args = readFileSync(join(dirOf(A), 'ovs-args.log'), 'utf8').trim();
    expect(args).toBe(
      '--timeout=5 -- --may-exist add-port ovsbr0 vnet0' +
        ' -- set Interface vnet0 external-ids:attached-mac="52:54:00:5e:00:0a"' +
        ` -- set Interface vnet0 external-ids:iface-id="${IFACE_ID}"` +
        ` -- set Interface vnet0 external-ids:vm-id="${uuid}"` +
        ' -- set Interface vnet0 external-ids:iface-status=active' +
        ' -- set Interface vnet0 external-ids:port-profile="gold"',
    );
    // The hooks are handed the port profile in the domain XML on their stdin.
    expect(readFileSync(join(dirOf(A), 'last-start.xml'), 'utf8')).toContain(
      `<virtualport type='openvswitch'><parameters interfaceid='${IFACE_ID}' profileid='gold'/></virtualport>`,
    );

    await cluster.op(A, { op: 'destroy', name: 'vp1' });
    expect(isProcessAlive(d.pid!)).toBe(false);
    expect(calls(A).slice(4)).toEqual([...hooks('vp1', ['stopped']), 'ovs del-port vnet0 -', ...hooks('vp1', ['release'])]);
    expect(linkExists(A, 'vnet0')).toBe(false);
    await cluster.op(A, { op: 'undefine', name: 'vp1' });
  });

  it("migration: the destination adds its port at Prepare and sets the source port's PortData at Finish, the source removes its port at Confirm; a rolled-back one removes the destination port", async () => {
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'vp2', uuid, extraDevices: NIC }) });
    const src = domainOf(await cluster.op(A, { op: 'start', name: 'vp2' }));
    clearCalls(A, B);
    writeFileSync(join(dirOf(A), 'portdata'), 'flows-v1');
    const result = await (
      await startMigration(cluster.client, {
        domain: 'vp2',
        domainUuid: uuid,
        sourceHost: A,
        destinationHost: B,
        flags: ['live', 'persist-dest', 'undefine-source'],
      })
    ).result();
    expect(result.destination).toMatchObject({ state: 'running', host: B });
    // The source's PortData (libvirt's cookie <network> data) is set on the destination's port at Finish.
    expect(calls(B)).toEqual([
      ...hooks('vp2', ['migrate', 'prepare']),
      'ovs add-port ovsbr0 vnet0',
      ...hooks('vp2', ['start', 'started']),
      'ovs portdata vnet0 flows-v1',
    ]);
    rmSync(join(dirOf(A), 'portdata'));
    expect(readFileSync(join(dirOf(B), 'last-migrate.xml'), 'utf8')).toContain(`interfaceid='${IFACE_ID}'`);
    expect(linkExists(B, 'vnet0')).toBe(true);
    expect(isProcessAlive(src.pid!)).toBe(false);
    await waitFor('the source end hooks', () => calls(A).length >= 3, { timeoutMs: 10_000, intervalMs: 50 });
    expect(calls(A)).toEqual([...hooks('vp2', ['stopped']), 'ovs del-port vnet0 -', ...hooks('vp2', ['release'])]);
    expect(linkExists(A, 'vnet0')).toBe(false);

    // Back to A, whose CPUs fail to start at Finish: A's port goes again with its QEMU, B's stays.
    const onB = domainOf(await cluster.op(B, { op: 'info', name: 'vp2' }));
    clearCalls(A, B);
    const back = await startMigration(cluster.client, { domain: 'vp2', domainUuid: uuid, sourceHost: B, destinationHost: A, flags: ['live'] });
    expect((await failureOf(back.result())).type).toBe('OperationFailed');
    expect(calls(A)).toEqual([
      ...hooks('vp2', ['migrate', 'prepare']),
      'ovs add-port ovsbr0 vnet0',
      ...hooks('vp2', ['start', 'started', 'stopped']),
      'ovs del-port vnet0 -',
      ...hooks('vp2', ['release']),
    ]);
    expect(calls(B)).toEqual([]);
    expect(linkExists(A, 'vnet0')).toBe(false);
    expect(domainOf(await cluster.op(B, { op: 'info', name: 'vp2' }))).toMatchObject({ state: 'running', pid: onB.pid });
    expect(linkExists(B, 'vnet0')).toBe(true);
    await cluster.op(B, { op: 'destroy', name: 'vp2' });
    await cluster.op(B, { op: 'undefine', name: 'vp2' });
  });

  it('without ovs-vsctl a host refuses start, Prepare and restore with ConfigUnsupported; nothing starts, no tap, no hook past migrate', async () => {
    const uuid = randomUUID();
    await cluster.op(A, { op: 'define', xml: guestXml({ name: 'vp3', uuid, extraDevices: NIC }) });
    // start
    ovsPresent(A, false);
    clearCalls(A, B);
    try {
      const f = await failureOf(cluster.op(A, { op: 'start', name: 'vp3' }));
      expect(f.type).toBe('ConfigUnsupported');
      expect(f.message).toContain(`needs Open vSwitch on host ${A}, and ovs-vsctl is not on its PATH (at /domain/devices/interface/virtualport)`);
    } finally {
      ovsPresent(A, true);
    }
    expect(calls(A)).toEqual([]);
    expect(linkExists(A, 'vnet0')).toBe(false);
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'vp3' })).state).toBe('shutoff');

    // Prepare on B
    const src = domainOf(await cluster.op(A, { op: 'start', name: 'vp3' }));
    ovsPresent(B, false);
    clearCalls(A, B);
    try {
      const handle = await startMigration(cluster.client, { domain: 'vp3', domainUuid: uuid, sourceHost: A, destinationHost: B, flags: ['live'] });
      const f = await failureOf(handle.result());
      expect(f.type).toBe('ConfigUnsupported');
      expect(f.message).toContain(`needs Open vSwitch on host ${B}`);
    } finally {
      ovsPresent(B, true);
    }
    // The migrate hook saw the definition first (it may rewrite it); nothing after.
    expect(calls(B)).toEqual(hooks('vp3', ['migrate']));
    expect(namesOf(await cluster.op(B, { op: 'list' }))).toEqual([]);
    expect(linkExists(B, 'vnet0')).toBe(false);
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'vp3' }))).toMatchObject({ state: 'running', pid: src.pid });

    // restore on A
    const images = join(cluster.root, 'images');
    mkdirSync(images, { recursive: true });
    const path = join(images, 'vp3.img');
    await runJob<SaveResult>(cluster.client, 'save', uuid, { host: A, name: 'vp3', path, format: 'raw' });
    await waitFor('the saved QEMU released', () => calls(A).includes('vp3 release end -'), { timeoutMs: 10_000, intervalMs: 50 });
    expect(calls(A)).toEqual([...hooks('vp3', ['stopped']), 'ovs del-port vnet0 -', ...hooks('vp3', ['release'])]);
    ovsPresent(A, false);
    clearCalls(A);
    try {
      const f = await failureOf(runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: A, path }));
      expect(f.type).toBe('ConfigUnsupported');
    } finally {
      ovsPresent(A, true);
    }
    expect(calls(A)).toEqual(hooks('vp3', ['restore']));
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'vp3' })).state).toBe('shutoff');
    // With it back, the same image restores, its port added as at start.
    clearCalls(A);
    await runJob<RestoreResult>(cluster.client, 'restore', uuid, { host: A, path });
    expect(calls(A)).toEqual([...hooks('vp3', ['restore', 'prepare']), 'ovs add-port ovsbr0 vnet0', ...hooks('vp3', ['start', 'started'])]);
    await cluster.op(A, { op: 'destroy', name: 'vp3' });
    await cluster.op(A, { op: 'undefine', name: 'vp3' });
  });
});
