// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Migration URIs and listen addresses: QEMU syntax in, QEMU syntax out.
import { describe, it, expect } from 'vitest';
import { MAX_MIGRATION_URI_LENGTH, formatListenAddress, formatMigrationUri, parseMigrationUri, type MigrationUri } from '../src/migration/uri.js';
import { ErrorType, isVmError } from '../src/common/errors.js';

function refused(input: string, message?: RegExp): void {
  let caught: unknown;
  try {
    parseMigrationUri(input);
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${JSON.stringify(input)} to be refused`).toBeDefined();
  expect(isVmError(caught, ErrorType.OperationInvalid), `expected OperationInvalid, got ${String(caught)}`).toBe(true);
  if (message) expect((caught as Error).message).toMatch(message);
}

describe('parseMigrationUri / formatMigrationUri', () => {
  const good: [string, MigrationUri, string][] = [
    ['tcp:192.0.2.7:49152', { transport: 'tcp', host: '192.0.2.7', port: 49152 }, 'tcp:192.0.2.7:49152'],
    ['tcp://192.0.2.7:49152', { transport: 'tcp', host: '192.0.2.7', port: 49152 }, 'tcp:192.0.2.7:49152'],
    ['tcp:0.0.0.0:1', { transport: 'tcp', host: '0.0.0.0', port: 1 }, 'tcp:0.0.0.0:1'],
    ['tcp:[::1]:49152', { transport: 'tcp', host: '::1', port: 49152 }, 'tcp:[::1]:49152'],
    ['tcp://[2001:db8::5]:65535', { transport: 'tcp', host: '2001:db8::5', port: 65535 }, 'tcp:[2001:db8::5]:65535'],
    ['tcp:[::]:49200', { transport: 'tcp', host: '::', port: 49200 }, 'tcp:[::]:49200'],
    ['tcp:[fe80::1%eth0]:49152', { transport: 'tcp', host: 'fe80::1%eth0', port: 49152 }, 'tcp:[fe80::1%eth0]:49152'],
    ['tcp:[::ffff:192.0.2.1]:49152', { transport: 'tcp', host: '::ffff:192.0.2.1', port: 49152 }, 'tcp:[::ffff:192.0.2.1]:49152'],
    ['tcp:host-b:49153', { transport: 'tcp', host: 'host-b', port: 49153 }, 'tcp:host-b:49153'],
    ['tcp://hv2.dc1.example.org:49153', { transport: 'tcp', host: 'hv2.dc1.example.org', port: 49153 }, 'tcp:hv2.dc1.example.org:49153'],
    ['tcp:localhost:4444', { transport: 'tcp', host: 'localhost', port: 4444 }, 'tcp:localhost:4444'],
    ['unix:/run/vmferry/web-01/migrate.sock', { transport: 'unix', path: '/run/vmferry/web-01/migrate.sock' }, 'unix:/run/vmferry/web-01/migrate.sock'],
    ['fd:migfd', { transport: 'fd', name: 'migfd' }, 'fd:migfd'],
    ['fd:42', { transport: 'fd', name: '42' }, 'fd:42'],
  ];

  for (const [input, parsed, formatted] of good) {
    it(`parses ${input}`, () => {
      expect(parseMigrationUri(input)).toEqual(parsed);
      expect(formatMigrationUri(parsed)).toBe(formatted);
      expect(parseMigrationUri(formatted)).toEqual(parsed);
    });
  }

  it('refuses invalid input with OperationInvalid', () => {
    refused('tcp:192.0.2.7', /missing port/);
    refused('tcp:192.0.2.7:', /missing port/);
    refused('tcp:[::1]', /missing port/);
    refused('tcp:192.0.2.7:0', /port '0' is not a number in 1..65535/);
    refused('tcp:192.0.2.7:65536', /65536/);
    refused('tcp:192.0.2.7:99999999', /not a number/);
    refused('tcp:192.0.2.7:49a52', /not a number/);
    refused('tcp:192.0.2.7:-1', /not a number/);
    refused('tcp:192.0.2.7:+80', /not a number/);
    refused('tcp:::1:49152', /must be written in brackets/);
    refused('tcp:fe80::1:49152', /must be written in brackets/);
    refused('tcp:[fe80::1%eth0 x]:49152', /control character or space/);
    refused('tcp:[fe80::1%]:49152', /zone/);
    refused('tcp:[192.0.2.1]:49152', /not an IPv6 address/);
    refused('tcp:[::g]:49152', /not an IPv6 address/);
    refused('tcp:[::1:49152', /missing '\]'/);
    refused('tcp:[::1]x:49152', /unexpected/);
    refused('tcp::49152', /empty host/);
    refused('tcp:[]:49152', /empty host/);
    refused('tcp:256.1.1.1:49152', /not an IPv4 address/);
    refused('tcp:010.0.0.1:49152', /not an IPv4 address/);
    refused('tcp:1.2.3:49152', /not an IPv4 address/);
    refused('tcp:bad_host:49152', /not a valid host name/);
    refused('tcp:-lead.example:49152', /not a valid host name/);
    refused('tcp:a..b:49152', /not a valid host name/);
    refused(`tcp:${'a'.repeat(64)}.example:49152`, /not a valid host name/);
    refused('tcp:host\n:49152', /control character/);
    refused('tcp:host\u0000:49152', /control character/);
    refused('tcp:host:49152\r', /control character/);
    refused(`tcp:${'a.'.repeat(MAX_MIGRATION_URI_LENGTH)}b:1`, /longer than 1024/);
    refused('exec:cat > /tmp/x', /control character or space|exec/);
    refused('exec:/bin/true', /exec: URIs are refused/);
    refused('rdma:192.0.2.7:49152', /unsupported transport 'rdma'/);
    refused('TCP:192.0.2.7:49152', /unsupported transport/);
    refused('192.0.2.7:49152', /unsupported transport '192.0.2.7'/);
    refused('localhost', /missing transport/);
    refused('', /empty/);
    refused('unix:', /empty socket path/);
    refused('unix:relative.sock', /not absolute/);
    refused(`unix:/${'d'.repeat(120)}`, /sun_path/);
    refused('unix:/run/../etc/x', /'\.\.'/);
    refused('fd:', /empty descriptor name/);
    refused('fd:a/b', /descriptor name/);
  });

  it('refuses a non-string', () => {
    expect(() => parseMigrationUri(undefined as unknown as string)).toThrowError(/must be a string/);
  });
});

describe('formatListenAddress', () => {
  it('brackets IPv6 and leaves IPv4 and host names alone', () => {
    expect(formatListenAddress('192.0.2.7', 49152)).toBe('192.0.2.7:49152');
    expect(formatListenAddress('0.0.0.0', 49152)).toBe('0.0.0.0:49152');
    expect(formatListenAddress('::', 49152)).toBe('[::]:49152');
    expect(formatListenAddress('[::1]', 49152)).toBe('[::1]:49152');
    expect(formatListenAddress('fe80::1%eth0', 5900)).toBe('[fe80::1%eth0]:5900');
    expect(formatListenAddress('host-b.example', 1)).toBe('host-b.example:1');
  });

  it('refuses bad hosts and ports', () => {
    for (const [host, port] of [
      ['', 1],
      ['::1', 0],
      ['::1', 65536],
      ['::1', 1.5],
      ['host b', 1],
      ['::zz', 1],
      ['999.1.1.1', 1],
    ] as [string, number][]) {
      let caught: unknown;
      try {
        formatListenAddress(host, port);
      } catch (err) {
        caught = err;
      }
      expect(isVmError(caught, ErrorType.OperationInvalid), `${host} ${port}`).toBe(true);
    }
  });

  it('formatMigrationUri validates what it writes', () => {
    expect(() => formatMigrationUri({ transport: 'unix', path: 'rel' })).toThrowError(/not absolute/);
    expect(() => formatMigrationUri({ transport: 'fd', name: 'x y' })).toThrowError(/descriptor name/);
    expect(() => formatMigrationUri({ transport: 'tcp', host: 'fe80::1', port: 0 })).toThrowError(/port 0/);
    expect(() => formatMigrationUri({ transport: 'exec', cmd: 'sh' } as unknown as MigrationUri)).toThrowError(/unknown transport 'exec'/);
  });
});
