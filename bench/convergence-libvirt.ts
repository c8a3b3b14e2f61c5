// The convergence bench's libvirt side: the Linux guest under two private libvirtd (storage-libvirt.ts),
// its NIC a tap the bench made in each host for the daemons' user (type='ethernet', managed='no': an
// unprivileged libvirtd cannot make one), and `virsh migrate` run as an operator types it, timed from
// start to exit, with libvirt's own account of the job afterwards (domjobinfo --completed).
import { linuxGuestXml } from '../test/helpers/linux-guest.js';
import { downtimeOf, type LibvirtPair } from './storage-libvirt.js';

export interface LibvirtGuestSpec {
  name: string;
  uuid: string;
  mac: string;
  tap: string;
  memoryMiB: number;
  cmdline: string;
}

/** The guest's definition for libvirt: the kernel, initrd and console in files its daemons' user reads and writes. */
export function libvirtGuestXml(lv: LibvirtPair, g: LibvirtGuestSpec, kernel: string, initrd: string): string {
  const nic = `    <interface type='ethernet'>
      <mac address='${g.mac}'/>
      <target dev='${g.tap}' managed='no'/>
      <model type='virtio'/>
    </interface>
`;
  return linuxGuestXml({ name: g.name, uuid: g.uuid, memoryMiB: g.memoryMiB, cmdline: g.cmdline, serialLog: lv.serialLog })
    .replace(kernel, lv.kernel)
    .replace(initrd, lv.initrd)
    .replace('    <serial ', `${nic}    <serial `);
}

export interface LibvirtJob {
  memProcessedBytes?: number;
  iterations?: number;
  throttlePercent?: number;
  postcopyRequests?: number;
  downtimeMs?: number;
}

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** The figures of `virsh domjobinfo --completed` the bench reports. */
export function parseDomjobinfo(text: string): LibvirtJob {
  const field = (label: string): string | undefined => new RegExp(`^${label}:\\s+(.+)$`, 'm').exec(text)?.[1]?.trim();
  const bytes = (label: string): number | undefined => {
    const m = /^([\d.]+)\s*(\w+)$/.exec(field(label) ?? '');
    return m && UNITS[m[2]!] !== undefined ? Number(m[1]) * UNITS[m[2]!]! : undefined;
  };
  const num = (label: string): number | undefined => {
    const m = /^(\d+)/.exec(field(label) ?? '');
    return m ? Number(m[1]) : undefined;
  };
  const job: LibvirtJob = {};
  const put = <K extends keyof LibvirtJob>(k: K, v: LibvirtJob[K] | undefined): void => {
    if (v !== undefined) job[k] = v;
  };
  put('memProcessedBytes', bytes('Memory processed'));
  put('iterations', num('Iteration'));
  put('throttlePercent', num('Auto converge throttle'));
  put('postcopyRequests', num('Postcopy requests'));
  put('downtimeMs', downtimeOf(text));
  return job;
}
