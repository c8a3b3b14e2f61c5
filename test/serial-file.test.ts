// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// <serial type='file'> on QEMU's command line: the guest's console goes to a file
// (what the Linux test guest's readiness and disk acknowledgements are read from);
// a file serial without an absolute path, and chardev types not built, are refused.
// Pure code, no QEMU started.
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { parseDomainXml } from '../src/domain/index.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';

function domainWithSerial(serial: string): string {
  return `<domain type='qemu'><name>s1</name><uuid>0f1c2a53-6a52-4c0e-9d59-0c7f0d3c0a11</uuid><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><controller type='usb' model='none'/>${serial}</devices></domain>`;
}

const paths = { qmpSocket: '/run/x.qmp' };

describe('serial type file (pure code)', () => {
  it('writes the guest console to the named file, commas doubled', () => {
    const args = buildQemuArgs(parseDomainXml(domainWithSerial("<serial type='file'><source path='/var/log/a,b.log'/><target port='0'/></serial>")), paths);
    const i = args.indexOf('file,id=charserial0,path=/var/log/a,,b.log');
    expect(i).toBeGreaterThan(0);
    expect(args[i - 1]).toBe('-chardev');
    expect(args).toContain('isa-serial,chardev=charserial0,id=serial0');
  });

  it.each([
    ["<serial type='file'><target port='0'/></serial>", 'ConfigUnsupported', /absolute path/],
    ["<serial type='file'><source path='rel.log'/><target port='0'/></serial>", 'XmlError', /absolute/],
    [
      "<serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/><target port='0'/></serial>",
      'ConfigUnsupported',
      /type='?tcp'? is not supported/,
    ],
  ])('refuses %s', (serial, type, message) => {
    let err: unknown;
    try {
      buildQemuArgs(parseDomainXml(domainWithSerial(serial)), paths);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe(type);
    expect((err as ApplicationFailure).message).toMatch(message);
  });
});
