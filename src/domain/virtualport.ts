// <interface><virtualport>: the port profile a switch applies to the NIC's port
// (libvirt's virNetDevVPortProfile). Read, checked and written back here; what a
// host does with it is the host's (host/openvswitch.ts, and the refusal of
// 802.1Qbg/Qbh in qemu/devices/interface.ts). As libvirt does for a domain's
// interface, a missing instanceid (802.1Qbg) or interfaceid (openvswitch) is
// generated at parse, so the definition define stores carries it from then on.
import { ErrorType } from '../common/errors.js';
import { compact } from './devices-parse.js';
import { generateUuid, normalizeUuid } from './uuid.js';
import type { Checker } from './validate-checker.js';
import { childElements, getAttr, setAttr, syncChildAttrs } from '../xml/xml-edit.js';
import type { XmlReader } from '../xml/xml-read.js';
import type { XmlElement } from '../xml/xml-tree.js';

export const VIRTUALPORT_TYPES = ['802.1Qbg', '802.1Qbh', 'openvswitch'] as const;
export type VirtualPortType = (typeof VIRTUALPORT_TYPES)[number];
/** libvirt knows these too; vmferry does not take them (ConfigUnsupported). */
const LIBVIRT_ONLY_TYPES = ['midonet'];

export interface VirtualPortDef {
  type: VirtualPortType;
  /** 802.1Qbg: VSI manager ID, 0..255. */
  managerId?: number;
  /** 802.1Qbg: VSI type ID, 0..2^24-1. */
  typeId?: number;
  /** 802.1Qbg: VSI type version, 0..255. */
  typeIdVersion?: number;
  /** 802.1Qbg: VSI instance UUID (generated when absent). */
  instanceId?: string;
  /** 802.1Qbh: the port profile (required); openvswitch: optional port-profile. */
  profileId?: string;
  /** openvswitch: the OVS interface's iface-id (generated when absent). */
  interfaceId?: string;
}

/** The parameters each type takes, in the order libvirt writes them. */
const PARAMS: Record<VirtualPortType, readonly string[]> = {
  '802.1Qbg': ['managerid', 'typeid', 'typeidversion', 'instanceid'],
  '802.1Qbh': ['profileid'],
  openvswitch: ['interfaceid', 'profileid'],
};
/** libvirt refuses a domain interface's profile with one of these missing. */
const REQUIRED: Record<VirtualPortType, readonly string[]> = {
  '802.1Qbg': ['managerid', 'typeid', 'typeidversion'],
  '802.1Qbh': ['profileid'],
  openvswitch: [],
};
/** libvirt takes <virtualport> on these interface types only; on any other it is an XML error. */
const PORT_INTERFACE_TYPES = ['network', 'bridge', 'direct', 'hostdev'];
/** The kernel's IFLA_PORT_PROFILE holds 40 bytes with the NUL. */
const PROFILE_MAX = 39;
const PROFILE = /^[\x21-\x7e]+$/;

/** strtoul with base 0, as libvirt reads these numbers: 0x hex, leading-0 octal, else decimal. */
function cNumber(r: XmlReader, text: string, path: string, what: string): number {
  const t = text.trim();
  const m = /^(0[xX][0-9a-fA-F]{1,8}|0[0-7]{0,11}|[1-9][0-9]{0,9})$/.exec(t);
  if (!m) return r.fail(`cannot parse ${what} '${text.slice(0, 40)}'`, path);
  return t.startsWith('0x') || t.startsWith('0X') ? Number.parseInt(t.slice(2), 16) : t.length > 1 && t.startsWith('0') ? Number.parseInt(t, 8) : Number(t);
}

export function readVirtualPort(r: XmlReader, vp: XmlElement, interfaceType: string, path: string): VirtualPortDef {
  const p = `${path}/virtualport`;
  if (!PORT_INTERFACE_TYPES.includes(interfaceType)) r.fail(`<virtualport> is not allowed in <interface type='${interfaceType}'>`, p);
  const type = r.attr(vp, 'type');
  if (type === undefined) {
    // Only a network's interface may leave the type to the network: and type='network' is not built.
    if (interfaceType === 'network')
      r.refuse(ErrorType.ConfigUnsupported, 'a <virtualport> without a type (taken from the network) is not supported', `${p}/@type`);
    r.fail(`missing virtualport type`, `${p}/@type`);
  }
  if (LIBVIRT_ONLY_TYPES.includes(type)) r.refuse(ErrorType.ConfigUnsupported, `virtualport type '${type}' is not supported`, `${p}/@type`);
  if (!(VIRTUALPORT_TYPES as readonly string[]).includes(type)) r.fail(`unknown virtualport type '${type}'`, `${p}/@type`);
  const vtype = type as VirtualPortType;
  for (const a of vp.attrs) if (a.name !== 'type') r.fail(`unknown attribute '${a.name}' on <virtualport>`, `${p}/@${a.name}`);
  for (const c of childElements(vp)) if (c.name !== 'parameters') r.fail(`unknown element <${c.name}> in <virtualport>`, `${p}/${c.name}`);
  const params = r.optional(vp, 'parameters', p);
  const pp = `${p}/parameters`;
  const get = (name: string): string | undefined => (params === undefined ? undefined : getAttr(params, name));
  for (const a of params?.attrs ?? []) {
    if (!PARAMS[vtype].includes(a.name)) r.fail(`attribute '${a.name}' is not allowed in <virtualport type='${vtype}'>`, `${pp}/@${a.name}`);
  }
  for (const name of REQUIRED[vtype]) if (get(name) === undefined) r.fail(`missing ${name} in <virtualport type='${vtype}'>`, `${pp}/@${name}`);
  const num = (name: string): number | undefined => {
    const v = get(name);
    return v === undefined ? undefined : cNumber(r, v, `${pp}/@${name}`, name);
  };
  const uuid = (name: string, generate: boolean): string | undefined => {
    const v = get(name);
    if (v === undefined) return generate ? generateUuid() : undefined;
    return normalizeUuid(v) ?? r.fail(`${name} '${v.slice(0, 60)}' is not a UUID`, `${pp}/@${name}`);
  };
  return compact({
    type: vtype,
    managerId: num('managerid'),
    typeId: num('typeid'),
    typeIdVersion: num('typeidversion'),
    instanceId: vtype === '802.1Qbg' ? uuid('instanceid', true) : undefined,
    interfaceId: vtype === 'openvswitch' ? uuid('interfaceid', true) : undefined,
    profileId: get('profileid'),
  });
}

export function checkVirtualPort(c: Checker, v: VirtualPortDef, interfaceType: string, path: string): void {
  const p = `${path}/virtualport`;
  const pp = `${p}/parameters`;
  c.object(v, p, 'virtualport');
  if (!PORT_INTERFACE_TYPES.includes(interfaceType)) c.fail(`<virtualport> is not allowed in <interface type='${interfaceType}'>`, p);
  c.oneOf(VIRTUALPORT_TYPES, v.type, `${p}/@type`, 'virtualport type', true);
  c.optInt(v.managerId, 0, 0xff, `${pp}/@managerid`, 'managerid');
  c.optInt(v.typeId, 0, 0xffffff, `${pp}/@typeid`, 'typeid');
  c.optInt(v.typeIdVersion, 0, 0xff, `${pp}/@typeidversion`, 'typeidversion');
  for (const [key, attr] of [
    ['instanceId', 'instanceid'],
    ['interfaceId', 'interfaceid'],
  ] as const) {
    const u = v[key];
    if (u !== undefined && normalizeUuid(c.str(u, `${pp}/@${attr}`, attr)) !== u) c.fail(`${attr} '${u}' is not a UUID`, `${pp}/@${attr}`);
  }
  if (v.profileId !== undefined) {
    const s = c.str(v.profileId, `${pp}/@profileid`, 'profileid');
    if (s.length > PROFILE_MAX) c.fail(`profileid '${s.slice(0, 60)}' is longer than ${PROFILE_MAX} characters`, `${pp}/@profileid`);
    if (!PROFILE.test(s)) c.fail(`profileid '${s.slice(0, 60)}' must be printable ASCII without blanks`, `${pp}/@profileid`);
  }
  const present: Record<string, unknown> = {
    managerid: v.managerId,
    typeid: v.typeId,
    typeidversion: v.typeIdVersion,
    instanceid: v.instanceId,
    interfaceid: v.interfaceId,
    profileid: v.profileId,
  };
  const allowed = PARAMS[v.type] ?? [];
  for (const [attr, value] of Object.entries(present)) {
    if (value !== undefined && !allowed.includes(attr)) c.fail(`attribute '${attr}' is not allowed in <virtualport type='${v.type}'>`, `${pp}/@${attr}`);
  }
  for (const attr of REQUIRED[v.type] ?? []) if (present[attr] === undefined) c.fail(`missing ${attr} in <virtualport type='${v.type}'>`, `${pp}/@${attr}`);
}

/** Writes the model into <virtualport> (the element the interface holds, or a new one). */
export function applyVirtualPort(vp: XmlElement, v: VirtualPortDef, depth: number): void {
  setAttr(vp, 'type', v.type);
  const attrs: Record<string, string | number | undefined> = {
    managerid: v.managerId,
    typeid: v.typeId,
    typeidversion: v.typeIdVersion,
    instanceid: v.instanceId,
    interfaceid: v.interfaceId,
    profileid: v.profileId,
  };
  const params = childElements(vp, 'parameters')[0];
  // Attributes go in libvirt's order: a fresh element, unless the one there says the same.
  if (params !== undefined && PARAMS[v.type].some((a) => getAttr(params, a) !== (attrs[a] === undefined ? undefined : String(attrs[a])))) params.attrs = [];
  syncChildAttrs(vp, 'parameters', Object.fromEntries(PARAMS[v.type].map((a) => [a, attrs[a]])), depth, ['parameters']);
}
