// ABI stability between the source's definition and a destination definition a
// caller supplied: the guest must find the same machine after the move. What the
// guest sees is compared (memory size, vCPUs, machine type, CPU model, features,
// clock, and every device's kind, model, MAC and address); what only the host
// sees may change (disk source paths, graphics listen addresses and the rest of
// <graphics>, interface host plumbing, title, lifecycle actions). The name may
// change only through dname.
import { ErrorType, vmError } from '../common/errors.js';
import type { DeviceAddress, DomainDef, XmlElement } from '../domain/index.js';
import { expandDomainDef } from '../domain/preserved.js';
import { childElements, findChild, getAttr } from '../xml/xml-edit.js';

function mismatch(what: string, dest: unknown, src: unknown): Error {
  const show = (v: unknown): string => (v === undefined ? 'none' : typeof v === 'string' ? `'${v}'` : JSON.stringify(v));
  return vmError(ErrorType.ConfigUnsupported, `target domain ${what} ${show(dest)} does not match source ${show(src)}`, {
    what,
    destination: dest ?? null,
    source: src ?? null,
  });
}

function same(what: string, dest: unknown, src: unknown): void {
  if (JSON.stringify(dest) !== JSON.stringify(src)) throw mismatch(what, dest, src);
}

function sameAddress(what: string, dest: DeviceAddress | undefined, src: DeviceAddress | undefined): void {
  // An address only one side spells out is assigned the same way by QEMU on both.
  if (dest === undefined || src === undefined) return;
  same(`${what} address`, sortKeys(dest), sortKeys(src));
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

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

// Unmodelled devices: which attributes and children the guest can see.
const HOST_SIDE_ROOT_TYPE = new Set(['interface', 'hostdev', 'filesystem', 'channel', 'smartcard', 'redirdev', 'rng', 'parallel', 'tpm']);
const SKIPPED_DEVICES = new Set(['emulator', 'graphics']);

function guestView(el: XmlElement): Record<string, unknown> {
  const view: Record<string, unknown> = { element: el.name };
  for (const a of ['model', 'index', 'bus']) {
    const v = getAttr(el, a);
    if (v !== undefined) view[a] = v;
  }
  const type = getAttr(el, 'type');
  if (type !== undefined && !HOST_SIDE_ROOT_TYPE.has(el.name)) view.type = type;
  const model = findChild(el, 'model');
  if (model) view.modelAttrs = sortKeys(Object.fromEntries(model.attrs.map((a) => [a.name, getAttr(model, a.name) ?? a.raw])));
  const mac = findChild(el, 'mac');
  if (mac) view.mac = getAttr(mac, 'address')?.toLowerCase();
  const target = findChild(el, 'target');
  if (target && el.name !== 'interface') {
    view.target = sortKeys(
      Object.fromEntries(target.attrs.filter((a) => a.name !== 'dev' && a.name !== 'state').map((a) => [a.name, getAttr(target, a.name) ?? a.raw])),
    );
  }
  const address = findChild(el, 'address');
  if (address) view.address = sortKeys(Object.fromEntries(address.attrs.map((a) => [a.name, getAttr(address, a.name) ?? a.raw])));
  return view;
}

function unmodelledDevices(def: DomainDef): XmlElement[] {
  const tree = expandDomainDef(def);
  const root = tree.preserved?.find((n): n is XmlElement => n.kind === 'element' && n.name === 'domain');
  const devices = root === undefined ? undefined : findChild(root, 'devices');
  return devices === undefined ? [] : childElements(devices).filter((d) => !SKIPPED_DEVICES.has(d.name));
}

function compareUnmodelled(dest: DomainDef, src: DomainDef): void {
  const byKind = (def: DomainDef): Map<string, Record<string, unknown>[]> => {
    const m = new Map<string, Record<string, unknown>[]>();
    for (const d of unmodelledDevices(def)) m.set(d.name, [...(m.get(d.name) ?? []), guestView(d)]);
    return m;
  };
  const d = byKind(dest);
  const s = byKind(src);
  for (const kind of new Set([...d.keys(), ...s.keys()])) {
    const dl = d.get(kind) ?? [];
    const sl = s.get(kind) ?? [];
    if (dl.length !== sl.length) throw mismatch(`${kind} device count`, dl.length, sl.length);
    dl.forEach((view, i) => {
      const other = sl[i];
      if (!view.address || !other?.address) {
        delete view.address;
        if (other) delete other.address;
      }
      same(`${kind}[${i}]`, view, other);
    });
  }
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
  same('CPU mode', dest.cpu?.mode, src.cpu?.mode);
  same('CPU model', dest.cpu?.model, src.cpu?.model);
  same('features', [...dest.features].sort(), [...src.features].sort());
  same('clock offset', dest.clock?.offset ?? 'utc', src.clock?.offset ?? 'utc');
  same('memory balloon model', dest.devices.memballoon?.model, src.devices.memballoon?.model);

  const dd = dest.devices.disks;
  const sd = src.devices.disks;
  same('disk count', dd.length, sd.length);
  dd.forEach((d, i) => {
    const s = sd[i]!;
    const what = `disk ${s.target.dev}`;
    same(`${what} target`, d.target.dev, s.target.dev);
    same(`${what} bus`, d.target.bus, s.target.bus);
    same(`${what} device`, d.device, s.device);
    sameAddress(what, d.address, s.address);
  });
  for (const [kind, dl, sl] of [
    ['serial', dest.devices.serials, src.devices.serials],
    ['console', dest.devices.consoles, src.devices.consoles],
  ] as const) {
    same(`${kind} count`, dl.length, sl.length);
    dl.forEach((d, i) => {
      same(`${kind}[${i}] target type`, d.targetType, sl[i]!.targetType);
      same(`${kind}[${i}] target port`, d.targetPort, sl[i]!.targetPort);
    });
  }
  compareUnmodelled(dest, src);
}
