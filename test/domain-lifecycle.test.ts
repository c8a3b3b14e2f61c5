// Domain lifecycle through Temporal on a real host worker with real QEMU.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainInfo, DomainOperationResult } from '../src/common/domain-types.js';
import { isProcessAlive } from '../src/support/proc.js';
import { TestCluster } from './helpers/cluster.js';
import { failureOf } from './helpers/workflow-failure.js';
import { guestXml } from './helpers/guest-xml.js';

const cluster = new TestCluster();
const HOST = 'lc-a';

function domainOf(r: DomainOperationResult): DomainInfo {
  if (!('domain' in r)) throw new Error(`no domain in ${JSON.stringify(r)}`);
  return r.domain as DomainInfo;
}

beforeAll(async () => {
  await cluster.connect();
  await Promise.all([cluster.startHost(HOST), cluster.startControl()]);
});

afterAll(async () => {
  // Destroy anything a failed test left running, then stop our workers.
  const list = await cluster.op(HOST, { op: 'list' }).catch(() => undefined);
  if (list && 'domains' in list) {
    for (const d of list.domains) if (d.state !== 'shutoff') await cluster.op(HOST, { op: 'destroy', name: d.name }).catch(() => undefined);
  }
  await cluster.stop();
});

describe('domain lifecycle through the control workflow', () => {
  it('defines, starts, suspends, resumes, reports and destroys a real QEMU guest, then undefines it', async () => {
    const xml = guestXml({ name: 'lc1' });
    const defined = await cluster.op(HOST, { op: 'define', xml });
    expect(defined).toMatchObject({ op: 'define', domain: { name: 'lc1', state: 'shutoff', persistent: true } });

    const started = domainOf(await cluster.op(HOST, { op: 'start', name: 'lc1' }));
    expect(started.state).toBe('running');
    expect(started.pid).toBeGreaterThan(1);
    expect(isProcessAlive(started.pid!)).toBe(true);
    expect(started.memoryBackingFile && existsSync(started.memoryBackingFile)).toBeTruthy();
    // Private to the service user: directories 0700, files and sockets no group/other bits.
    const host = cluster.hosts.get(HOST)!;
    for (const dir of ['state', 'run', 'log']) expect(statSync(`${host.baseDir}/${dir}`).mode & 0o777).toBe(0o700);
    for (const file of [
      `${host.baseDir}/run/lc1.xml`,
      started.qmpSocket!,
      `${host.baseDir}/log/lc1.log`,
      `${host.baseDir}/state/domains/lc1.xml`,
      started.memoryBackingFile!,
    ]) {
      expect(statSync(file).mode & 0o077, file).toBe(0);
    }

    const suspended = domainOf(await cluster.op(HOST, { op: 'suspend', name: 'lc1' }));
    expect(suspended).toMatchObject({ state: 'paused', reason: 'user' });
    const resumed = domainOf(await cluster.op(HOST, { op: 'resume', name: 'lc1' }));
    expect(resumed.state).toBe('running');

    const info = domainOf(await cluster.op(HOST, { op: 'info', name: 'lc1' }));
    expect(info).toMatchObject({ name: 'lc1', state: 'running', memoryKiB: 65536, vcpus: 1, persistent: true, host: HOST });

    const listed = await cluster.op(HOST, { op: 'list' });
    expect(listed).toMatchObject({ op: 'list', domains: [{ name: 'lc1', state: 'running' }] });

    const destroyed = domainOf(await cluster.op(HOST, { op: 'destroy', name: 'lc1' }));
    expect(destroyed.state).toBe('shutoff');
    expect(isProcessAlive(started.pid!)).toBe(false);
    expect(existsSync(started.qmpSocket!)).toBe(false);
    expect(existsSync(started.memoryBackingFile!)).toBe(false);

    await cluster.op(HOST, { op: 'undefine', name: 'lc1' });
    const after = await cluster.op(HOST, { op: 'list' });
    expect(after).toMatchObject({ op: 'list', domains: [] });
  });

  it('refuses to start a running domain, and names unknown, duplicate-name and duplicate-UUID domains with typed errors', async () => {
    const xml = guestXml({ name: 'lc2' });
    const { domain } = (await cluster.op(HOST, { op: 'define', xml })) as { domain: { uuid: string } };
    const first = domainOf(await cluster.op(HOST, { op: 'start', name: 'lc2', paused: true }));
    expect(first.state).toBe('paused');

    const again = await failureOf(cluster.op(HOST, { op: 'start', name: 'lc2' }));
    expect(again.type).toBe('OperationInvalid');
    expect(again.message).toMatch(/already running/);
    // The running guest was not disturbed by the refused start.
    expect(domainOf(await cluster.op(HOST, { op: 'info', name: 'lc2' })).pid).toBe(first.pid);

    const unknown = await failureOf(cluster.op(HOST, { op: 'start', name: 'nope' }));
    expect(unknown.type).toBe('DomainNotFound');

    const dupName = await failureOf(cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'lc2' }) }));
    expect(dupName.type).toBe('DomainExists');
    const dupUuid = await failureOf(cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'lc2-other', uuid: domain.uuid }) }));
    expect(dupUuid.type).toBe('DomainExists');

    const badXml = await failureOf(cluster.op(HOST, { op: 'define', xml: '<domain><name>x</name>' }));
    expect(badXml.type).toBe('XmlError');

    const listed = await cluster.op(HOST, { op: 'list' });
    expect(listed).toMatchObject({ op: 'list', domains: [{ name: 'lc2', state: 'paused' }] });

    await cluster.op(HOST, { op: 'destroy', name: 'lc2' });
    await cluster.op(HOST, { op: 'undefine', name: 'lc2' });
  });

  it('survives kill -9 of the host worker: the guest keeps running and a new worker reattaches', async () => {
    await cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'lc3' }) });
    const started = domainOf(await cluster.op(HOST, { op: 'start', name: 'lc3' }));
    const host = cluster.hosts.get(HOST)!;
    await host.worker!.kill9();
    expect(isProcessAlive(started.pid!)).toBe(true);

    await cluster.startHost(HOST);
    const listed = await cluster.op(HOST, { op: 'list' });
    expect(listed).toMatchObject({ op: 'list', domains: [{ name: 'lc3', state: 'running' }] });
    const info = domainOf(await cluster.op(HOST, { op: 'info', name: 'lc3' }));
    expect(info.pid).toBe(started.pid);

    expect(domainOf(await cluster.op(HOST, { op: 'suspend', name: 'lc3' })).state).toBe('paused');
    expect(domainOf(await cluster.op(HOST, { op: 'resume', name: 'lc3' })).state).toBe('running');

    await cluster.op(HOST, { op: 'destroy', name: 'lc3' });
    expect(isProcessAlive(started.pid!)).toBe(false);
    expect(readdirSync(`${host.baseDir}/run`)).toEqual([]);
    await cluster.op(HOST, { op: 'undefine', name: 'lc3' });
  });

  it('clears the status of a QEMU that died while no worker was watching', async () => {
    await cluster.op(HOST, { op: 'define', xml: guestXml({ name: 'lc4' }) });
    const started = domainOf(await cluster.op(HOST, { op: 'start', name: 'lc4' }));
    const host = cluster.hosts.get(HOST)!;
    await host.worker!.stop();
    process.kill(started.pid!, 'SIGKILL');
    await cluster.startHost(HOST);
    const info = domainOf(await cluster.op(HOST, { op: 'info', name: 'lc4' }));
    expect(info.state).toBe('shutoff');
    expect(readdirSync(`${host.baseDir}/run`)).toEqual([]);
    expect(existsSync(started.memoryBackingFile!)).toBe(false);
    await cluster.op(HOST, { op: 'undefine', name: 'lc4' });
  });
});
