// The Linux test guest on plain QEMU (TCG), before vmferry builds NICs itself: it boots from
// the kernel and initrd setup built, joins a bridged segment in host A's namespace, streams its
// counter to a client in a third namespace without a gap, its memory dirtier runs, and every
// disk record it reported durable is in the image after an ACPI power-off.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGuestNetwork, type GuestNetwork } from './helpers/guest-network.js';
import { checkDiskRecords, connectCounter, guestCmdline, lastDiskAck, linuxGuest, waitForSerial, type CounterClient } from './helpers/linux-guest.js';

const dir = mkdtempSync(join(tmpdir(), 'vmf-linux-guest-'));
const serialLog = join(dir, 'serial.log');
const qmpPath = join(dir, 'qmp.sock');
const disk = join(dir, 'disk.raw');
let net: GuestNetwork | undefined;
let qemu: ChildProcess | undefined;
let exited: Promise<number | null> | undefined;
let client: CounterClient | undefined;
let bootStarted = 0;

/** One QMP command on a fresh connection (QEMU allows one monitor client at a time). */
function qmp(command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(qmpPath);
    let buf = '';
    let step = 0;
    s.on('data', (d) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const msg = JSON.parse(buf.slice(0, i)) as { QMP?: unknown; return?: unknown; error?: { desc: string } };
        buf = buf.slice(i + 1);
        if (msg.error) {
          s.destroy();
          return reject(new Error(`QMP ${command}: ${msg.error.desc}`));
        }
        if (msg.QMP) s.write('{"execute":"qmp_capabilities"}\n');
        else if (msg.return !== undefined && step++ === 0) s.write(JSON.stringify({ execute: command }) + '\n');
        else if (msg.return !== undefined) {
          s.end();
          return resolve();
        }
      }
    });
    s.on('error', reject);
  });
}

beforeAll(() => {
  const guest = linuxGuest();
  net = createGuestNetwork();
  const tap = net.addTap(net.a);
  truncateSync((writeFileSync(disk, ''), disk), 16 * 1024 * 1024);
  const cmdline = guestCmdline({
    ip: `${net.guestAddr(0)}/${net.prefixLen}`,
    disk: '/dev/vda',
    diskIntervalMs: 50,
    dirtyMib: 16,
    dirtyRateMibS: 32,
    dirtyReportS: 1,
  });
  // prettier-ignore
  const args = [
    '-nodefaults', '-machine', 'pc,accel=tcg', '-m', '256', '-display', 'none',
    '-serial', `file:${serialLog}`, '-qmp', `unix:${qmpPath},server=on,wait=off`,
    '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', cmdline,
    '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:4c:47:01',
    '-drive', `file=${disk},format=raw,if=none,id=d0`, '-device', 'virtio-blk-pci,drive=d0',
  ];
  const [program, ...rest] = [...net.prefix(net.a), 'qemu-system-x86_64', ...args] as [string, ...string[]];
  bootStarted = Date.now();
  // `ip netns exec` execs QEMU: the child's PID is QEMU's own.
  const child = spawn(program, rest, { stdio: ['ignore', 'ignore', 'pipe'] });
  qemu = child;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  exited = new Promise((resolve) =>
    child.on('exit', (code) => {
      if (code) console.error(`QEMU exited ${code}: ${stderr}`);
      resolve(code);
    }),
  );
});

afterAll(async () => {
  await client?.close();
  if (qemu?.pid && qemu.exitCode === null && qemu.signalCode === null) {
    process.kill(qemu.pid, 'SIGKILL');
    await exited;
  }
  net?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('Linux test guest on plain QEMU', () => {
  it('boots, streams its counter to a client in a third namespace with no gap, dirties memory, and keeps every acknowledged disk write', async () => {
    const ready = await waitForSerial(serialLog, /^VMFERRY-GUEST-(READY|FAILED).*$/m, 90_000, exited);
    expect(ready).not.toMatch(/VMFERRY-GUEST-FAILED/);
    const readyAt = Date.now();

    client = connectCounter(net!.prefix(net!.client), net!.guestAddr(0));
    const first = await client.next(20_000);
    console.log(
      `Linux guest (TCG): boot to ready marker ${((readyAt - bootStarted) / 1000).toFixed(2)} s, ` +
        `boot to first counter line ${((first.at - bootStarted) / 1000).toFixed(2)} s`,
    );
    // 200 ticks at 10 ms: about 2 s of stream.
    await client.waitForSeq(first.seq + 200, 30_000);
    const report = client.report();
    console.log(`counter: ${report.count} lines, seq ${report.firstSeq}..${report.lastSeq}, longest pause ${report.longestPauseMs.toFixed(1)} ms`);
    expect(report.gaps).toEqual([]);
    expect(report.lastSeq).toBeGreaterThanOrEqual(first.seq + 200);
    await client.close();
    // 16 MiB at 32 MiB/s: a pass every half second or so, reported each second.
    await waitForSerial(serialLog, /^VMFERRY-DIRTY passes=[1-9]/m, 20_000, exited);

    // The ACPI power button: the guest's acpid powers off, QEMU exits on its own.
    await qmp('system_powerdown');
    const serial = await waitForSerial(serialLog, /^VMFERRY-GUEST-POWEROFF/m, 30_000);
    expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 30_000))])).toBe(0);

    const acked = lastDiskAck(serial);
    expect(acked).toBeGreaterThan(0);
    const check = await checkDiskRecords(disk, acked);
    console.log(`disk: ${acked} records acknowledged, highest on disk ${check.highest}, ${check.missing.length} missing`);
    expect(check.missing).toEqual([]);
    expect(check.highest).toBeGreaterThanOrEqual(acked);
  });
});
