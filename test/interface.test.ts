// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// <interface> in the domain model (read, written back in place, MAC generated
// once and kept, validated; anything not built refused with ConfigUnsupported)
// and on QEMU's command line (netdev + NIC, PCI slot, boot order). Host taps
// (host/taps.ts) are made for real with `ip` in a throwaway network namespace
// when the test runs as root. The Linux guest moving with its NIC is in
// linux-guest-migrate.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, describe, expect, it } from 'vitest';
import { formatDomainXml, migratableDomainXml, parseDomainXml } from '../src/domain/index.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';
import { ledgerPath } from '../src/host/taps.js';

function domainXml(nics: string): string {
  return `<domain type='qemu'><name>nic1</name><uuid>0f1c2a53-6a52-4c0e-9d59-0c7f0d3c0a12</uuid><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><controller type='usb' model='none'/>${nics}</devices></domain>`;
}
const paths = { qmpSocket: '/run/x.qmp' };

function failureOf(fn: () => unknown): ApplicationFailure {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected a failure');
}

describe('interface in the domain model (pure code)', () => {
  it('generates a 52:54:00 MAC once; formatting keeps it, so define stores it', () => {
    const def = parseDomainXml(domainXml("<interface type='user'><model type='virtio'/></interface>"));
    const mac = def.devices.interfaces![0]!.mac;
    expect(mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    const stored = formatDomainXml(def);
    expect(stored).toContain(`<mac address='${mac}'/>`);
    expect(parseDomainXml(stored).devices.interfaces![0]!.mac).toBe(mac);
  });

  it('reads type, source, target, model, link, boot, address and writes them back in place', () => {
    const nic =
      "<interface type='bridge'><mac address='52:54:00:AB:CD:EF'/><source bridge='br0'/><target dev='vnet7'/><model type='e1000'/>" +
      "<link state='down'/><boot order='2'/><address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></interface>";
    const def = parseDomainXml(domainXml(nic));
    expect(def.devices.interfaces).toEqual([
      {
        type: 'bridge',
        mac: '52:54:00:ab:cd:ef',
        sourceBridge: 'br0',
        targetDev: 'vnet7',
        model: 'e1000',
        linkState: 'down',
        bootOrder: 2,
        address: { type: 'pci', domain: '0x0000', bus: '0x00', slot: '0x05', function: '0x0' },
      },
    ]);
    const out = formatDomainXml(def);
    expect(out).toContain("<link state='down'/><boot order='2'/><address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>");
    // A generated tap name is host-local: the migratable XML drops it, the link state stays.
    expect(migratableDomainXml(def)).not.toContain('vnet7');
    expect(migratableDomainXml(def)).toContain("<link state='down'/>");
  });

  it.each([
    ["<interface type='network'><source network='default'/></interface>", /interface type 'network'/],
    ["<interface type='direct'><source dev='eth0' mode='vepa'/></interface>", /interface type 'direct'/],
    ["<interface type='vhostuser'><source type='unix' path='/tmp/s' mode='client'/></interface>", /interface type 'vhostuser'/],
    ["<interface type='bridge'><source bridge='br0'/><bandwidth><inbound average='1000'/></bandwidth></interface>", /<interface><bandwidth>/],
    ["<interface type='bridge'><source bridge='br0'/><filterref filter='clean-traffic'/></interface>", /<interface><filterref>/],
    ["<interface type='bridge'><source bridge='br0'/><driver name='vhost' queues='4'/></interface>", /<interface><driver>/],
    ["<interface type='bridge'><source bridge='br0'/><mtu size='9000'/></interface>", /<interface><mtu>/],
    ["<interface type='user'><model type='ne2k_pci'/></interface>", /NIC model 'ne2k_pci'/],
    ["<interface type='user'><address type='pci' bus='0x01' slot='0x01'/></interface>", /only bus 0/],
  ])('parses %s (valid libvirt XML) and refuses to build it with ConfigUnsupported naming it', (nic, message) => {
    const def = parseDomainXml(domainXml(nic));
    const err = failureOf(() => buildQemuArgs(def, { ...paths, taps: ['vnet0'] }));
    expect(err.type).toBe('ConfigUnsupported');
    expect(err.message).toMatch(message);
    expect(err.message).toMatch(/\/domain\/devices\/interface/);
  });

  it.each([
    ["<interface type='bridge'/>", /needs <source bridge/],
    ["<interface type='user'><mac address='01:00:5e:00:00:01'/></interface>", /multicast/],
    ["<interface type='user'><mac address='52:54:00:zz:00:01'/></interface>", /invalid MAC/],
    [
      "<interface type='user'><mac address='52:54:00:00:00:01'/></interface><interface type='user'><mac address='52:54:00:00:00:01'/></interface>",
      /already used/,
    ],
    ["<interface type='ethernet'><target dev='a/b'/></interface>", /invalid target device/],
    ["<interface type='user'><boot order='1'/></interface><interface type='user'><boot order='1'/></interface>", /boot order 1 is already used/],
  ])('refuses invalid %s with XmlError', (nic, message) => {
    const err = failureOf(() => parseDomainXml(domainXml(nic)));
    expect(err.type).toBe('XmlError');
    expect(err.message).toMatch(message);
  });
});

describe('interface on the command line (pure code)', () => {
  it('builds user and tap netdevs with each model, MAC, slot and boot index', () => {
    const def = parseDomainXml(
      domainXml(
        "<interface type='user'><mac address='52:54:00:00:00:01'/></interface>" +
          "<interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='br0'/><model type='virtio'/><boot order='1'/>" +
          "<address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></interface>" +
          "<interface type='ethernet'><mac address='52:54:00:00:00:03'/><model type='e1000e'/><alias name='ua-lan'/></interface>",
      ),
    );
    const args = buildQemuArgs(def, { ...paths, taps: [undefined, 'vnet0', 'tap9'] });
    const pairs = (flag: string) => args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []));
    expect(pairs('-netdev')).toEqual([
      'user,id=hostnet0',
      'tap,id=hostnet1,ifname=vnet0,script=no,downscript=no',
      'tap,id=hostua-lan,ifname=tap9,script=no,downscript=no',
    ]);
    expect(pairs('-device')).toEqual(
      expect.arrayContaining([
        'rtl8139,netdev=hostnet0,id=net0,mac=52:54:00:00:00:01',
        'virtio-net-pci,netdev=hostnet1,id=net1,mac=52:54:00:00:00:02,bus=pci.0,addr=0x7,bootindex=1',
        'e1000e,netdev=hostua-lan,id=ua-lan,mac=52:54:00:00:00:03',
      ]),
    );
  });

  it('a tap interface without its host tap is an internal error, never a NIC left out', () => {
    const def = parseDomainXml(domainXml("<interface type='bridge'><source bridge='br0'/></interface>"));
    expect(failureOf(() => buildQemuArgs(def, paths)).type).toBe('InternalError');
  });
});

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('host taps with ip (root, own network namespace)', () => {
  const ns = `vmf-nictest-${process.pid}`;
  const runDir = mkdtempSync(join(tmpdir(), 'vmf-taps-'));
  const inNs = (args: string[]) => spawnSync('ip', ['netns', 'exec', ns, 'ip', ...args], { encoding: 'utf8' });
  afterAll(() => {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(runDir, { recursive: true, force: true });
  });

  it('creates taps on the bridge, names the new one vnetN, leaves an existing named tap alone and removes only its own', async () => {
    expect(spawnSync('ip', ['netns', 'add', ns]).status).toBe(0);
    expect(inNs(['link', 'add', 'br9', 'type', 'bridge']).status).toBe(0);
    expect(inNs(['tuntap', 'add', 'dev', 'mine0', 'mode', 'tap']).status).toBe(0);
    // HostTaps runs `ip` in its own process's namespace: run it in a child inside ns.
    const script = `
            import { parseDomainXml } from '${process.cwd()}/src/domain/index.ts';
      import { HostTaps } from '${process.cwd()}/src/host/taps.ts';
      const taps = new HostTaps(${JSON.stringify(runDir)}, { info() {}, warn() {} });
      const def = parseDomainXml(\`<domain type='qemu'><name>t</name><memory>65536</memory><os><type>hvm</type></os><devices>
        <interface type='bridge'><source bridge='br9'/></interface><interface type='ethernet'><target dev='mine0'/></interface>
        <interface type='user'/><interface type='ethernet'><target dev='named1'/></interface></devices></domain>\`);
      const step = process.argv[2];
      if (step === 'prepare') console.log(JSON.stringify(await taps.prepare('t', def)));
      if (step === 'bad') { try { await taps.prepare('u', { ...def, devices: { ...def.devices, interfaces: [{ type: 'bridge', mac: '52:54:00:00:00:09', sourceBridge: 'nobr' }] } }); } catch (e) { console.log(e.type + ' ' + e.message); } }
      if (step === 'orphans') taps.cleanOrphans(new Set());
    `;
    const scriptFile = join(runDir, 'taps-step.mts');
    writeFileSync(scriptFile, script);
    const node = (step: string) => {
      const r = spawnSync('ip', ['netns', 'exec', ns, 'npx', 'tsx', scriptFile, step], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    expect(JSON.parse(node('prepare'))).toEqual(['vnet0', 'mine0', null, 'named1']);
    expect(inNs(['-d', 'link', 'show', 'dev', 'vnet0']).stdout).toMatch(/master br9/);
    expect(inNs(['link', 'show', 'dev', 'named1']).status).toBe(0);
    expect(existsSync(ledgerPath(runDir, 't'))).toBe(true);
    expect(node('bad')).toMatch(/OperationFailed bridge 'nobr' does not exist/);
    // A worker that died left its ledger: the next one's reconnect removes what it lists, and only that.
    node('orphans');
    expect(inNs(['link', 'show', 'dev', 'vnet0']).status).not.toBe(0);
    expect(inNs(['link', 'show', 'dev', 'named1']).status).not.toBe(0);
    expect(inNs(['link', 'show', 'dev', 'mine0']).status).toBe(0);
    expect(existsSync(ledgerPath(runDir, 't'))).toBe(false);
  });
});
