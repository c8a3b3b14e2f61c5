// <cpu>: parse and format (every mode, feature policies, topology, NUMA cells,
// libvirt's empty host-model <model/>), the command line for each, the host
// probe of the real QEMU, the checks made from it, and host-model expansion:
// from the probe (how a host-model domain is started) and from a real running
// TCG guest still running `max` (one an older worker started), both by the same
// choice of model, and the expanded CPU must start under QEMU's `enforce`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDomainXml, parseDomainXml, type DomainDef } from '../src/domain/index.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';
import { expandHostModelCpu, expandHostModelFromProbe, pickCpuModel } from '../src/qemu/cpu-expansion.js';
import { checkCpuBuildable, checkCpuRunnable, cpuArgs } from '../src/qemu/devices/cpu.js';
import { launchQemu } from '../src/qemu/launch.js';
import { probeQemu, type QemuProbe } from '../src/qemu/probe.js';
import { currentMachineType } from '../src/qemu/capabilities-probe.js';
import { resolveMachine, type ProbedCommand } from '../src/common/qemu-capabilities.js';
import { qemuInfo } from '../src/host/host-cpu.js';
import { terminate, waitForExit } from '../src/support/proc.js';

const dir = mkdtempSync(join(tmpdir(), 'vmf-cpu-'));
let probe: QemuProbe;

beforeAll(async () => {
  probe = await probeQemu('/usr/bin/qemu-system-x86_64', dir, { accels: ['tcg'] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function domain(cpu: string, opts: { vcpus?: number; memory?: string; type?: string } = {}): string {
  return `<domain type='${opts.type ?? 'qemu'}'>
  <name>cpu1</name>
  <uuid>8c5a1f3e-2a77-4b7e-9d1a-0f6a2b9c1d11</uuid>
${opts.memory ?? "  <memory unit='MiB'>64</memory>\n"}  <vcpu>${opts.vcpus ?? 1}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  ${cpu}
  <devices>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

function cpuOpt(def: DomainDef, accel: 'kvm' | 'tcg' = 'tcg'): string | undefined {
  const args = cpuArgs(def, accel, probe.accels.tcg);
  return args[1];
}

describe('<cpu> in the domain model', () => {
  it("parses libvirt's host-model form and formats it back byte for byte", () => {
    const xml = domain("<cpu mode='host-model' check='partial'><model fallback='allow'/></cpu>");
    const def = parseDomainXml(xml);
    expect(def.cpu).toEqual({ mode: 'host-model', check: 'partial', fallback: 'allow' });
    expect(formatDomainXml(def)).toBe(xml);
  });

  it('keeps mode, match, check, model, fallback, every feature policy, topology and NUMA cells through a round trip', () => {
    const cpu = `<cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>Westmere</model>
    <topology sockets='1' dies='1' cores='2' threads='1'/>
    <feature policy='require' name='avx2'/>
    <feature policy='force' name='fma'/>
    <feature policy='optional' name='bmi1'/>
    <feature policy='disable' name='aes'/>
    <feature policy='forbid' name='x2apic'/>
    <feature name='movbe'/>
    <numa>
      <cell id='0' cpus='0' memory='32' unit='MiB'/>
      <cell id='1' cpus='1' memory='32768' unit='KiB'/>
    </numa>
  </cpu>`;
    const xml = domain(cpu, { vcpus: 2 });
    const def = parseDomainXml(xml);
    expect(def.cpu).toMatchObject({
      mode: 'custom',
      match: 'exact',
      check: 'full',
      model: 'Westmere',
      fallback: 'forbid',
      topology: { sockets: 1, dies: 1, cores: 2, threads: 1 },
      numaCells: [
        { id: 0, cpus: '0', memoryKiB: 32768 },
        { id: 1, cpus: '1', memoryKiB: 32768 },
      ],
    });
    expect(def.cpu!.features!.map((f) => `${f.policy ?? '-'}:${f.name}`)).toEqual([
      'require:avx2',
      'force:fma',
      'optional:bmi1',
      'disable:aes',
      'forbid:x2apic',
      '-:movbe',
    ]);
    expect(formatDomainXml(def)).toBe(xml);
    // An edit rewrites only what changed.
    def.cpu!.features![3] = { policy: 'require', name: 'aes' };
    const edited = formatDomainXml(def);
    expect(edited).toBe(xml.replace("<feature policy='disable' name='aes'/>", "<feature policy='require' name='aes'/>"));
  });

  it('takes the memory from the NUMA cells when <memory> is left out (libvirt rule)', () => {
    const xml = domain("<cpu><numa><cell id='0' cpus='0' memory='48' unit='MiB'/><cell id='1' cpus='1' memory='16' unit='MiB'/></numa></cpu>", {
      vcpus: 2,
      memory: '',
    });
    const def = parseDomainXml(xml);
    expect(def.memoryKiB).toBe(64 * 1024);
    expect(parseDomainXml(formatDomainXml(def)).memoryKiB).toBe(64 * 1024);
  });

  it.each([
    ['bad policy', "<cpu><model>qemu64</model><feature policy='maybe' name='aes'/></cpu>", /cpu feature policy 'maybe'/],
    ['bad mode', "<cpu mode='host'/>", /cpu mode 'host'/],
    ['bad check', "<cpu check='strict'/>", /cpu check 'strict'/],
    ['feature twice', "<cpu><model>qemu64</model><feature name='aes'/><feature name='aes'/></cpu>", /listed twice/],
    ['topology mismatch', "<cpu><topology sockets='2' cores='2' threads='1'/></cpu>", /topology gives 4 vCPUs but <vcpu> is 1/],
  ])('refuses %s with an XML error', (_what, cpu, message) => {
    expect(() => parseDomainXml(domain(cpu))).toThrow(message);
  });
});

describe('<cpu> on the command line', () => {
  it('builds each mode: host-passthrough and host-model under KVM, max under TCG, custom with enforce', () => {
    expect(cpuOpt(parseDomainXml(domain("<cpu mode='host-passthrough'/>", { type: 'kvm' })), 'kvm')).toBe('host');
    expect(cpuOpt(parseDomainXml(domain("<cpu mode='host-model'><model fallback='allow'/></cpu>", { type: 'kvm' })), 'kvm')).toBe('host');
    expect(cpuOpt(parseDomainXml(domain("<cpu mode='host-model'><model fallback='allow'/></cpu>")))).toBe('max');
    expect(cpuOpt(parseDomainXml(domain("<cpu mode='maximum'/>")))).toBe('max');
    expect(cpuOpt(parseDomainXml(domain("<cpu mode='custom'><model>Westmere</model></cpu>")))).toBe('Westmere,enforce');
    expect(cpuOpt(parseDomainXml(domain("<cpu mode='custom' check='none'><model>Westmere</model></cpu>")))).toBe('Westmere');
  });

  it('refuses host-passthrough for a TCG domain, as libvirt does', () => {
    expect(() => cpuOpt(parseDomainXml(domain("<cpu mode='host-passthrough'/>")))).toThrow(/host-passthrough' needs a kvm domain/);
  });

  it('turns feature policies into properties: require/force on, disable/forbid off, optional only where the host has it', () => {
    const def = parseDomainXml(
      domain(`<cpu><model>Westmere</model><feature policy='require' name='avx2'/><feature policy='force' name='fma'/><feature policy='disable' name='aes'/>
    <feature policy='forbid' name='x2apic'/><feature policy='optional' name='bmi1'/><feature policy='optional' name='pcid'/><feature name='movbe'/></cpu>`),
    );
    expect(probe.accels.tcg!.hostCpuFeatures.bmi1).toBe(true);
    expect(probe.accels.tcg!.hostCpuFeatures.pcid).toBe(false);
    expect(cpuOpt(def)).toBe('Westmere,enforce,avx2=on,fma=on,aes=off,x2apic=off,bmi1=on,movbe=on');
  });

  it('builds the topology into -smp and NUMA cells into memory backends and -numa nodes', () => {
    const def = parseDomainXml(
      domain(
        `<cpu><topology sockets='2' cores='2' threads='1'/><numa><cell id='0' cpus='0-1' memory='32' unit='MiB'/><cell id='1' cpus='2,3' memory='32' unit='MiB'/></numa></cpu>`,
        {
          vcpus: 4,
          memory: '',
        },
      ),
    );
    const args = buildQemuArgs(def, { qmpSocket: '/tmp/x.qmp' });
    expect(args[args.indexOf('-smp') + 1]).toBe('4,maxcpus=4,sockets=2,cores=2,threads=1');
    const numa = args.flatMap((a, i) => (a === '-numa' || (a === '-object' && args[i + 1]!.startsWith('memory-backend-ram')) ? [args[i + 1]] : []));
    expect(numa).toEqual([
      'memory-backend-ram,id=ram-node0,size=32768K',
      'node,nodeid=0,cpus=0-1,memdev=ram-node0',
      'memory-backend-ram,id=ram-node1,size=32768K',
      'node,nodeid=1,cpus=2-3,memdev=ram-node1',
    ]);
  });

  it('refuses what <cpu> holds and vmferry does not build, naming it', () => {
    const cases: [string, RegExp][] = [
      ["<cpu mode='host-model'><cache mode='passthrough'/></cpu>", /\/domain\/cpu\/cache inside <cpu> is not supported/],
      ['<cpu><model>qemu64</model><vendor>Intel</vendor></cpu>', /\/domain\/cpu\/vendor/],
      ["<cpu mode='host-passthrough' migratable='on'/>", /\/domain\/cpu\/@migratable/],
      ["<cpu><numa><cell id='0' cpus='0' memory='64' unit='MiB' memAccess='shared'/></numa></cpu>", /\/domain\/cpu\/numa\/cell\/@memAccess/],
      ["<cpu><feature policy='require' name='aes'/></cpu>", /CPU features need a <model>/],
    ];
    for (const [cpu, message] of cases) {
      const def = parseDomainXml(domain(cpu, { type: cpu.includes('passthrough') ? 'kvm' : 'qemu', memory: cpu.includes('numa') ? '' : undefined }));
      expect(() => checkCpuBuildable(def), cpu).toThrow(message);
      expect(() => checkCpuBuildable(def)).toThrow(expect.objectContaining({ type: 'ConfigUnsupported' }));
    }
  });
});

describe('host probe and the checks made from it (real QEMU, TCG)', () => {
  /**
   * A feature Skylake-Client has and this QEMU's TCG cannot give, from the probe: x2apic on
   * QEMU 7.2, which TCG emulates since 8.x, so not a fixed name.
   */
  const lacking = (): string => {
    const tcg = probe.accels.tcg!;
    const f = tcg.cpuModels.find((m) => m.name === 'Skylake-Client')?.unavailableFeatures.find((n) => tcg.hostCpuFeatures[n] === false);
    if (f === undefined) throw new Error('no feature of Skylake-Client that TCG lacks');
    return f;
  };

  it('reports version, machines, CPU models with unavailable features and the host model', () => {
    expect(probe.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(probe.machines.some((m) => m.name === 'pc' || m.alias === 'pc')).toBe(true);
    const tcg = probe.accels.tcg!;
    expect(tcg.hostModelName).toBe('max');
    expect(tcg.cpuModels.find((m) => m.name === 'qemu64')?.unavailableFeatures).toEqual([]);
    expect(tcg.cpuModels.find((m) => m.name === 'Skylake-Client')?.unavailableFeatures.length).toBeGreaterThan(0);
    expect(tcg.hostCpuFeatures[lacking()]).toBe(false);
    expect(tcg.hostCpuFeatures.sse2).toBe(true);
  });

  it.each([
    ['an unknown model', '<cpu><model>NoSuchCpu</model></cpu>', /CPU model 'NoSuchCpu' .* is not known/],
    ['a model TCG cannot run', '<cpu><model>Skylake-Client</model></cpu>', /CPU model 'Skylake-Client' .* cannot run .*unavailable features .*LACKING/],
    ['a required feature TCG lacks', "<cpu><model>Westmere</model><feature policy='require' name='LACKING'/></cpu>", /requires CPU features LACKING/],
    ['a forbidden feature TCG has', "<cpu><model>Westmere</model><feature policy='forbid' name='aes'/></cpu>", /forbids CPU features aes/],
    ['a feature QEMU does not know', "<cpu><model>Westmere</model><feature name='warp-drive'/></cpu>", /CPU features warp-drive .* not known/],
  ])('refuses %s with ConfigUnsupported', (_what, cpuTemplate, messageTemplate) => {
    const cpu = cpuTemplate.replace('LACKING', lacking());
    const message = new RegExp(messageTemplate.source.replace('LACKING', lacking()));
    const def = parseDomainXml(domain(cpu));
    expect(() => checkCpuRunnable(def, probe)).toThrow(message);
    expect(() => checkCpuRunnable(def, probe)).toThrow(expect.objectContaining({ type: 'ConfigUnsupported' }));
  });

  it('reports what the QEMU can do for migration, from the QMP schema, and hostInfo carries it', () => {
    // Aliases resolve to versioned types of this QEMU, whatever its version.
    expect(resolveMachine(probe.machines, 'pc')).toMatch(/^pc-i440fx-\d+\.\d+$/);
    expect(resolveMachine(probe.machines, 'q35')).toMatch(/^pc-q35-\d+\.\d+$/);
    const m = probe.migration;
    for (const c of ['events', 'xbzrle', 'auto-converge', 'postcopy-ram', 'pause-before-switchover', 'multifd', 'return-path'])
      expect(m.migrationCapabilities).toContain(c);
    for (const p of ['max-bandwidth', 'downtime-limit', 'multifd-channels', 'tls-creds', 'announce-rounds']) expect(m.migrationParameters).toContain(p);
    // Output-only fields of MigrationParameters are not settable, so not listed.
    expect(m.migrationParameters).not.toContain('status');
    for (const c of ['migrate-incoming', 'migrate-recover', 'nbd-server-start', 'block-dirty-bitmap-add', 'blockdev-mirror'])
      expect(m.commands[c as ProbedCommand], c).toBe(true);
    const info = qemuInfo(probe);
    expect(info.machineAliases.pc).toBe(resolveMachine(probe.machines, 'pc'));
    expect(info.machines).toContain(info.machineAliases.pc);
    expect(info.migrationCapabilities).toEqual(m.migrationCapabilities);
    expect(info.commands).toContain('nbd-server-start');
  });

  it("accepts a runnable model, a disabled unavailable feature, and check='none' (QEMU only warns then)", () => {
    for (const cpu of [
      '<cpu><model>Westmere</model></cpu>',
      "<cpu><model>SandyBridge</model><feature policy='disable' name='x2apic'/><feature policy='disable' name='tsc-deadline'/></cpu>",
      "<cpu check='none'><model>Westmere</model><feature policy='require' name='x2apic'/></cpu>",
      "<cpu mode='host-model'><model fallback='allow'/></cpu>",
    ]) {
      expect(() => checkCpuRunnable(parseDomainXml(domain(cpu)), probe), cpu).not.toThrow();
    }
  });
});

describe('host-model expansion (real QEMU, TCG)', () => {
  async function run(def: DomainDef, tag: string) {
    const qmpSocket = join(dir, `${tag}.qmp`);
    const args = buildQemuArgs(def, { qmpSocket, cpuFacts: probe.accels.tcg });
    return await launchQemu({ binary: '/usr/bin/qemu-system-x86_64', args, qmpSocket, logFile: join(dir, `${tag}.log`) });
  }
  async function stop(l: { pid: number; qmp: { execute: (c: string) => Promise<unknown> } }) {
    await l.qmp.execute('quit').catch(() => undefined);
    await waitForExit(l.pid, 5000).catch(() => terminate(l.pid));
  }

  it('picks the closest candidate, the plain alias on a tie', () => {
    const cands: [string, string[]][] = [
      ['A-v1', ['a', 'b']],
      ['A', ['a', 'b']],
      ['B', ['a', 'c', 'd']],
    ];
    expect(pickCpuModel(new Set(['a', 'b', 'e']), cands)).toEqual({ model: 'A', require: ['e'], disable: [] });
    expect(pickCpuModel(new Set(['a', 'c']), cands)).toEqual({ model: 'B', require: [], disable: ['d'] });
    expect(pickCpuModel(new Set(['a']), [])).toBeUndefined();
  });

  it("expands from the host's probe into a usable model plus features; QEMU started from it under enforce has exactly those on", async () => {
    const def = parseDomainXml(domain("<cpu mode='host-model'><model fallback='allow'/><topology sockets='1' cores='1' threads='1'/></cpu>"));
    const expanded = expandHostModelFromProbe(def, probe.accels.tcg!, 'here');
    const cpu = expanded.cpu!;
    expect(cpu).toMatchObject({ mode: 'custom', match: 'exact', check: 'partial', model: expect.any(String), fallback: 'forbid', topology: def.cpu!.topology });
    expect(probe.accels.tcg!.cpuModels.find((m) => m.name === cpu.model)?.unavailableFeatures).toEqual([]);
    expect(cpuOpt(expanded)).toMatch(new RegExp(`^${cpu.model},enforce,`));
    const required = cpu.features!.filter((f) => f.policy === 'require').map((f) => f.name);
    expect(required).toContain('avx2');
    expect(() => checkCpuRunnable(expanded, probe)).not.toThrow();
    const l = await run(expanded, 'probe-expanded');
    try {
      // Started as `pc`, it runs the versioned type the alias stands for (what a migration pins on the destination).
      expect(await currentMachineType(l.qmp)).toBe(resolveMachine(probe.machines, 'pc'));
      const path = (await l.qmp.execute<{ 'qom-path': string }[]>('query-cpus-fast'))[0]!['qom-path'];
      // Every feature the host model has on is on in the running guest.
      for (const f of probe.accels.tcg!.hostModelFeatures) expect(await l.qmp.execute('qom-get', { path, property: f }), f).toBe(true);
      for (const f of cpu.features!.filter((x) => x.policy === 'disable'))
        expect(await l.qmp.execute('qom-get', { path, property: f.name }), f.name).toBe(false);
    } finally {
      await stop(l);
    }
  });

  it("keeps host-model's own features and settles optional ones by what the host has", () => {
    const def = parseDomainXml(
      domain(
        "<cpu mode='host-model'><model fallback='allow'/><feature policy='disable' name='avx2'/><feature policy='optional' name='bmi1'/><feature policy='optional' name='pcid'/></cpu>",
      ),
    );
    const cpu = expandHostModelFromProbe(def, probe.accels.tcg!, 'here').cpu!;
    const policies = new Map(cpu.features!.map((f) => [f.name, f.policy]));
    expect(policies.get('avx2')).toBe('disable');
    expect(policies.get('bmi1')).toBe('require');
    expect(policies.get('pcid')).toBe('disable');
    expect(cpu.features!.filter((f) => f.name === 'avx2')).toHaveLength(1);
  });

  it('a guest still running max (started by an older worker) expands from its live vCPU to the same CPU the probe gives; that CPU starts under enforce', async () => {
    const def = parseDomainXml(domain("<cpu mode='host-model'><model fallback='allow'/></cpu>"));
    const src = await run(def, 'src');
    let expanded;
    try {
      expanded = await expandHostModelCpu(src.qmp, def);
    } finally {
      await stop(src);
    }
    expect(expanded).toMatchObject({ mode: 'custom', match: 'exact', model: expect.any(String), fallback: 'forbid' });
    expect(expanded).toEqual(expandHostModelFromProbe(def, probe.accels.tcg!, 'here').cpu);
    const model = probe.accels.tcg!.cpuModels.find((m) => m.name === expanded!.model);
    expect(model?.unavailableFeatures).toEqual([]);
    const required = expanded!.features!.filter((f) => f.policy === 'require').map((f) => f.name);
    expect(required).toContain('avx2');
    const custom = { ...def, cpu: expanded };
    expect(() => checkCpuRunnable(custom, probe)).not.toThrow();
    const formatted = formatDomainXml(custom);
    expect(formatted).toContain(`<model fallback='forbid'>${expanded!.model}</model>`);
    // The destination's QEMU, started from the expanded definition, has every feature the source had on.
    const dst = await run(parseDomainXml(formatted), 'dst');
    try {
      const path = (await dst.qmp.execute<{ 'qom-path': string }[]>('query-cpus-fast'))[0]!['qom-path'];
      for (const f of required) expect(await dst.qmp.execute('qom-get', { path, property: f }), f).toBe(true);
      for (const f of expanded!.features!.filter((x) => x.policy === 'disable'))
        expect(await dst.qmp.execute('qom-get', { path, property: f.name })).toBe(false);
    } finally {
      await stop(dst);
    }
  });
});
