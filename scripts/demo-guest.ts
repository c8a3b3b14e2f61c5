// The demo's guest: the Linux test guest setup built (src/local/linux-guest.ts), booted by
// direct kernel boot, its workload's settings on the kernel command line (src/local/guest/init):
// with the demo network, a NIC on the demo bridge and the TCP counter on it; always a disk the
// guest's writer appends records to, on a path both simulated hosts see, and a file serial
// (append='on', so the QEMU a migration or restore starts keeps the same log), where the
// writer reports each durable record.
import { randomUUID } from 'node:crypto';
import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { LinuxGuest } from '../src/local/linux-guest.js';
import type { DemoNetwork } from './demo-network.js';

export const COUNTER_PORT = 5555;
export const DEMO_MAC = '52:54:00:d3:40:01';

export interface DemoGuestFiles {
  disk: string;
  serialLog: string;
}

export function demoGuestXml(name: string, guest: LinuxGuest, files: DemoGuestFiles, net: DemoNetwork | undefined): string {
  const words = ['console=ttyS0', 'panic=-1', 'quiet', 'vmferry.disk=/dev/vda', 'vmferry.disk_interval_ms=200'];
  if (net) words.push(`vmferry.ip=${net.guestAddr}/${net.prefixLen}`, `vmferry.port=${COUNTER_PORT}`, 'vmferry.interval_ms=100');
  const nic = net
    ? `
    <interface type='bridge'>
      <mac address='${DEMO_MAC}'/>
      <source bridge='${net.bridge}'/>
      <model type='virtio'/>
    </interface>`
    : '';
  // host-model: under TCG a named Intel model; QEMU's default qemu64 sends the guest kernel
  // down an AMD idle path that has panicked after live migration (test/linux-guest-migrate.test.ts).
  return `<domain type='qemu'>
  <name>${name}</name>
  <uuid>${randomUUID()}</uuid>
  <title>vmferry demo guest (Linux, ${guest.kernelRelease})</title>
  <memory unit='MiB'>256</memory>
  <currentMemory unit='MiB'>256</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <cpu mode='host-model'/>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${guest.kernel}</kernel>
    <initrd>${guest.initrd}</initrd>
    <cmdline>${words.join(' ')}</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source file='${files.disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>${nic}
    <serial type='file'>
      <source path='${files.serialLog}' append='on'/>
      <target port='0'/>
    </serial>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
    <memballoon model='virtio'/>
  </devices>
</domain>
`;
}

/** Highest "VMFERRY-DISK-ACK n" in the serial log: the writer's last durable record. */
export function lastDiskAck(serialText: string): number {
  let last = 0;
  for (const m of serialText.matchAll(/^VMFERRY-DISK-ACK (\d+)\r?$/gm)) last = Math.max(last, Number(m[1]));
  return last;
}

/**
 * The serial log's text once `test` accepts it; rejects at the deadline. Wakes on changes to the
 * log's directory (no polling timer).
 */
export async function waitForSerial(logPath: string, test: (text: string) => boolean, what: string, timeoutMs: number): Promise<string> {
  let settle: (err: Error | undefined, text?: string) => void = () => undefined;
  const done = new Promise<string>((resolve, reject) => (settle = (err, text) => (err ? reject(err) : resolve(text!))));
  let busy = false;
  let again = false;
  const check = async (): Promise<void> => {
    if (busy) return void (again = true);
    busy = true;
    do {
      again = false;
      const text = await readFile(logPath, 'utf8').catch(() => '');
      if (/^VMFERRY-GUEST-FAILED.*$/m.test(text)) settle(new Error(`the guest failed: ${/^VMFERRY-GUEST-FAILED.*$/m.exec(text)![0]}`));
      if (test(text)) settle(undefined, text);
    } while (again);
    busy = false;
  };
  const watcher = watch(dirname(logPath), (_e, name) => {
    if (!name || name === basename(logPath)) void check();
  });
  const timer = setTimeout(() => settle(new Error(`no ${what} in ${logPath} within ${timeoutMs / 1000} s`)), timeoutMs);
  void check();
  try {
    return await done;
  } finally {
    clearTimeout(timer);
    watcher.close();
  }
}
