// Guest lifecycle as operators know it, on a real host worker with real QEMU and the
// Linux test guest: shutdown (ACPI power button) reaches shutoff, a guest that
// ignores the button makes `shutdown --timeout` fail typed and stay running, reboot
// and reset boot the guest again in the same QEMU, a panic follows <on_crash>, the
// watchdog fires its action, and a reboot asked for before a worker restart still
// resets the guest afterwards.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import { parseDomainXml } from '../src/domain/index.js';
import { formatStatus, parseStatus, readStatus } from '../src/host/status-file.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';
import { waitFor } from '../src/support/wait.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { failureOf } from './helpers/workflow-failure.js';
import { guestCmdline, linuxGuest, waitForSerial, type GuestOptions } from './helpers/linux-guest.js';
import { jsonOf, vmferry, type CliEnv } from './helpers/vmferry-cli.js';

const cluster = new TestCluster();
const HOST = 'gl-a';
const files = mkdtempSync(join(tmpdir(), 'vmf-gl-'));
let cli: CliEnv;
const BOOT_MS = 120_000;

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

const info = async (name: string): Promise<DomainInfo> => domainOf(await cluster.op(HOST, { op: 'info', name }));

interface LinuxDomain {
  name: string;
  serial: string;
  on?: { poweroff?: string; reboot?: string; crash?: string };
  guest?: GuestOptions;
  devices?: string;
}

function linuxXml(d: LinuxDomain): string {
  const g = linuxGuest();
  return `<domain type='qemu'>
  <name>${d.name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${g.kernel}</kernel>
    <initrd>${g.initrd}</initrd>
    <cmdline>${guestCmdline(d.guest)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>${d.on?.poweroff ?? 'destroy'}</on_poweroff>
  <on_reboot>${d.on?.reboot ?? 'restart'}</on_reboot>
  <on_crash>${d.on?.crash ?? 'destroy'}</on_crash>
  <devices>
    <serial type='file'><source path='${d.serial}'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>${d.devices ?? ''}
  </devices>
</domain>
`;
}

/** Defines and starts a Linux guest, and waits for its first readiness marker. */
async function bootLinux(name: string, opts: Omit<LinuxDomain, 'name' | 'serial'> = {}): Promise<{ serial: string; info: DomainInfo }> {
  const serial = join(files, `${name}.log`);
  await cluster.op(HOST, { op: 'define', xml: linuxXml({ name, serial, ...opts }) });
  const started = domainOf(await cluster.op(HOST, { op: 'start', name }));
  const text = await waitForSerial(serial, /VMFERRY-GUEST-(READY|FAILED)/, BOOT_MS);
  expect(text).not.toMatch(/VMFERRY-GUEST-FAILED/);
  return { serial, info: started };
}

const workerLogs = (): Record<string, unknown>[] => cluster.hosts.get(HOST)!.worker!.logs;

const readyCount = (serial: string): number => (readFileSync(serial, 'utf8').match(/VMFERRY-GUEST-READY/g) ?? []).length;

async function waitForState(name: string, state: string, reason?: string, timeoutMs = 60_000): Promise<DomainInfo> {
  return await waitFor(
    `${name} ${state}${reason ? ` (${reason})` : ''}`,
    async () => {
      const i = await info(name);
      return i.state === state && (reason === undefined || i.reason === reason) ? i : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

async function remove(name: string): Promise<void> {
  const i = await info(name).catch(() => undefined);
  if (i && i.state !== 'shutoff') await cluster.op(HOST, { op: 'destroy', name });
  if (i?.persistent) await cluster.op(HOST, { op: 'undefine', name });
}

beforeAll(async () => {
  linuxGuest();
  await cluster.connect();
  await Promise.all([cluster.startHost(HOST), cluster.startControl()]);
  cli = { address: cluster.address, host: HOST };
});

afterAll(async () => {
  await cluster.removeAllDomains([HOST]).catch(() => undefined);
  await cluster.stop();
  rmSync(files, { recursive: true, force: true });
});

describe('guest lifecycle (real QEMU, Linux test guest)', () => {
  it('shutdown --timeout: the guest powers off on the ACPI button and the domain reaches shutoff (shutdown)', async () => {
    const { serial, info: started } = await bootLinux('gl-shut');
    const r = await vmferry(cli, 'shutdown', 'gl-shut', '--timeout', '90', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(jsonOf<DomainInfo>(r)).toMatchObject({ name: 'gl-shut', state: 'shutoff', reason: 'shutdown' });
    expect(readFileSync(serial, 'utf8')).toMatch(/VMFERRY-GUEST-POWEROFF/);
    const dominfo = await vmferry(cli, 'dominfo', 'gl-shut');
    expect(dominfo.stdout).toMatch(/State:\s+shutoff/);
    expect(dominfo.stdout).toMatch(/Reason:\s+shutdown/);
    expect((await vmferry(cli, 'list', '--all')).stdout).toMatch(/gl-shut\s+shutoff/);
    // QEMU is gone and so is its status file.
    expect(existsSync(started.qmpSocket!)).toBe(false);
    expect(existsSync(join(cluster.hosts.get(HOST)!.baseDir, 'run', 'gl-shut.xml'))).toBe(false);
    await remove('gl-shut');
  });

  it('shutdown of a guest that ignores the power button: at once by default; with --timeout a typed OperationTimeout, the domain still running', async () => {
    await cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'gl-deaf' }) });
    await cluster.op(HOST, { op: 'start', name: 'gl-deaf' });
    const atOnce = await vmferry(cli, 'shutdown', 'gl-deaf');
    expect(atOnce.code, atOnce.stderr).toBe(0);
    expect(atOnce.stdout).toMatch(/is being shutdown/);
    const t0 = Date.now();
    const r = await vmferry(cli, 'shutdown', 'gl-deaf', '--timeout', '3', '--json');
    expect(r.code).not.toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3000);
    expect(jsonOf(r)).toMatchObject({ error: { type: 'OperationTimeout', message: expect.stringMatching(/did not shut down/) } });
    expect(await info('gl-deaf')).toMatchObject({ state: 'running' });
    const bad = await vmferry(cli, 'shutdown', 'gl-deaf', '--timeout', 'soon');
    expect(bad.code).toBe(2);
    await remove('gl-deaf');
  });

  it('reboot: the power button, then a reset instead of a stop; the guest boots again in the same QEMU', async () => {
    const { serial, info: started } = await bootLinux('gl-reboot');
    const r = await vmferry(cli, 'reboot', 'gl-reboot');
    expect(r.code, r.stderr).toBe(0);
    await waitForSerial(serial, /VMFERRY-GUEST-POWEROFF[\s\S]*VMFERRY-GUEST-READY/, BOOT_MS);
    const after = await info('gl-reboot');
    expect(after).toMatchObject({ state: 'running', reason: 'booted', pid: started.pid });
    expect(readStatus(join(cluster.hosts.get(HOST)!.baseDir, 'run'), 'gl-reboot').fakeReboot).toBeUndefined();
    await remove('gl-reboot');
  });

  it('reset: the guest starts over at once (no power-off on the console), same QEMU', async () => {
    const { serial, info: started } = await bootLinux('gl-reset');
    const r = await vmferry(cli, 'reset', 'gl-reset');
    expect(r.code, r.stderr).toBe(0);
    await waitFor('second boot', () => readyCount(serial) >= 2, { timeoutMs: BOOT_MS, intervalMs: 250 });
    expect(readFileSync(serial, 'utf8')).not.toMatch(/VMFERRY-GUEST-POWEROFF/);
    expect(await info('gl-reset')).toMatchObject({ state: 'running', pid: started.pid });
    await remove('gl-reset');
  });

  it('a reboot asked for before a worker restart still resets the guest after it (the intention is in the status file)', async () => {
    const { serial, info: started } = await bootLinux('gl-rb-restart');
    // Paused, the guest cannot act on the button until resumed: the worker restarts in between.
    await cluster.op(HOST, { op: 'suspend', name: 'gl-rb-restart' });
    await cluster.op(HOST, { op: 'reboot', name: 'gl-rb-restart' });
    const runDir = join(cluster.hosts.get(HOST)!.baseDir, 'run');
    expect(readStatus(runDir, 'gl-rb-restart').fakeReboot).toBe(true);
    await cluster.hosts.get(HOST)!.worker!.stop();
    await cluster.startHost(HOST);
    await cluster.op(HOST, { op: 'resume', name: 'gl-rb-restart' });
    await waitForSerial(serial, /VMFERRY-GUEST-POWEROFF[\s\S]*VMFERRY-GUEST-READY/, BOOT_MS);
    expect(await info('gl-rb-restart')).toMatchObject({ state: 'running', reason: 'booted', pid: started.pid });
    await remove('gl-rb-restart');
  });

  const PANIC = "\n    <panic model='isa'/>";

  it('a guest panic with on_crash destroy: QEMU stopped, shutoff (crashed)', async () => {
    const { info: started } = await bootLinux('gl-crash-d', { guest: { panicMs: 500 }, devices: PANIC, on: { crash: 'destroy' } });
    const after = await waitForState('gl-crash-d', 'shutoff');
    expect(after.reason).toBe('crashed');
    expect(existsSync(started.qmpSocket!)).toBe(false);
    await remove('gl-crash-d');
  });

  it('a guest panic with on_crash restart: the guest boots again in the same QEMU', async () => {
    const { serial, info: started } = await bootLinux('gl-crash-r', { guest: { panicMs: 3000 }, devices: PANIC, on: { crash: 'restart' } });
    await waitForSerial(serial, /VMFERRY-GUEST-PANIC[\s\S]*VMFERRY-GUEST-READY/, BOOT_MS);
    expect(await info('gl-crash-r')).toMatchObject({ pid: started.pid });
    // The worker reset it (the kernel's own panic=-1 reboot would look the same on the console).
    expect(workerLogs()).toContainEqual(expect.objectContaining({ domain: 'gl-crash-r', what: 'panic', action: 'restart' }));
    await remove('gl-crash-r');
  });

  it('a guest panic with on_crash preserve: QEMU kept, crashed (panicked) in dominfo, list and the status file; reset then leaves it paused (crashed)', async () => {
    const { info: started } = await bootLinux('gl-crash-p', { guest: { panicMs: 500 }, devices: PANIC, on: { crash: 'preserve' } });
    await waitForState('gl-crash-p', 'crashed', 'panicked');
    // The CLI reads the host's inventory, which the worker reports as the status file changes.
    await waitFor('list to show gl-crash-p crashed', async () => /gl-crash-p\s+crashed/.test((await vmferry(cli, 'list')).stdout) || undefined, {
      timeoutMs: 10_000,
      intervalMs: 300,
    });
    expect(readStatus(join(cluster.hosts.get(HOST)!.baseDir, 'run'), 'gl-crash-p')).toMatchObject({ state: 'crashed', reason: 'panicked', pid: started.pid });
    const shut = await vmferry(cli, 'shutdown', 'gl-crash-p');
    expect(shut.code).toBe(2);
    expect(domainOf(await cluster.op(HOST, { op: 'reset', name: 'gl-crash-p' }))).toMatchObject({ state: 'paused', reason: 'crashed' });
    await remove('gl-crash-p');
  });

  it('the watchdog fires its action: pause leaves the guest paused (watchdog)', async () => {
    const { info: started } = await bootLinux('gl-wd', { guest: { watchdogS: 2 }, devices: "\n    <watchdog model='i6300esb' action='pause'/>" });
    const after = await waitForState('gl-wd', 'paused', 'watchdog');
    expect(after.pid).toBe(started.pid);
    expect(workerLogs()).toContainEqual(expect.objectContaining({ domain: 'gl-wd', event: 'WATCHDOG', data: expect.objectContaining({ action: 'pause' }) }));
    await remove('gl-wd');
  });

  it('the watchdog fires its action: reset boots the guest again', async () => {
    const { serial } = await bootLinux('gl-wd-r', { guest: { watchdogS: 2 }, devices: "\n    <watchdog model='i6300esb' action='reset'/>" });
    await waitFor('second boot', () => readyCount(serial) >= 2, { timeoutMs: BOOT_MS, intervalMs: 250 });
    await remove('gl-wd-r');
  });

  it('refuses the lifecycle actions QEMU cannot honour with ConfigUnsupported', async () => {
    for (const on of [{ poweroff: 'preserve' }, { reboot: 'rename-restart' }, { crash: 'coredump-destroy' }, { poweroff: 'restart', reboot: 'destroy' }]) {
      const err = await failureOf(cluster.op(HOST, { op: 'define', xml: linuxXml({ name: 'gl-bad', serial: join(files, 'bad.log'), on }) }));
      expect(err.type, JSON.stringify(on)).toBe('ConfigUnsupported');
    }
  });
});

describe('guest lifecycle (pure code)', () => {
  it('QEMU only pauses on a guest poweroff or panic; a reboot is a reset unless on_reboot is destroy', () => {
    const args = (on: LinuxDomain['on']): string => {
      const a = buildQemuArgs(
        parseDomainXml(guestXml({ name: 'p1' }).replace(/<on_reboot>\w+<\/on_reboot>/, `<on_reboot>${on?.reboot ?? 'restart'}</on_reboot>`)),
        {
          qmpSocket: '/run/p1.qmp',
          memoryBackingFile: '/dev/shm/p1',
        },
      );
      return a[a.indexOf('-action') + 1]!;
    };
    expect(args({ reboot: 'restart' })).toBe('shutdown=pause,reboot=reset,panic=pause');
    expect(args({ reboot: 'destroy' })).toBe('shutdown=pause,reboot=shutdown,panic=pause');
  });

  it('a pending reboot survives the status file round trip', () => {
    const st = { state: 'running' as const, reason: 'booted', pid: 42, qmpSocket: '/run/x.qmp', domainXml: '<domain/>' };
    expect(parseStatus(formatStatus({ ...st, fakeReboot: true })).fakeReboot).toBe(true);
    expect(parseStatus(formatStatus(st)).fakeReboot).toBeUndefined();
  });
});
