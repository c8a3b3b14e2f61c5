import { randomUUID } from 'node:crypto';

/**
 * A small TCG guest whose RAM is a shared file the test can read and write from the host.
 * No USB controller unless `usb` (a pc domain that names none gets libvirt's default
 * piix3-uhci). Tests hash guest RAM across jobs, and one CI run with the controller in
 * every guest saw five raw save/restore round trips come back with different RAM (not
 * reproduced in three reruns, cause not found): a device that SeaBIOS drives by DMA has
 * no place in a guest whose memory must stay still. `kernel` boots a multiboot kernel
 * (idle-kernel.ts) instead of leaving SeaBIOS looking for a boot disk. `machine`: the machine
 * type (default `pc`, this QEMU's newest i440fx).
 */
export function guestXml(opts: {
  name: string;
  uuid?: string;
  memoryMiB?: number;
  extraDevices?: string;
  usb?: boolean;
  kernel?: string;
  machine?: string;
}): string {
  return `<domain type='qemu'>
  <name>${opts.name}</name>
  <uuid>${opts.uuid ?? randomUUID()}</uuid>
  <memory unit='MiB'>${opts.memoryMiB ?? 64}</memory>
  <currentMemory unit='MiB'>${opts.memoryMiB ?? 64}</currentMemory>
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
  </memoryBacking>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='${opts.machine ?? 'pc'}'>hvm</type>
    <boot dev='hd'/>${opts.kernel !== undefined ? `\n    <kernel>${opts.kernel}</kernel>` : ''}
  </os>
  <features>
    <acpi/>
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='pty'>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>${opts.usb ? '' : "\n    <controller type='usb' model='none'/>"}${opts.extraDevices ?? ''}
  </devices>
</domain>
`;
}
