// A domain's <emulator> is a program the host worker spawns: only the host's
// allow-list (HostConfig.emulators, default its own QEMU binary) may run, and a
// definition naming anything else is refused with ConfigUnsupported at define,
// start, migration Prepare and restore, before anything changes.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostConfigError, loadHostConfig } from '../src/host/host-config.js';
import type { DomainOperationResult } from '../src/common/domain-types.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';
import { domainOf, failureOf, startMigration } from './helpers/migration.js';
import { runJob } from './helpers/save.js';

const cluster = new TestCluster();
const A = 'cl-e-a';
const B = 'cl-e-b';
const QEMU = '/usr/bin/qemu-system-x86_64';
const OTHER = '/opt/cl-e/qemu-other';

const withEmulator = (name: string, emulator: string): string =>
  guestXml({ name, memoryMiB: 64 }).replace('<devices>', `<devices>\n    <emulator>${emulator}</emulator>`);
const names = (r: DomainOperationResult): string[] => ('domains' in r ? r.domains.map((d) => d.name) : []);

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([cluster.startHost(A), cluster.startHost(B, { VMFERRY_HOST_EMULATORS: `${OTHER}:/opt/cl-e/another` }), cluster.startControl()]);
});

afterAll(async () => {
  await cluster.removeAllDomains([A, B]);
  await cluster.stop();
});

describe('emulator allow-list', () => {
  it('config: VMFERRY_HOST_EMULATORS (colon-separated) or the file field, default the QEMU binary found on PATH, relative paths refused', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'vmf-cl-e-'));
    const dirs = {
      VMFERRY_HOST_STATE_DIR: join(tmp, 's'),
      VMFERRY_HOST_RUN_DIR: join(tmp, 'r'),
      VMFERRY_HOST_LOG_DIR: join(tmp, 'l'),
      VMFERRY_HOST_MEMORY_DIR: join(tmp, 'm'),
    };
    try {
      expect(loadHostConfig({ ...dirs, PATH: process.env.PATH }).emulators).toEqual([QEMU]);
      expect(loadHostConfig({ ...dirs, PATH: '/nonexistent' }).emulators).toEqual([]);
      expect(loadHostConfig({ ...dirs, VMFERRY_HOST_EMULATORS: '/a/qemu:/b/../c/qemu' }).emulators).toEqual(['/a/qemu', '/c/qemu']);
      const file = join(tmp, 'host.json');
      writeFileSync(file, JSON.stringify({ emulators: ['/x/qemu-kvm'] }));
      expect(loadHostConfig({ ...dirs, VMFERRY_HOST_CONFIG: file }).emulators).toEqual(['/x/qemu-kvm']);
      expect(() => loadHostConfig({ ...dirs, VMFERRY_HOST_EMULATORS: 'qemu-system-x86_64' })).toThrow(HostConfigError);
      writeFileSync(file, JSON.stringify({ emulators: '/x/qemu-kvm' }));
      expect(() => loadHostConfig({ ...dirs, VMFERRY_HOST_CONFIG: file })).toThrow(HostConfigError);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('define refuses /bin/sh and a path that only normalizes near the allowed one; accepts the allowed binary', async () => {
    const before = names(await cluster.op(A, { op: 'list' }));
    for (const emulator of ['/bin/sh', '/usr/bin/../bin/sh', 'qemu-system-x86_64']) {
      const f = await failureOf(cluster.op(A, { op: 'define', xml: withEmulator('cl-e-bad', emulator) }));
      // A relative path fails the XML check already; absolute ones fail the allow-list.
      expect(f.type, f.message).toBe(emulator.startsWith('/') ? 'ConfigUnsupported' : 'XmlError');
      if (emulator.startsWith('/')) expect(f.message).toMatch(new RegExp(`emulator .* is not allowed on this host \\(allowed: ${QEMU};`));
    }
    expect(names(await cluster.op(A, { op: 'list' }))).toEqual(before);
    await cluster.op(A, { op: 'define', xml: withEmulator('cl-e1', '/usr/bin/./qemu-system-x86_64') });
    expect(domainOf(await cluster.op(A, { op: 'start', name: 'cl-e1' }))).toMatchObject({ state: 'running' });
  });

  it('start refuses a definition that reached the state dir without define (written before the allow-list existed)', async () => {
    writeFileSync(join(cluster.hosts.get(A)!.baseDir, 'state', 'domains', 'cl-e-old.xml'), withEmulator('cl-e-old', '/bin/sh'));
    const f = await failureOf(cluster.op(A, { op: 'start', name: 'cl-e-old' }));
    expect(f.type).toBe('ConfigUnsupported');
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'cl-e-old' }))).toMatchObject({ state: 'shutoff' });
    expect(readdirSync(join(cluster.hosts.get(A)!.baseDir, 'run')).filter((f) => f.startsWith('cl-e-old'))).toEqual([]);
    await cluster.op(A, { op: 'undefine', name: 'cl-e-old' });
  });

  it('migration Prepare and restore on a host whose list lacks the emulator refuse it; the guest stays where it was', async () => {
    const g = domainOf(await cluster.op(A, { op: 'info', name: 'cl-e1' }));
    const handle = await startMigration(cluster.client, { domain: 'cl-e1', domainUuid: g.uuid, sourceHost: A, destinationHost: B, flags: ['live'] });
    const refused = await failureOf(handle.result());
    expect(refused.type).toBe('ConfigUnsupported');
    expect(refused.message).toMatch(new RegExp(`not allowed on this host \\(allowed: ${OTHER}, /opt/cl-e/another;`));
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'cl-e1' }))).toMatchObject({ state: 'running', pid: g.pid });
    expect(names(await cluster.op(B, { op: 'list' }))).toEqual([]);

    const path = join(cluster.root, 'cl-e1.img');
    await runJob(cluster.client, 'save', g.uuid, { host: A, name: 'cl-e1', path });
    const notOnB = await failureOf(runJob(cluster.client, 'restore', g.uuid, { host: B, path }));
    expect(notOnB.type).toBe('ConfigUnsupported');
    expect(names(await cluster.op(B, { op: 'list' }))).toEqual([]);
    await runJob(cluster.client, 'restore', g.uuid, { host: A, path });
    expect(domainOf(await cluster.op(A, { op: 'info', name: 'cl-e1' }))).toMatchObject({ state: 'running' });
    rmSync(path);
  });
});
