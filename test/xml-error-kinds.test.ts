// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Errors say what kind of problem it is: well-formed XML that asks for
// something libvirt knows but vmferry does not support is ConfigUnsupported;
// malformed XML, and values that are no valid request at all, are XmlError.
// Pure code, no Temporal server or QEMU needed.
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ErrorType } from '../src/common/errors.js';
import { formatDomainXml, parseDomainXml, validateDomainDef } from '../src/domain/index.js';
import { parseMigrationCookie } from '../src/migration/cookie.js';

const UUID = 'c7a5fdbd-cdaf-9455-926a-d65c16db1809';

function domain(parts: { type?: string; os?: string; devices?: string; top?: string } = {}): string {
  return [
    `<domain type='${parts.type ?? 'kvm'}'>`,
    '  <name>k1</name>',
    `  <uuid>${UUID}</uuid>`,
    "  <memory unit='MiB'>256</memory>",
    '  <os>',
    `    <type arch='x86_64' machine='pc'>${parts.os ?? 'hvm'}</type>`,
    '  </os>',
    parts.top ?? '',
    '  <devices>',
    parts.devices ?? '',
    '  </devices>',
    '</domain>',
  ].join('\n');
}

function disk(driver: string, target = "dev='vda' bus='virtio'", device = 'disk'): string {
  return `    <disk type='file' device='${device}'>\n      ${driver}\n      <source file='/img/vda.img'/>\n      <target ${target}/>\n    </disk>`;
}

function failureOf(fn: () => unknown): ApplicationFailure {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected an error, nothing was thrown');
}

const COOKIE_UUID = '6f1c2a4e-3b7d-4c55-9a0e-2d8f61b7c3a9';
const cookie = (body: string): string =>
  `<qemu-migration><name>k1</name><uuid>${COOKIE_UUID}</uuid><hostname>h</hostname><hostuuid>0b6e9d2c-71a4-4f3e-8c5d-93e2a1f07b64</hostuuid>${body}</qemu-migration>`;
const parseCookie = (text: string) => () => parseMigrationCookie(text, { name: 'k1', uuid: COOKIE_UUID });

// Valid for libvirt, well-formed, but not something vmferry runs.
const unsupported: [string, () => unknown, RegExp][] = [
  ["domain type 'xen'", () => parseDomainXml(domain({ type: 'xen' })), /^domain type 'xen' is not one of kvm, qemu at \/domain\/@type \(line 1/],
  ["domain type 'lxc'", () => parseDomainXml(domain({ type: 'lxc' })), /domain type 'lxc' .* at \/domain\/@type/],
  ["os type 'linux' (Xen PV)", () => parseDomainXml(domain({ os: 'linux' })), /^os type 'linux' is not one of hvm at \/domain\/os\/type \(line 6/],
  ["os type 'exe' (containers)", () => parseDomainXml(domain({ os: 'exe' })), /os type 'exe' .* at \/domain\/os\/type/],
  [
    "disk format 'vmdk'",
    () => parseDomainXml(domain({ devices: disk("<driver name='qemu' type='vmdk'/>") })),
    /^disk format 'vmdk' is not one of raw, qcow2 at/,
  ],
  ["disk format 'qed'", () => parseDomainXml(domain({ devices: disk("<driver name='qemu' type='qed'/>") })), /disk format 'qed' .*\/driver\/@type/],
  ["disk driver name 'tap2'", () => parseDomainXml(domain({ devices: disk("<driver name='tap2' type='raw'/>") })), /disk driver name 'tap2' .*\/driver\/@name/],
  [
    'two vnc graphics',
    () => parseDomainXml(domain({ devices: "    <graphics type='vnc' port='-1'/>\n    <graphics type='vnc' port='-1'/>" })),
    /only one <graphics type='vnc'> is supported/,
  ],
  [
    'two spice graphics',
    () => parseDomainXml(domain({ devices: "    <graphics type='spice' port='-1'/>\n    <graphics type='spice' port='-1'/>" })),
    /only one <graphics type='spice'> is supported .* at \/domain\/devices\/graphics\[2\]\/@type/,
  ],
  [
    'cdrom on the virtio bus',
    () => parseDomainXml(domain({ devices: disk("<driver name='qemu' type='raw'/>", "dev='vdb' bus='virtio'", 'cdrom') })),
    /a cdrom cannot use bus 'virtio' at \/domain\/devices\/disk\/target\/@bus/,
  ],
  [
    'a definition edited in code to type hvf',
    () => formatDomainXml({ ...parseDomainXml(domain()), type: 'hvf' as 'kvm' }),
    /domain type 'hvf' is not one of kvm, qemu at \/domain\/@type$/,
  ],
  [
    'a disk edited in code to format vpc',
    () => {
      const def = parseDomainXml(domain({ devices: disk("<driver name='qemu' type='raw'/>") }));
      const d = def.devices.disks[0];
      if (d?.driver === undefined) throw new Error('test domain has no disk driver');
      d.driver.type = 'vpc' as 'raw';
      validateDomainDef(def);
    },
    /disk format 'vpc' .* at \/domain\/devices\/disk\/driver\/@type$/,
  ],
];

// Malformed XML, or a value that is no valid request at all.
const invalid: [string, () => unknown, RegExp][] = [
  ['unclosed element', () => parseDomainXml(domain().replace('  </os>\n', '')), /^XML is not well-formed: /],
  ['undefined entity', () => parseDomainXml(domain({ top: '  <title>&nope;</title>' })), /entity '&nope;' is not defined/],
  ['DOCTYPE', () => parseDomainXml(`<!DOCTYPE domain>\n${domain()}`), /<!DOCTYPE> declarations are not accepted/],
  ["domain type 'banana' (no libvirt type)", () => parseDomainXml(domain({ type: 'banana' })), /^domain type 'banana' is not one of kvm, qemu at/],
  ["os type 'hvm2'", () => parseDomainXml(domain({ os: 'hvm2' })), /os type 'hvm2' is not one of hvm/],
  ["disk format 'qcow3'", () => parseDomainXml(domain({ devices: disk("<driver name='qemu' type='qcow3'/>") })), /disk format 'qcow3'/],
  ["disk driver name 'q emu'", () => parseDomainXml(domain({ devices: disk("<driver name='q emu' type='raw'/>") })), /disk driver name 'q emu'/],
  ['vcpu count not a number', () => parseDomainXml(domain({ top: '  <vcpu>two</vcpu>' })), /^vcpu count 'two' is not an integer/],
  ['bad UUID', () => parseDomainXml(domain().replace(UUID, 'not-a-uuid')), /^invalid UUID 'not-a-uuid' at \/domain\/uuid/],
  ['missing <os>', () => parseDomainXml(domain().replace(/ {2}<os>[\s\S]*<\/os>\n/, '')), /^missing <os> element at \/domain\/os/],
  ["cache mode 'fast'", () => parseDomainXml(domain({ devices: disk("<driver name='qemu' type='raw' cache='fast'/>") })), /disk cache mode 'fast'/],
  ['cookie not well-formed', parseCookie(cookie('<nbd>')), /^migration cookie: XML is not well-formed: /],
  ['cookie undefined entity', parseCookie(cookie("<lockstate driver='&x;'/>")), /^migration cookie: entity '&x;' is not defined/],
  ["cookie graphics type 'teletype' (no libvirt type)", parseCookie(cookie("<graphics type='teletype' port='1' listen='::'/>")), /unknown graphics type/],
];

describe('error kinds for XML', () => {
  it.each(unsupported)('ConfigUnsupported: %s', (_label, fn, re) => {
    const f = failureOf(fn);
    expect(f.type).toBe(ErrorType.ConfigUnsupported);
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(re);
  });

  it.each(invalid)('XmlError: %s', (_label, fn, re) => {
    const f = failureOf(fn);
    expect(f.type).toBe(ErrorType.XmlError);
    expect(f.message).toMatch(re);
  });

  it('has at least eight cases each way', () => {
    expect(unsupported.length).toBeGreaterThanOrEqual(8);
    expect(invalid.length).toBeGreaterThanOrEqual(8);
  });

  it('a supported request still parses', () => {
    const def = parseDomainXml(domain({ type: 'qemu', devices: disk("<driver name='qemu' type='qcow2'/>") }));
    expect(def.type).toBe('qemu');
    expect(def.devices.disks[0]?.driver?.type).toBe('qcow2');
  });
});
