// ABI stability of the devices (abi-check.ts): for each family the count, the
// order and what the guest sees of each device (model, bus, MAC, guest-side
// target, addresses), never what only the host sees (interface source, tap and
// link state, boot order, channel socket path, rng backend, watchdog action).
// That split is libvirt's (its per-device ABI checks). Families vmferry models
// are compared on the model; other devices on their guest-visible attributes.
import { attrsOf, childAt, same, sameAddress, sameList, sortKeys } from './abi-compare.js';
import type { DomainDef, XmlElement } from '../domain/index.js';
import { childElements, findChild, getAttr } from '../xml/xml-edit.js';

interface Sides {
  dest: DomainDef;
  src: DomainDef;
  destRoot: XmlElement | undefined;
  srcRoot: XmlElement | undefined;
}

type Devices = DomainDef['devices'];
type Family = 'interfaces' | 'videos' | 'inputs' | 'controllers' | 'usbControllers' | 'channels' | 'rngs' | 'watchdogs' | 'panics';
type Item<F extends Family> = NonNullable<Devices[F]>[number];

const isUsb = (el: XmlElement): boolean => getAttr(el, 'type') === 'usb';
const FAMILY_ELEMENTS: Record<Family, { element: string; match?: (el: XmlElement) => boolean }> = {
  interfaces: { element: 'interface' },
  videos: { element: 'video' },
  inputs: { element: 'input' },
  controllers: { element: 'controller', match: (el) => !isUsb(el) },
  usbControllers: { element: 'controller', match: isUsb },
  channels: { element: 'channel' },
  rngs: { element: 'rng' },
  watchdogs: { element: 'watchdog' },
  panics: { element: 'panic' },
};
const MODELLED_ELEMENTS = new Set(['interface', 'video', 'input', 'controller', 'channel', 'rng', 'watchdog', 'panic', 'memballoon']);
/** Host-side only (the emulator binary, the display server); list devices (disk, serial, console) are compared in abi-check.ts. */
const HOST_ONLY_ELEMENTS = new Set(['emulator', 'graphics']);

function familyElements(root: XmlElement | undefined, family: Family): XmlElement[] {
  const { element, match } = FAMILY_ELEMENTS[family];
  const devices = childAt(root, 'devices');
  return devices === undefined ? [] : childElements(devices, element).filter((el) => match?.(el) ?? true);
}

const FIELDS: { [F in Family]: (d: Item<F>, s: Item<F>, what: string, de: XmlElement | undefined, se: XmlElement | undefined) => void } = {
  interfaces: (d, s, what) => {
    same(`${what} MAC address`, d.mac.toLowerCase(), s.mac.toLowerCase());
    // Absent is the model vmferry builds then (qemu/devices/interface.ts), so spelling it out changes nothing.
    same(`${what} model`, d.model ?? 'rtl8139', s.model ?? 'rtl8139');
  },
  videos: (d, s, what, de, se) => {
    same(`${what} model`, d.model, s.model);
    same(`${what} vram (KiB)`, d.vramKiB, s.vramKiB);
    same(`${what} heads`, d.heads, s.heads);
    same(`${what} primary`, d.primary ?? false, s.primary ?? false);
    // Sizes of the card vmferry passes through unmodelled: the guest's driver sees them too.
    for (const attr of ['ram', 'vgamem', 'vram64']) {
      const v = (el: XmlElement | undefined) => (el === undefined ? undefined : getAttr(findChild(el, 'model') ?? el, attr));
      if (de !== undefined && se !== undefined) same(`${what} ${attr}`, v(de), v(se));
    }
  },
  inputs: (d, s, what) => {
    same(`${what} type`, d.type, s.type);
    const bus = (x: Item<'inputs'>) => x.bus ?? (x.type === 'tablet' ? 'usb' : 'ps2');
    same(`${what} bus`, bus(d), bus(s));
  },
  controllers: (d, s, what) => {
    same(`${what} type`, d.type, s.type);
    same(`${what} index`, d.index ?? 0, s.index ?? 0);
    same(`${what} model`, d.model, s.model);
    same(`${what} ports`, d.ports, s.ports);
  },
  usbControllers: (d, s, what) => {
    same(`${what} index`, d.index ?? 0, s.index ?? 0);
    same(`${what} model`, d.model, s.model);
  },
  channels: (d, s, what) => {
    same(`${what} target type`, d.targetType, s.targetType);
    same(`${what} target name`, d.targetName, s.targetName);
  },
  rngs: (d, s, what) => same(`${what} model`, d.model, s.model),
  watchdogs: (d, s, what) => same(`${what} model`, d.model, s.model),
  panics: (d, s, what) => same(`${what} model`, d.model ?? 'isa', s.model ?? 'isa'),
};

const LABEL: Record<Family, string> = {
  interfaces: 'interface',
  videos: 'video',
  inputs: 'input',
  controllers: 'controller',
  usbControllers: 'USB controller',
  channels: 'channel',
  rngs: 'rng',
  watchdogs: 'watchdog',
  panics: 'panic',
};

function compareFamily<F extends Family>(sides: Sides, family: F): boolean {
  const d = sides.dest.devices[family] as Item<F>[] | undefined;
  const s = sides.src.devices[family] as Item<F>[] | undefined;
  const destEls = familyElements(sides.destRoot, family);
  const srcEls = familyElements(sides.srcRoot, family);
  // A definition that predates the family's model holds it only in the document: compare that instead.
  if ((d === undefined && destEls.length > 0) || (s === undefined && srcEls.length > 0)) return false;
  sameList(`${LABEL[family]}`, d ?? [], s ?? [], (di, si, i) => {
    const what = family === 'interfaces' ? `interface ${(si as Item<'interfaces'>).mac}` : `${LABEL[family]}[${i}]`;
    FIELDS[family](di, si, what, destEls[i], srcEls[i]);
    sameAddress(what, di.address, si.address);
  });
  return true;
}

/** What the guest sees of a device vmferry does not model: its kind, model, bus, index, MAC, guest-side target and address. */
const HOST_SIDE_ROOT_TYPE = new Set(['interface', 'hostdev', 'filesystem', 'channel', 'smartcard', 'redirdev', 'rng', 'parallel', 'tpm']);
function guestView(el: XmlElement): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  for (const a of ['model', 'index', 'bus', 'ports']) {
    const v = getAttr(el, a);
    if (v !== undefined) view[a] = v;
  }
  const type = getAttr(el, 'type');
  if (type !== undefined && !HOST_SIDE_ROOT_TYPE.has(el.name)) view.type = type;
  const model = findChild(el, 'model');
  if (model) view['<model>'] = attrsOf(model);
  const mac = findChild(el, 'mac');
  if (mac) view['MAC address'] = getAttr(mac, 'address')?.toLowerCase();
  const target = findChild(el, 'target');
  if (target && el.name !== 'interface') view['<target>'] = attrsOf(target, ['dev', 'state']);
  const address = findChild(el, 'address');
  if (address) view.address = sortKeys(attrsOf(address));
  return view;
}

function compareUnmodelled(sides: Sides, alsoGeneric: Set<string>): void {
  const byKind = (root: XmlElement | undefined): Map<string, Record<string, unknown>[]> => {
    const m = new Map<string, Record<string, unknown>[]>();
    const devices = childAt(root, 'devices');
    for (const el of devices === undefined ? [] : childElements(devices)) {
      if (HOST_ONLY_ELEMENTS.has(el.name) || (MODELLED_ELEMENTS.has(el.name) && !alsoGeneric.has(el.name))) continue;
      m.set(el.name, [...(m.get(el.name) ?? []), guestView(el)]);
    }
    return m;
  };
  const d = byKind(sides.destRoot);
  const s = byKind(sides.srcRoot);
  for (const kind of new Set([...d.keys(), ...s.keys()])) {
    sameList(kind, d.get(kind) ?? [], s.get(kind) ?? [], (dv, sv, i) => {
      for (const key of new Set([...Object.keys(dv), ...Object.keys(sv)])) {
        if (key === 'address' && (dv.address === undefined || sv.address === undefined)) continue;
        same(`${kind}[${i}] ${key}`, dv[key], sv[key]);
      }
    });
  }
}

export function checkDevicesAbi(sides: Sides): void {
  const generic = new Set<string>();
  for (const family of Object.keys(FAMILY_ELEMENTS) as Family[]) {
    if (!compareFamily(sides, family)) generic.add(FAMILY_ELEMENTS[family].element);
  }
  const db = sides.dest.devices.memballoon;
  const sb = sides.src.devices.memballoon;
  same('memory balloon model', db?.model, sb?.model);
  sameAddress('memory balloon', db?.address, sb?.address);
  compareUnmodelled(sides, generic);
}
