// ABI stability between the source's definition and a destination definition a
// caller supplied (migrate --xml, restore --xml, save-image-define): the guest
// must find the same machine after the move. What the guest sees is compared
// (memory, vCPUs, machine type, the CPU with its features and topology, the
// <features> element, the clock and its timers, every device: abi-check-devices.ts);
// what only the host sees may change (disk source paths, graphics, interface
// host plumbing, boot order, title, lifecycle actions). The split follows
// libvirt's virDomainDefCheckABIStability. The name may change only through dname.
import { checkDevicesAbi } from './abi-check-devices.js';
import { attrsOf, childAt, elementData, same, sameAddress, sameList, preservedRoot } from './abi-compare.js';
import { ErrorType, vmError } from '../common/errors.js';
import type { CpuDef, DomainDef, XmlElement } from '../domain/index.js';
import { expandDomainDef } from '../domain/preserved.js';
import { childElements, findChild, getAttr, textContent } from '../xml/xml-edit.js';

/** The name on the destination must be the source's, or dname when one is given. */
export function checkDestinationName(dest: DomainDef, sourceName: string, dname: string | undefined): void {
  const expected = dname ?? sourceName;
  if (dest.name !== expected) {
    throw vmError(
      ErrorType.OperationInvalid,
      dname === undefined
        ? `target domain name '${dest.name}' does not match source '${sourceName}' (rename with dname)`
        : `target domain name '${dest.name}' does not match dname '${dname}'`,
      { destination: dest.name, source: sourceName, dname: dname ?? null },
    );
  }
}

function checkCpu(dest: CpuDef | undefined, src: CpuDef | undefined): void {
  // A host-model guest runs as the expanded custom CPU (qemu/cpu-expansion.ts), which is what its migratable definition says.
  same('CPU mode', dest?.mode ?? 'custom', src?.mode ?? 'custom');
  same('CPU model', dest?.model, src?.model);
  const features = (cpu: CpuDef | undefined) => new Map((cpu?.features ?? []).map((f) => [f.name, f.policy ?? 'require']));
  const df = features(dest);
  const sf = features(src);
  for (const name of [...new Set([...sf.keys(), ...df.keys()])]) same(`CPU feature ${name} policy`, df.get(name), sf.get(name));
  same('CPU topology', dest?.topology, src?.topology);
  sameList('guest NUMA cell', dest?.numaCells ?? [], src?.numaCells ?? [], (d, s, i) => {
    same(`guest NUMA cell ${i} vCPUs`, d.cpus, s.cpus);
    same(`guest NUMA cell ${i} memory (KiB)`, d.memoryKiB, s.memoryKiB);
  });
}

/** Everything in <features> is guest-visible (ACPI, APIC and its EOI, PAE, Hyper-V enlightenments, KVM hiding, ...). */
function checkFeatures(dest: DomainDef, src: DomainDef, destRoot: XmlElement | undefined, srcRoot: XmlElement | undefined): void {
  same('features', [...dest.features].sort(), [...src.features].sort());
  if (destRoot === undefined || srcRoot === undefined) return;
  const byName = (root: XmlElement) => {
    const features = childAt(root, 'features');
    return new Map((features === undefined ? [] : childElements(features)).map((f) => [f.name, elementData(f)]));
  };
  const d = byName(destRoot);
  for (const [name, data] of byName(srcRoot)) same(`feature <${name}>`, d.get(name), data);
}

/**
 * The offset, then libvirt's timer check: the timers, each one's presence, the
 * TSC's frequency and mode; the tick policy is how the host delivers missed
 * ticks. A variable clock's adjustment is not compared: the RTC state travels
 * in the migration stream and the image.
 */
function checkClock(dest: DomainDef, src: DomainDef, destRoot: XmlElement | undefined, srcRoot: XmlElement | undefined): void {
  same('clock offset', dest.clock?.offset ?? 'utc', src.clock?.offset ?? 'utc');
  const timers = (root: XmlElement | undefined) => {
    const c = childAt(root, 'clock');
    return c === undefined ? [] : childElements(c, 'timer').map((t) => attrsOf(t, ['tickpolicy', 'track']));
  };
  if (destRoot === undefined || srcRoot === undefined) return;
  sameList('clock timer', timers(destRoot), timers(srcRoot), (d, s, i) => {
    const what = `clock timer ${s.name ?? i}`;
    same(`${what} name`, d.name, s.name);
    same(`${what} present`, d.present ?? 'yes', s.present ?? 'yes');
    same(`${what} frequency`, d.frequency, s.frequency);
    same(`${what} mode`, d.mode, s.mode);
  });
}

/** What the guest reads from a disk besides its bus and address: serial, WWN, vendor and product strings, model. */
function diskIdentity(el: XmlElement | undefined): Record<string, string | undefined> {
  if (el === undefined) return {};
  const text = (n: string) => {
    const c = findChild(el, n);
    return c === undefined ? undefined : textContent(c).trim();
  };
  return { serial: text('serial'), wwn: text('wwn'), vendor: text('vendor'), product: text('product'), model: getAttr(el, 'model') };
}

/** Throws ConfigUnsupported at the first guest-visible difference. */
export function checkAbiStability(dest: DomainDef, src: DomainDef): void {
  same('virtualization type', dest.type, src.type);
  same('UUID', dest.uuid, src.uuid);
  same('max memory (KiB)', dest.memoryKiB, src.memoryKiB);
  same('vCPU count', dest.vcpus, src.vcpus);
  same('current vCPU count', dest.vcpusCurrent ?? dest.vcpus, src.vcpusCurrent ?? src.vcpus);
  same('OS type', dest.os.type, src.os.type);
  same('architecture', dest.os.arch, src.os.arch);
  same('machine type', dest.os.machine, src.os.machine);
  checkCpu(dest.cpu, src.cpu);
  const destTree = expandDomainDef(dest);
  const srcTree = expandDomainDef(src);
  const destRoot = preservedRoot(destTree);
  const srcRoot = preservedRoot(srcTree);
  checkFeatures(dest, src, destRoot, srcRoot);
  checkClock(dest, src, destRoot, srcRoot);

  sameList('disk', dest.devices.disks, src.devices.disks, (d, s, i) => {
    const what = `disk ${s.target.dev}`;
    same(`${what} target`, d.target.dev, s.target.dev);
    same(`${what} bus`, d.target.bus, s.target.bus);
    same(`${what} device`, d.device, s.device);
    const di = diskIdentity(destTree.devices.disks[i]?.preserved);
    const si = diskIdentity(srcTree.devices.disks[i]?.preserved);
    for (const k of Object.keys(si) as (keyof typeof si)[]) same(`${what} ${k}`, di[k], si[k]);
    sameAddress(what, d.address, s.address);
  });
  for (const [kind, dl, sl] of [
    ['serial', dest.devices.serials, src.devices.serials],
    ['console', dest.devices.consoles, src.devices.consoles],
  ] as const) {
    sameList(kind, dl, sl, (d, s, i) => {
      same(`${kind}[${i}] target type`, d.targetType, s.targetType);
      same(`${kind}[${i}] target port`, d.targetPort, s.targetPort);
    });
  }
  checkDevicesAbi({ dest, src, destRoot, srcRoot });
}
