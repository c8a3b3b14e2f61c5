// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The tunnel's settings and names, without workers: a host's tunnel config is
// all-or-nothing, endpoints parse in both address families, and a peer is named
// by its certificate's CN and DNS subjectAltNames.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { HostConfigError, loadHostConfig } from '../src/host/host-config.js';
import { certHostNames, formatEndpoint, parseEndpoint } from '../src/migration/tunnel/tls.js';
import { parseAnswer, parseHello } from '../src/migration/tunnel/wire.js';

const base = mkdtempSync(join(tmpdir(), 'vmf-tuncfg-'));
const memory = join('/dev/shm', `vmf-tuncfg-${process.pid}`);
afterAll(() => {
  rmSync(base, { recursive: true, force: true });
  rmSync(memory, { recursive: true, force: true });
});
const load = (extra: Record<string, string>) =>
  loadHostConfig({ VMFERRY_HOST_NAME: 'tun-cfg', VMFERRY_HOST_BASE_DIR: base, VMFERRY_HOST_MEMORY_DIR: memory, ...extra });
const full = {
  VMFERRY_HOST_TUNNEL_LISTEN: '10.0.0.1:7443',
  VMFERRY_HOST_TUNNEL_CA: '/etc/ca.crt',
  VMFERRY_HOST_TUNNEL_CERT: '/etc/h.crt',
  VMFERRY_HOST_TUNNEL_KEY: '/etc/h.key',
};

describe('tunnel configuration', () => {
  it('is absent by default, complete when all four are given, refused when partial or malformed', () => {
    expect(load({}).tunnel).toBeUndefined();
    expect(load(full).tunnel).toEqual({ listen: '10.0.0.1:7443', caFile: '/etc/ca.crt', certFile: '/etc/h.crt', keyFile: '/etc/h.key' });
    expect(load({ ...full, VMFERRY_HOST_TUNNEL_LISTEN: '[::1]:7443' }).tunnel?.listen).toBe('[::1]:7443');
    expect(() => load({ VMFERRY_HOST_TUNNEL_LISTEN: '10.0.0.1:7443' })).toThrow(HostConfigError);
    expect(() => load({ ...full, VMFERRY_HOST_TUNNEL_KEY: '' })).toThrow(/together/);
    expect(() => load({ ...full, VMFERRY_HOST_TUNNEL_LISTEN: '10.0.0.1' })).toThrow(/ADDR:PORT/);
    expect(() => load({ ...full, VMFERRY_HOST_TUNNEL_CA: 'ca.crt' })).toThrow(/absolute/);
  });

  it('parses endpoints in both families and names peers by certificate', () => {
    expect(parseEndpoint('10.231.5.2:7443')).toEqual({ host: '10.231.5.2', port: 7443 });
    expect(parseEndpoint('[fd00::2]:7443')).toEqual({ host: 'fd00::2', port: 7443 });
    expect(parseEndpoint('host-b.example:9')).toEqual({ host: 'host-b.example', port: 9 });
    for (const bad of ['fd00::2:7443', 'host', 'host:0', 'host:70000', '[x]:1']) expect(() => parseEndpoint(bad), bad).toThrow(/bad tunnel endpoint/);
    expect(formatEndpoint('fd00::2', 7443)).toBe('[fd00::2]:7443');
    const cert = { subject: { CN: 'host-a' }, subjectaltname: 'DNS:host-a, DNS:host-a.example, IP Address:10.0.0.1' } as unknown as PeerCertificate;
    expect(certHostNames(cert)).toEqual(['host-a', 'host-a.example']);
    expect(certHostNames({} as PeerCertificate)).toEqual([]);
  });

  it('takes only well-formed greetings and answers', () => {
    const hello = { v: 1, jobId: 'j', name: 'n', token: 't', channel: 'data' };
    expect(parseHello(JSON.stringify(hello))).toEqual(hello);
    for (const bad of [{ ...hello, v: 2 }, { ...hello, token: '' }, { ...hello, channel: 'shell' }, { ...hello, jobId: 'x'.repeat(2000) }, null]) {
      expect(() => parseHello(JSON.stringify(bad)), JSON.stringify(bad)).toThrow();
    }
    expect(() => parseHello('{"__proto__":')).toThrow();
    expect(parseAnswer('{"ok":false,"error":"no"}')).toEqual({ ok: false, error: 'no' });
    expect(() => parseAnswer('{"ok":"yes"}')).toThrow(/malformed/);
  });
});
