// Hostile input through the real system (design §5.5): domain XML, migration
// cookies, save-image headers, file paths, workflow inputs, job signals and CLI
// arguments, each sent the way a client (or a compromised peer) would send it.
// Every case must end in a typed error, and nothing may change: every file of the
// hosts and of this test and the QEMU processes of this cluster are compared
// around each case, the domains each host lists (a workflow per host) around each
// group of cases; slow cases run as a batch with one comparison around it. The
// suite prints a table of all cases; known defects are reported in it (and as
// todos below), not hidden, and the rest must pass.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DefinitionStore } from '../src/host/definition-store.js';
import { formatMigrationCookie, parseMigrationCookie } from '../src/migration/cookie.js';
import { managedSavePath } from '../src/saveimage/managed-save.js';
import { encodeSaveHeader } from '../src/saveimage/header.js';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo } from '../src/common/domain-types.js';
import type { CoreDumpResult } from '../src/common/dump-types.js';
import { isVmError } from '../src/common/errors.js';
import { jobInfoQuery, setMaxDowntimeSignal, setMaxDowntimeUpdate, setSpeedSignal, setSpeedUpdate } from '../src/common/job-messages.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import { waitFor } from '../src/support/wait.js';
import { CaseTable, describeObserved, outcomeOf, type Observed, type Row } from './helpers/case-table.js';
import { TestCluster } from './helpers/cluster.js';
import { HEADER_OFFSET, craftImage, patchXmlBytes, writeCraftedImage } from './helpers/crafted-image.js';
import { guestXml } from './helpers/guest-xml.js';
import { startHostileSource, type HostileSource } from './helpers/hostile-source.js';
import { vmferry, type CliResult } from './helpers/vmferry-cli.js';
import { domainsOf, localWorldOf, worldOf } from './helpers/world.js';

const cluster = new TestCluster();
const HA = 'hi-a';
const HB = 'hi-b';
const EVIL = 'hi-evil';
const GUEST = 'hg1';
const table = new CaseTable();
let guest: DomainInfo;
// Under the cluster's root, which stop() removes.
const saves = join(cluster.root, 'saves');
const outside = join(cluster.root, 'outside');
const images = join(cluster.root, 'images');
let evil: HostileSource;
let seq = 0;

const updateFailureType = (err: unknown): string =>
  err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure ? (err.cause.type ?? 'untyped') : `not an update failure: ${String(err)}`;
const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

// ---- running requests ---------------------------------------------------

function run(workflow: string, input: unknown, workflowId = `hostile-${process.pid}-${seq++}`): Promise<unknown> {
  return cluster.client.workflow.execute(workflow, { taskQueue: CONTROL_TASK_QUEUE, workflowId, args: [input], workflowExecutionTimeout: '2 minutes' });
}

/** A job workflow the way clients start one: one ID per domain, a second job refused. */
function startJob(workflow: string, uuid: string, input: unknown): Promise<WorkflowHandle> {
  return cluster.client.workflow.start(workflow, {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(uuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
    workflowExecutionTimeout: '2 minutes',
  });
}

const job = (workflow: string, input: unknown, uuid: string = randomUUID()): Promise<unknown> => startJob(workflow, uuid, input).then((h) => h.result());
const op = (operation: unknown, host: unknown = HA): Promise<unknown> => run('domainOperation', { host, operation });

// ---- the case runner ----------------------------------------------------

interface Case {
  input: string;
  expected: string;
  send: () => Promise<Observed>;
  /** Hosts whose domain lists are compared (default: hi-a). */
  hosts?: string[];
  /** Extra evidence that must not change (a file's hash, ...). */
  guard?: () => string;
  /** A known defect (file:line and what is wrong): reported in the table, not enforced. */
  bug?: string;
  /** Starts a job on the test guest: never together with another such case. */
  serial?: boolean;
}

const extraDirs = (): string[] => [saves, outside, images];
const hostsOf = (list: Case[]): string[] => [...new Set(list.flatMap((c) => c.hosts ?? [HA]))];

function record(group: string, c: Case, o: Observed, unchanged: boolean): Row {
  const row = table.add({ group, input: c.input, expected: c.expected, observed: describeObserved(o), unchanged, bug: c.bug });
  if (c.bug && row.pass) console.warn(`case "${c.input}" passes now: the known bug "${c.bug}" looks fixed`);
  return row;
}

/**
 * One `it` per case: files and QEMU processes are compared around each case;
 * the domains the hosts list (a workflow per host) around the whole group.
 */
function cases(group: string, list: Case[]): void {
  const rows: Row[] = [];
  let domainsBefore: string[] = [];
  it(`${group}: the hosts' domains before the cases`, async () => {
    domainsBefore = await domainsOf(cluster, hostsOf(list));
  });
  for (const c of list) {
    it(`${group}: ${c.input} -> ${c.expected}`, async () => {
      const before = localWorldOf(cluster, extraDirs());
      const guardBefore = c.guard?.();
      const observed = await c.send();
      const after = localWorldOf(cluster, extraDirs());
      const guardAfter = c.guard?.();
      rows.push(record(group, c, observed, JSON.stringify(after) === JSON.stringify(before) && guardAfter === guardBefore));
      expect(after, `${c.input}: nothing may change`).toEqual(before);
      expect(guardAfter, `${c.input}: guarded evidence`).toBe(guardBefore);
      if (!c.bug) expect(observed.type, `${c.input}: ${observed.message ?? ''}`).toBe(c.expected);
    });
  }
  it(`${group}: the hosts list the same domains after every case`, async () => {
    const after = await domainsOf(cluster, hostsOf(list));
    if (JSON.stringify(after) !== JSON.stringify(domainsBefore)) {
      for (const r of rows) Object.assign(r, { unchanged: false, pass: false });
    }
    expect(after).toEqual(domainsBefore);
  });
}

/** Slow cases (timeouts, process start-up) sent together: one before/after comparison covers the batch. */
async function checkBatch(group: string, list: Case[], concurrency: number): Promise<void> {
  const before = await worldOf(cluster, hostsOf(list), extraDirs());
  const guards = list.map((c) => c.guard?.());
  const observed: Observed[] = new Array<Observed>(list.length);
  const parallel = list.flatMap((c, i) => (c.serial ? [] : [i]));
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let k = next++; k < parallel.length; k = next++) {
        const i = parallel[k]!;
        observed[i] = await list[i]!.send();
      }
    }),
  );
  for (const [i, c] of list.entries()) if (c.serial) observed[i] = await c.send();
  const after = await worldOf(cluster, hostsOf(list), extraDirs());
  const unchanged = JSON.stringify(after) === JSON.stringify(before);
  list.forEach((c, i) => record(group, c, observed[i]!, unchanged && c.guard?.() === guards[i]));
  expect(after, `${group}: nothing may change`).toEqual(before);
  expect(list.map((c) => c.guard?.())).toEqual(guards);
  expect(list.flatMap((c, i) => (c.bug || observed[i]!.type === c.expected ? [] : [`${c.input}: ${describeObserved(observed[i]!)}`]))).toEqual([]);
}

const wf = (p: () => Promise<unknown>) => (): Promise<Observed> => outcomeOf(p());

// ---- fixtures -------------------------------------------------------------

const LAUGHS = [
  '<?xml version="1.0"?>',
  '<!DOCTYPE domain [',
  '  <!ENTITY lol "lol">',
  '  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">',
  '  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">',
  ']>',
].join('\n');

function xmlNamed(name: string, uuid: string = randomUUID()): string {
  return guestXml({ name: 'NAME_SLOT', uuid }).replace('<name>NAME_SLOT</name>', `<name>${name}</name>`);
}

beforeAll(async () => {
  await cluster.connect();
  for (const d of [saves, outside, images]) mkdirSync(d);
  [evil] = await Promise.all([
    startHostileSource(cluster.address, EVIL),
    cluster.startHost(HA, { VMFERRY_SAVE_DIRS: saves }),
    cluster.startHost(HB),
    cluster.startControl(),
  ]);
  await cluster.op(HA, { op: 'define', xml: guestXml({ name: GUEST, memoryMiB: 64 }) });
  guest = ((await cluster.op(HA, { op: 'start', name: GUEST })) as { domain: DomainInfo }).domain;
  // What traversal cases aim at: files outside every host directory.
  writeFileSync(join(outside, 'victim.xml'), xmlNamed('victim'));
  writeFileSync(join(outside, 'victim.save'), 'not yours to delete\n');
  writeFileSync(join(outside, 'decoy'), 'a file a symlink will point at\n');
  // Longer than the 92-byte header, so the magic check (not the length check) refuses it.
  writeFileSync(join(outside, 'token'), `SECRET-TOKEN-0123456789abcdef${'f'.repeat(200)}\n`);
  writeFileSync(join(outside, 'out.img'), craftImage(xmlNamed('outimg')));
  writeFileSync(join(saves, 'keep.img'), 'keep me\n');
});

afterAll(async () => {
  console.log(`\nhostile inputs\n${table.format()}\n`);
  await cluster.op(HA, { op: 'destroy', name: GUEST }).catch(() => undefined);
  await cluster.op(HA, { op: 'undefine', name: GUEST }).catch(() => undefined);
  await evil?.stop();
  await cluster.stop(); // removes saves/, outside/ and images/ with the cluster's root
});

// ---- domain XML, defined through the domainOperation workflow --------------

describe('domain XML through Temporal', () => {
  const define = (xml: unknown) => wf(() => op({ op: 'define', xml }));
  cases('xml', [
    { input: 'billion laughs (DOCTYPE with nested entities)', expected: 'XmlError', send: define(`${LAUGHS}\n${xmlNamed('&lol3;')}`) },
    {
      input: 'external entity SYSTEM file:///etc/passwd',
      expected: 'XmlError',
      send: define(`<!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n${xmlNamed('&x;')}`),
    },
    {
      input: '1.5 MiB document (cap 1 MiB)',
      expected: 'XmlError',
      send: define(xmlNamed('big').replace('<devices>', `<metadata><x:b xmlns:x='urn:x'>${'x'.repeat(1536 * 1024)}</x:b></metadata>\n  <devices>`)),
    },
    { input: "name '../../etc/cron.d/x'", expected: 'XmlError', send: define(xmlNamed('../../etc/cron.d/x')) },
    { input: 'name with NUL (&#0;)', expected: 'XmlError', send: define(xmlNamed('a&#0;b')) },
    { input: 'name of 300 bytes', expected: 'XmlError', send: define(xmlNamed('n'.repeat(300))) },
    {
      input: 'memory 16 EiB',
      expected: 'XmlError',
      send: define(xmlNamed('huge').replace(/<memory unit='MiB'>64<\/memory>/, "<memory unit='EiB'>16</memory>")),
    },
    {
      input: '10 000 nested elements',
      expected: 'XmlError',
      send: define(xmlNamed('deep').replace('<devices>', `<metadata>${'<a>'.repeat(10_000)}${'</a>'.repeat(10_000)}</metadata>\n  <devices>`)),
    },
    {
      input: '__proto__ element (prototype pollution)',
      expected: 'XmlError',
      send: define(xmlNamed('proto').replace('<devices>', '<__proto__><polluted>1</polluted></__proto__>\n  <devices>')),
    },
    { input: "running guest's name, another UUID", expected: 'DomainExists', send: define(xmlNamed(GUEST)) },
    { input: "running guest's UUID, another name", expected: 'DomainExists', send: () => define(xmlNamed('twin', guest.uuid))() },
    { input: 'xml is a number (42)', expected: 'OperationInvalid', send: define(42) },
    {
      input: "<emulator>/bin/sh</emulator> (not on the host's allow-list)",
      expected: 'ConfigUnsupported',
      send: define(xmlNamed('shemu').replace('<devices>', '<devices>\n    <emulator>/bin/sh</emulator>')),
    },
  ]);

  it('leaves Object.prototype alone', () => {
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

// ---- migration cookies ------------------------------------------------------

describe('migration cookies (sent by a fake source host)', () => {
  const U = '6f1c2a4e-3b7d-4c55-9a0e-2d8f61b7c3a9';
  const H = '0b6e9d2c-71a4-4f3e-8c5d-93e2a1f07b64';
  const cookie = (inner: string, head = ''): string =>
    `${head}<qemu-migration>\n  <name>c1</name>\n  <uuid>${U}</uuid>\n  <hostname>src</hostname>\n  <hostuuid>${H}</hostuuid>\n${inner}</qemu-migration>\n`;
  const parse = (text: unknown, localHostUuid?: string) => async (): Promise<Observed> => {
    try {
      parseMigrationCookie(text as string, { name: 'c1', uuid: U, ...(localHostUuid ? { localHostUuid } : {}) });
      return { type: 'succeeded' };
    } catch (err) {
      return isVmError(err)
        ? { type: err.type ?? 'untyped', message: err.message }
        : { type: `untyped ${(err as Error).name}`, message: (err as Error).message };
    }
  };
  cases('cookie', [
    { input: 'parse: billion laughs DOCTYPE', expected: 'XmlError', send: parse(cookie('', `${LAUGHS}\n`)) },
    { input: 'parse: 17 KiB (cap 16 KiB)', expected: 'XmlError', send: parse(cookie(`  <junk>${'j'.repeat(17 * 1024)}</junk>\n`)) },
    { input: 'parse: another domain UUID', expected: 'OperationInvalid', send: parse(cookie('').replace(U, randomUUID())) },
    { input: "parse: unknown mandatory feature 'teleport'", expected: 'OperationInvalid', send: parse(cookie("  <feature name='teleport'/>\n")) },
    { input: 'parse: written by this very host (same-host)', expected: 'OperationInvalid', send: parse(cookie(''), H) },
    { input: 'parse: <constructor> element', expected: 'XmlError', send: parse(cookie('  <constructor><prototype/></constructor>\n')) },
    {
      input: 'parse: statistics value 1e30',
      expected: 'XmlError',
      send: parse(cookie('  <statistics>\n    <downtime>1000000000000000000000000000000</downtime>\n  </statistics>\n')),
    },
    { input: 'parse: not a string (null)', expected: 'XmlError', send: parse(null) },
  ]);

  // Through Temporal: the fake source's Begin hands the cookie to the real destination's Prepare.
  function migrateFromFake(domain: string, beginCookie: (uuid: string) => string, performCookie?: (uuid: string) => string) {
    return async (): Promise<Observed> => {
      const uuid = randomUUID();
      evil.scripts.set(domain, { uuid, beginCookie: beginCookie(uuid), ...(performCookie ? { performCookie: performCookie(uuid) } : {}) });
      return await outcomeOf(job('migrate', { domain, domainUuid: uuid, sourceHost: EVIL, destinationHost: HB, flags: ['live'] }, uuid));
    };
  }
  const good =
    (domain: string) =>
    (uuid: string): string =>
      formatMigrationCookie({ name: domain, uuid, hostname: EVIL, hostuuid: evil.hostUuid, features: [], mandatory: [] });
  const hostUuidOf = (host: string): string => readFileSync(join(cluster.hosts.get(host)!.baseDir, 'state', 'host-uuid'), 'utf8').trim();
  const hosts = [HA, HB];
  it('hostile cookies from a fake source reach the real destination and are refused there', () =>
    checkBatch(
      'cookie',
      [
        { input: 'Prepare (fake source): DOCTYPE cookie', expected: 'XmlError', hosts, send: migrateFromFake('ev1', (u) => `${LAUGHS}\n${good('ev1')(u)}`) },
        {
          input: 'Prepare (fake source): cookie about another UUID',
          expected: 'OperationInvalid',
          hosts,
          send: migrateFromFake('ev2', () => good('ev2')(randomUUID())),
        },
        {
          input: "Prepare (fake source): mandatory feature 'teleport'",
          expected: 'OperationInvalid',
          hosts,
          send: migrateFromFake('ev3', (u) => good('ev3')(u).replace('</hostuuid>', "</hostuuid>\n  <feature name='teleport'/>")),
        },
        {
          input: 'Prepare (fake source): 20 KiB cookie',
          expected: 'XmlError',
          hosts,
          send: migrateFromFake('ev4', (u) => good('ev4')(u).replace('</qemu-migration>', `<pad>${'p'.repeat(20 * 1024)}</pad></qemu-migration>`)),
        },
        {
          input: "Prepare (fake source): cookie claims the destination's host UUID",
          expected: 'OperationInvalid',
          hosts,
          send: migrateFromFake('ev5', (u) =>
            formatMigrationCookie({ name: 'ev5', uuid: u, hostname: EVIL, hostuuid: hostUuidOf(HB), features: [], mandatory: [] }),
          ),
        },
        {
          input: 'Prepare (fake source): persistent <domain> with an XXE',
          expected: 'XmlError',
          hosts,
          send: migrateFromFake('ev6', (u) =>
            good('ev6')(u).replace(
              '</hostuuid>',
              `</hostuuid>\n  <feature name='persistent'/>\n  <domain type='qemu'><name>&xxe;</name><uuid>${u}</uuid></domain>`,
            ),
          ),
        },
        {
          // Prepare succeeds (a real incoming QEMU starts on hi-b); Finish must refuse the cookie and the undo kill that QEMU.
          input: 'Finish (fake source): DOCTYPE cookie after Perform',
          expected: 'XmlError',
          hosts,
          send: migrateFromFake('ev7', good('ev7'), (u) => `<!DOCTYPE qemu-migration [<!ENTITY x SYSTEM "file:///etc/shadow">]>\n${good('ev7')(u)}`),
        },
      ],
      4,
    ));
});

// ---- save-image headers, handed to the restore workflow -----------------------

describe('save-image headers through restore', () => {
  const restoreOf = (file: string, xml: string, edit?: (img: Buffer) => Buffer) => async (): Promise<Observed> => {
    const path = join(images, file);
    writeCraftedImage(path, xml, edit);
    try {
      return await outcomeOf(job('restore', { host: HA, path }));
    } finally {
      rmSync(path, { force: true });
    }
  };
  const u32 =
    (offset: number, v: number) =>
    (img: Buffer): Buffer => (img.writeUInt32LE(v, offset), img);
  cases('image', [
    { input: 'truncated to 50 bytes', expected: 'OperationInvalid', send: restoreOf('t.img', xmlNamed('img1'), (b) => b.subarray(0, 50)) },
    {
      input: "wrong magic 'NotLibvirtImage!'",
      expected: 'OperationInvalid',
      send: restoreOf('m.img', xmlNamed('img2'), (b) => (b.write('NotLibvirtImage!', 0, 'latin1'), b)),
    },
    {
      input: 'partial magic LibvirtQemudPart',
      expected: 'OperationInvalid',
      send: restoreOf('p.img', xmlNamed('img3'), (b) => (b.write('LibvirtQemudPart', 0, 'latin1'), b)),
    },
    { input: 'data_len 0xFFFFFF00', expected: 'OperationInvalid', send: restoreOf('l.img', xmlNamed('img4'), u32(HEADER_OFFSET.dataLen, 0xffffff00)) },
    { input: 'data_len 0', expected: 'OperationInvalid', send: restoreOf('z.img', xmlNamed('img5'), u32(HEADER_OFFSET.dataLen, 0)) },
    { input: 'version 99', expected: 'OperationInvalid', send: restoreOf('v.img', xmlNamed('img6'), u32(HEADER_OFFSET.version, 99)) },
    { input: 'compression format 77', expected: 'OperationInvalid', send: restoreOf('f.img', xmlNamed('img7'), u32(HEADER_OFFSET.format, 77)) },
    {
      input: 'header only, no stream',
      expected: 'OperationInvalid',
      send: restoreOf('h.img', xmlNamed('img8'), () => encodeSaveHeader({ domainXml: xmlNamed('img8'), wasRunning: true, format: 'raw', complete: true })),
    },
    {
      input: 'XML with an XXE DOCTYPE inside the image',
      expected: 'XmlError',
      send: restoreOf('d.img', `<!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n${xmlNamed('&x;')}`),
    },
    {
      input: 'XML that is not UTF-8',
      expected: 'OperationInvalid',
      send: restoreOf('u.img', xmlNamed('img-utf'), (b) => patchXmlBytes(b, 'utf', Buffer.from([0xff, 0xfe, 0xfd]))),
    },
    { input: 'image of the running guest (a second copy)', expected: 'OperationInvalid', send: () => restoreOf('c.img', xmlNamed(GUEST, guest.uuid))() },
    { input: "running guest's name, another UUID", expected: 'OperationInvalid', send: restoreOf('n.img', xmlNamed(GUEST)) },
  ]);
});

// ---- file paths ---------------------------------------------------------------

describe('file paths', () => {
  const save = (path: unknown, extra: Record<string, unknown> = {}) => wf(() => job('save', { host: HA, name: GUEST, path, ...extra }, guest.uuid));
  const dump = (path: unknown) => wf(() => job('coreDump', { host: HA, name: GUEST, uuid: guest.uuid, path }, guest.uuid));
  const restore = (path: unknown) => wf(() => job('restore', { host: HA, path }));
  const passwd = (): string => sha('/etc/passwd');
  cases('path', [
    { input: "save to a relative path 'hg1.img'", expected: 'OperationInvalid', send: save('hg1.img') },
    { input: "save to '<saves>/../outside/x.img'", expected: 'OperationInvalid', send: () => save(`${saves}/../outside/x.img`)() },
    {
      input: 'save to a symlink -> /etc/passwd',
      expected: 'OperationInvalid',
      guard: passwd,
      send: async () => {
        symlinkSync('/etc/passwd', join(saves, 'pw.img'));
        try {
          return await save(join(saves, 'pw.img'))();
        } finally {
          rmSync(join(saves, 'pw.img'));
        }
      },
    },
    {
      // As root, O_TRUNC through the link would empty the target: a decoy stands in for /etc/passwd.
      input: 'save with overwrite to a symlink -> a file outside',
      expected: 'OperationInvalid',
      guard: () => sha(join(outside, 'decoy')),
      send: async () => {
        symlinkSync(join(outside, 'decoy'), join(saves, 'decoy.img'));
        try {
          return await save(join(saves, 'decoy.img'), { overwrite: true })();
        } finally {
          rmSync(join(saves, 'decoy.img'));
        }
      },
    },
    {
      input: 'save to a path that is a directory',
      expected: 'OperationInvalid',
      send: async () => {
        mkdirSync(join(saves, 'sub'));
        try {
          return await save(join(saves, 'sub'), { overwrite: true })();
        } finally {
          rmSync(join(saves, 'sub'), { recursive: true });
        }
      },
    },
    { input: 'save under /proc (/proc/self/x.img)', expected: 'OperationInvalid', send: save('/proc/self/x.img') },
    { input: 'save to a 5000-byte path', expected: 'OperationInvalid', send: () => save(`${saves}/${'d/'.repeat(2500)}x.img`)() },
    { input: 'save to a 300-byte file name', expected: 'OperationInvalid', send: () => save(`${saves}/${'n'.repeat(300)}.img`)() },
    { input: 'save with NUL in the path', expected: 'OperationInvalid', send: () => save(`${saves}/a\0b.img`)() },
    { input: 'save outside VMFERRY_SAVE_DIRS', expected: 'OperationInvalid', send: () => save(join(outside, 'x.img'))() },
    { input: 'dump outside VMFERRY_SAVE_DIRS', expected: 'OperationInvalid', send: () => dump(join(outside, 'core.elf'))() },
    { input: 'dump under /proc (/proc/self/core.elf)', expected: 'OperationInvalid', send: dump('/proc/self/core.elf') },
    {
      input: 'dump to a symlink -> /etc/passwd',
      expected: 'OperationInvalid',
      guard: passwd,
      send: async () => {
        symlinkSync('/etc/passwd', join(saves, 'pw.elf'));
        try {
          return await dump(join(saves, 'pw.elf'))();
        } finally {
          rmSync(join(saves, 'pw.elf'));
        }
      },
    },
    { input: 'restore from a directory', expected: 'OperationInvalid', send: () => restore(saves)() },
    { input: 'restore from /dev/zero', expected: 'OperationInvalid', send: restore('/dev/zero') },
    { input: 'restore from /proc/self/status', expected: 'OperationInvalid', send: restore('/proc/self/status') },
    {
      input: 'restore from a token file: no byte of it in the error',
      expected: 'OperationInvalid',
      send: async () => {
        const o = await restore(join(outside, 'token'))();
        return o.message?.includes('SECRET') || o.message?.includes('5345435245') ? { type: 'leaked file content', message: o.message } : o;
      },
    },
    {
      input: 'save-image-define on an image outside VMFERRY_SAVE_DIRS',
      expected: 'OperationInvalid',
      guard: () => sha(join(outside, 'out.img')),
      send: wf(() => run('saveImageXml', { host: HA, op: 'define', path: join(outside, 'out.img'), xml: xmlNamed('outimg') })),
    },
    {
      input: 'save-image-define through a symlink in saves/ to an image outside',
      expected: 'OperationInvalid',
      guard: () => sha(join(outside, 'out.img')),
      send: async () => {
        symlinkSync(join(outside, 'out.img'), join(saves, 'out-link.img'));
        try {
          return await outcomeOf(run('saveImageXml', { host: HA, op: 'define', path: join(saves, 'out-link.img'), xml: xmlNamed('outimg') }));
        } finally {
          rmSync(join(saves, 'out-link.img'));
        }
      },
    },
  ]);
});

// ---- workflow inputs ----------------------------------------------------------

describe('workflow inputs', () => {
  const hostDir = (sub: string): string => join(cluster.hosts.get(HA)!.baseDir, 'state', sub);
  const victim = (): string => sha(join(outside, 'victim.xml')) + sha(join(outside, 'victim.save'));
  const traversal = (sub: string): string => relative(hostDir(sub), join(outside, 'victim'));
  const migrate = (input: unknown) => wf(() => job('migrate', input));
  cases('input', [
    { input: 'domainOperation(null)', expected: 'OperationInvalid', send: wf(() => run('domainOperation', null)) },
    { input: 'domainOperation host 42', expected: 'OperationInvalid', send: wf(() => op({ op: 'list' }, 42)) },
    { input: "domainOperation host 'hi-a/../x'", expected: 'OperationInvalid', send: wf(() => op({ op: 'list' }, 'hi-a/../x')) },
    { input: 'domainOperation without operation', expected: 'OperationInvalid', send: wf(() => run('domainOperation', { host: HA })) },
    { input: 'domainOperation op of 10 000 characters', expected: 'OperationInvalid', send: wf(() => op({ op: 'x'.repeat(10_000), name: GUEST })) },
    { input: 'info with name 42', expected: 'OperationInvalid', send: wf(() => op({ op: 'info', name: 42 })) },
    { input: 'info without a name', expected: 'OperationInvalid', send: wf(() => op({ op: 'info' })) },
    { input: "info with name 'a\\0b'", expected: 'OperationInvalid', send: wf(() => op({ op: 'info', name: 'a\0b' })) },
    {
      input: "undefine '../../../outside/victim' (traversal)",
      expected: 'OperationInvalid',
      guard: victim,
      send: () => wf(() => op({ op: 'undefine', name: traversal('domains') }))(),
    },
    {
      input: "dumpxml '../../../outside/victim' (traversal)",
      expected: 'OperationInvalid',
      guard: victim,
      send: () => wf(() => op({ op: 'dumpxml', name: traversal('domains') }))(),
    },
    {
      input: "managedSaveRemove '../../../outside/victim'",
      expected: 'OperationInvalid',
      guard: victim,
      send: () => wf(() => run('managedSaveRemove', { host: HA, name: traversal('save') }))(),
    },
    {
      input: "managedStart '../../../outside/victim'",
      expected: 'OperationInvalid',
      guard: victim,
      send: () => wf(() => job('managedStart', { host: HA, name: traversal('save') }))(),
    },
    { input: 'save(null)', expected: 'OperationInvalid', send: wf(() => job('save', null)) },
    { input: 'save without path', expected: 'OperationInvalid', send: wf(() => job('save', { host: HA, name: GUEST })) },
    { input: 'save with name 42', expected: 'OperationInvalid', send: wf(() => job('save', { host: HA, name: 42, path: join(saves, 'x.img') })) },
    { input: "save with name 'a/b'", expected: 'OperationInvalid', send: wf(() => job('save', { host: HA, name: 'a/b', path: join(saves, 'x.img') })) },
    {
      input: "save format 'rar'",
      expected: 'OperationInvalid',
      send: wf(() => job('save', { host: HA, name: GUEST, path: join(saves, 'x.img'), format: 'rar' })),
    },
    {
      input: 'save running and paused',
      expected: 'OperationInvalid',
      send: wf(() => job('save', { host: HA, name: GUEST, path: join(saves, 'x.img'), running: true, paused: true })),
    },
    {
      input: "save, extra fields managed:true, overwrite:'yes', onto a file",
      expected: 'OperationInvalid',
      guard: () => sha(join(saves, 'keep.img')),
      send: wf(() => job('save', { host: HA, name: GUEST, path: join(saves, 'keep.img'), managed: true, overwrite: 'yes', evil: { polluted: 1 } }, guest.uuid)),
    },
    { input: 'restore(null)', expected: 'OperationInvalid', send: wf(() => job('restore', null)) },
    { input: 'restore with path 42', expected: 'OperationInvalid', send: wf(() => job('restore', { host: HA, path: 42 })) },
    {
      input: 'coreDump with uuid 5',
      expected: 'OperationInvalid',
      send: wf(() => job('coreDump', { host: HA, name: GUEST, uuid: 5, path: join(saves, 'c.elf') })),
    },
    {
      input: 'coreDump with bandwidthMiBps -1',
      expected: 'OperationInvalid',
      send: () => wf(() => job('coreDump', { host: HA, name: GUEST, uuid: guest.uuid, path: join(saves, 'c.elf'), bandwidthMiBps: -1 }, guest.uuid))(),
    },
    {
      input: "coreDump with name 'a/b'",
      expected: 'OperationInvalid',
      send: wf(() => job('coreDump', { host: HA, name: 'a/b', uuid: randomUUID(), path: join(saves, 'c.elf') })),
    },
    { input: 'migrate(null)', expected: 'OperationInvalid', send: migrate(null) },
    {
      input: "migrate flags 'live' (a string)",
      expected: 'OperationInvalid',
      send: migrate({ domain: GUEST, sourceHost: HA, destinationHost: HB, flags: 'live' }),
    },
    {
      input: "migrate bandwidthMiBps '100' (a string)",
      expected: 'OperationInvalid',
      send: migrate({ domain: GUEST, sourceHost: HA, destinationHost: HB, bandwidthMiBps: '100' }),
    },
    { input: 'migrate to the same host', expected: 'OperationInvalid', send: migrate({ domain: GUEST, sourceHost: HA, destinationHost: HA }) },
    { input: "migrate dname '../x'", expected: 'OperationInvalid', send: migrate({ domain: GUEST, sourceHost: HA, destinationHost: HB, dname: '../x' }) },
    {
      input: "migrate flags ['tunnelled']",
      expected: 'ConfigUnsupported',
      send: migrate({ domain: GUEST, sourceHost: HA, destinationHost: HB, flags: ['tunnelled'] }),
    },
    {
      input: 'migrate timeoutSuspendSeconds 0',
      expected: 'OperationInvalid',
      send: migrate({ domain: GUEST, sourceHost: HA, destinationHost: HB, flags: ['live'], timeoutSuspendSeconds: 0 }),
    },
    {
      input: 'migrate timeoutSuspendSeconds 1e9',
      expected: 'OperationInvalid',
      send: migrate({ domain: GUEST, sourceHost: HA, destinationHost: HB, flags: ['live'], timeoutSuspendSeconds: 1e9 }),
    },
    {
      input: "migrate timeoutSuspendSeconds '5' (a string)",
      expected: 'OperationInvalid',
      send: migrate({ domain: GUEST, sourceHost: HA, destinationHost: HB, flags: ['live'], timeoutSuspendSeconds: '5' }),
    },
    {
      input: 'migrate timeoutSuspendSeconds 5 without live',
      expected: 'OperationInvalid',
      send: migrate({ domain: GUEST, sourceHost: HA, destinationHost: HB, timeoutSuspendSeconds: 5 }),
    },
    {
      input: 'saveImageXml op of 5000 characters',
      expected: 'OperationInvalid',
      send: wf(() => run('saveImageXml', { host: HA, op: 'y'.repeat(5000), path: join(saves, 'x.img') })),
    },
  ]);

  it('the host refuses traversal names itself too, whatever a caller checked before', () => {
    // Defence in depth: workflows refuse these first, but activities are reachable from any workflow on the host queue.
    const stateDir = join(cluster.hosts.get(HA)!.baseDir, 'state');
    const store = new DefinitionStore(stateDir);
    const name = traversal('domains');
    for (const touch of [() => store.has(name), () => store.read(name), () => store.remove(name), () => managedSavePath(stateDir, traversal('save'))]) {
      let err: unknown;
      try {
        touch();
      } catch (e) {
        err = e;
      }
      expect(isVmError(err, 'OperationInvalid'), String(err)).toBe(true);
    }
    expect(readFileSync(join(outside, 'victim.xml'), 'utf8')).toContain('<name>victim</name>');
  });
});

// ---- unknown hosts: a typed error soon, not a wait for a schedule-to-start timeout ----

interface Scheduled {
  activity: string;
  scheduleToStartS: number;
}

/** The activities the workflow scheduled so far, with their schedule-to-start timeouts. */
async function scheduled(handle: WorkflowHandle): Promise<Scheduled[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).flatMap((e) => {
    const a = e.activityTaskScheduledEventAttributes;
    return a ? [{ activity: a.activityType?.name ?? '?', scheduleToStartS: Number(a.scheduleToStartTimeout?.seconds ?? 0) }] : [];
  });
}

describe('unknown hosts', () => {
  /** A host's first step waits this long for a worker (FIRST_STEP_SCHEDULE_TO_START, domainOperation's). */
  const FIRST_STEP_S = 15;
  /**
   * Starts the request and, once the workflow has scheduled `activity` on the
   * unknown host's queue, waits a bounded time for it to end by itself: its
   * outcome, or `pending` (then ends it) when it would wait longer.
   */
  async function endsSoon(start: () => Promise<WorkflowHandle>, activity: string): Promise<Observed> {
    const handle = await start();
    const s = await waitFor(`${activity} scheduled`, async () => (await scheduled(handle)).find((x) => x.activity === activity), {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const t0 = Date.now();
    const ended = await waitFor('the request to end', async () => (await handle.describe()).status.name !== 'RUNNING', {
      timeoutMs: (FIRST_STEP_S + 10) * 1000,
      intervalMs: 200,
    }).catch(() => false);
    if (!ended) {
      await handle.terminate('hostile-inputs test: observed enough');
      return {
        type: 'pending',
        message: `${activity} waits up to ${s.scheduleToStartS} s for a worker (schedule-to-start); still running ${Date.now() - t0} ms after scheduling`,
      };
    }
    const o = await outcomeOf(handle.result());
    return { ...o, message: `${o.message ?? ''} (${activity} schedule-to-start ${s.scheduleToStartS} s, ended ${Date.now() - t0} ms after scheduling)` };
  }
  const opOn = (operation: unknown) => () =>
    cluster.client.workflow.start('domainOperation', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: `hostile-unknown-${seq++}`,
      args: [{ host: 'hi-nohost', operation }],
      workflowExecutionTimeout: '3 minutes',
    });
  const onNoHost = (workflow: string, input: Record<string, unknown>) => () => startJob(workflow, randomUUID(), { host: 'hi-nohost', ...input });
  it('each request naming an unknown host ends soon with a typed error, changing nothing', () =>
    checkBatch(
      'host',
      [
        {
          input: "domainOperation info on unknown host 'hi-nohost'",
          expected: 'OperationFailed',
          send: () => endsSoon(opOn({ op: 'info', name: GUEST }), 'domainInfo'),
        },
        {
          input: "save on unknown host 'hi-nohost'",
          expected: 'OperationFailed',
          send: () => endsSoon(onNoHost('save', { name: GUEST, path: join(saves, 'x.img') }), 'saveBegin'),
        },
        {
          input: "restore on unknown host 'hi-nohost'",
          expected: 'OperationFailed',
          send: () => endsSoon(onNoHost('restore', { path: join(saves, 'x.img') }), 'restoreBegin'),
        },
        {
          input: "managedSave on unknown host 'hi-nohost'",
          expected: 'OperationFailed',
          send: () => endsSoon(onNoHost('managedSave', { name: GUEST }), 'saveBegin'),
        },
        {
          input: "managedStart on unknown host 'hi-nohost'",
          expected: 'OperationFailed',
          send: () => endsSoon(onNoHost('managedStart', { name: GUEST }), 'managedStartBegin'),
        },
        {
          input: "managedSaveRemove on unknown host 'hi-nohost'",
          expected: 'OperationFailed',
          send: () =>
            endsSoon(
              () =>
                cluster.client.workflow.start('managedSaveRemove', {
                  taskQueue: CONTROL_TASK_QUEUE,
                  workflowId: `hostile-unknown-${seq++}`,
                  args: [{ host: 'hi-nohost', name: GUEST }],
                }),
              'managedSaveRemove',
            ),
        },
        {
          input: "save-image-dumpxml on unknown host 'hi-nohost'",
          expected: 'OperationFailed',
          send: () =>
            endsSoon(
              () =>
                cluster.client.workflow.start('saveImageXml', {
                  taskQueue: CONTROL_TASK_QUEUE,
                  workflowId: `hostile-unknown-${seq++}`,
                  args: [{ host: 'hi-nohost', op: 'dumpxml', path: join(saves, 'x.img') }],
                }),
              'saveImageDumpXml',
            ),
        },
        {
          input: "coreDump on unknown host 'hi-nohost'",
          expected: 'OperationFailed',
          send: () => endsSoon(onNoHost('coreDump', { name: GUEST, uuid: randomUUID(), path: join(saves, 'c.elf') }), 'dumpBegin'),
        },
        {
          input: "migrate to unknown destination 'hi-nohost'",
          expected: 'OperationFailed',
          hosts: [HA, HB],
          send: async () => {
            const t0 = Date.now();
            const o = await outcomeOf(
              job('migrate', { domain: GUEST, domainUuid: guest.uuid, sourceHost: HA, destinationHost: 'hi-nohost', flags: ['live'] }, guest.uuid),
            );
            return { ...o, message: `${o.message ?? ''} (after ${Date.now() - t0} ms)` };
          },
        },
        {
          input: "migrate from unknown source 'hi-nohost'",
          expected: 'OperationFailed',
          hosts: [HA, HB],
          send: async () => {
            const uuid = randomUUID();
            const handle = await startJob('migrate', uuid, {
              domain: 'ghost',
              domainUuid: uuid,
              sourceHost: 'hi-nohost',
              destinationHost: HB,
              flags: ['live'],
            });
            const t0 = Date.now();
            const done = handle.result().then(
              () => 'done' as const,
              () => 'done' as const,
            );
            const confirm = waitFor('migrateConfirm scheduled', async () => (await scheduled(handle)).find((x) => x.activity === 'migrateConfirm'), {
              timeoutMs: 30_000,
              intervalMs: 200,
            }).catch(() => 'not scheduled' as const);
            const first = await Promise.race([done, confirm]);
            if (typeof first === 'string') return await outcomeOf(handle.result());
            await handle.terminate('hostile-inputs test: observed enough');
            return {
              type: 'pending',
              message: `Begin timed out after ~15 s, then the undo waits up to ${first.scheduleToStartS} s for migrateConfirm on the unknown source (${Date.now() - t0} ms so far)`,
            };
          },
        },
      ],
      10,
    ));
});

// ---- job control signals sent to a running core dump ---------------------------

describe('signals to a running job', () => {
  it('ignores hostile setSpeed and setMaxDowntime values and the dump completes normally', async () => {
    const before = await worldOf(cluster, [HA], extraDirs());
    const path = join(saves, 'signals.elf');
    const logFrom = cluster.control!.logs.length;
    // 16 MiB/s for 64 MiB: ~4 s of dumping, time enough for every signal to land while it runs.
    const handle = await startJob('coreDump', guest.uuid, { host: HA, name: GUEST, uuid: guest.uuid, path, live: true, bandwidthMiBps: 16 });
    await waitFor(
      'the dump to be under way',
      () => readdirSync(saves).some((f) => f.includes('.vmferry-dump-') && statSync(join(saves, f)).size > 1024 * 1024),
      { timeoutMs: 20_000, intervalMs: 20 },
    );
    const sent: { signal: string; label: string; args: unknown[] }[] = [
      { signal: 'setSpeed', label: '-5', args: [-5] },
      { signal: 'setSpeed', label: 'NaN', args: [NaN] },
      { signal: 'setSpeed', label: 'Infinity', args: [Infinity] },
      { signal: 'setSpeed', label: '1e300', args: [1e300] },
      { signal: 'setSpeed', label: "'100' (string)", args: ['100'] },
      { signal: 'setSpeed', label: '1.5', args: [1.5] },
      { signal: 'setSpeed', label: '(no argument)', args: [] },
      { signal: 'setMaxDowntime', label: '0', args: [0] },
      { signal: 'setMaxDowntime', label: '-300', args: [-300] },
      { signal: 'setMaxDowntime', label: '1e12 (31 years)', args: [1e12] },
      { signal: 'setMaxDowntime', label: 'NaN', args: [NaN] },
    ];
    for (const s of sent) await handle.signal(s.signal === 'setSpeed' ? setSpeedSignal : setMaxDowntimeSignal, ...(s.args as [number]));
    const warnings = await waitFor(
      'a warning for every hostile signal',
      () => {
        const w = cluster.control!.logs.slice(logFrom).filter((r) => r.msg === 'setSpeed ignored' || r.msg === 'setMaxDowntime ignored');
        return w.length >= sent.length ? w : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    const result = (await handle.result()) as CoreDumpResult;
    const info = await handle.query(jobInfoQuery);
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const arrived = events.flatMap((e) => {
      const a = e.workflowExecutionSignaledEventAttributes;
      if (!a) return [];
      const p = a.input?.payloads?.[0];
      return [p ? JSON.stringify(defaultPayloadConverter.fromPayload(p as never)) : '(no argument)'];
    });
    const speedSteps = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'dumpSetSpeed').length;
    rmSync(path);
    const after = await worldOf(cluster, [HA], extraDirs());

    const completed = result.sizeBytes > 64 * 1024 * 1024 && info.status === 'completed';
    const untouched = info.speedLimitMiBps === undefined && info.maxDowntimeMs === undefined && speedSteps === 0;
    sent.forEach((s, i) => {
      const w = warnings[i];
      table.add({
        group: 'signal',
        input: `${s.signal}(${s.label}) to a running coreDump`,
        expected: 'ignored',
        observed: `${w && completed && untouched ? 'ignored' : 'APPLIED or job failed'}: arrived as ${arrived[i]}; ${String(w?.why ?? 'no warning')}`,
        unchanged: JSON.stringify(after) === JSON.stringify(before),
      });
    });
    expect(arrived).toEqual(['-5', 'null', 'null', '1e+300', '"100"', '1.5', '(no argument)', '0', '-300', '1000000000000', 'null']);
    expect(warnings.map((w) => w.msg)).toEqual(sent.map((s) => `${s.signal} ignored`));
    expect(result).toMatchObject({ path, format: 'elf', domainState: 'running' });
    expect(completed).toBe(true);
    expect(untouched).toBe(true);
    expect(after).toEqual(before);
  });
  it('refuses hostile setSpeed and setMaxDowntime updates synchronously with OperationInvalid, and nothing enters history', async () => {
    const before = await worldOf(cluster, [HA], extraDirs());
    const path = join(saves, 'updates.elf');
    const handle = await startJob('coreDump', guest.uuid, { host: HA, name: GUEST, uuid: guest.uuid, path, live: true, bandwidthMiBps: 16 });
    await waitFor(
      'the dump to be under way',
      () => readdirSync(saves).some((f) => f.includes('.vmferry-dump-') && statSync(join(saves, f)).size > 1024 * 1024),
      { timeoutMs: 20_000, intervalMs: 20 },
    );
    const sent: { update: 'setSpeed' | 'setMaxDowntime'; label: string; args: unknown[] }[] = [
      { update: 'setSpeed', label: '-5', args: [-5] },
      { update: 'setSpeed', label: 'NaN', args: [NaN] },
      { update: 'setSpeed', label: '1e300', args: [1e300] },
      { update: 'setSpeed', label: "'100' (string)", args: ['100'] },
      { update: 'setSpeed', label: '(no argument)', args: [] },
      { update: 'setMaxDowntime', label: '0', args: [0] },
      { update: 'setMaxDowntime', label: '-300', args: [-300] },
      { update: 'setMaxDowntime', label: '1e12 (31 years)', args: [1e12] },
    ];
    const refusals: (string | undefined)[] = [];
    for (const u of sent) {
      const def = u.update === 'setSpeed' ? setSpeedUpdate : setMaxDowntimeUpdate;
      refusals.push(
        await handle.executeUpdate(def, { args: u.args as [number] }).then(
          () => undefined,
          (err: unknown) => updateFailureType(err),
        ),
      );
    }
    // A good value still goes through, answered by the job: the dump then runs unlimited.
    const accepted = await handle.executeUpdate(setSpeedUpdate, { args: [0] });
    const result = (await handle.result()) as CoreDumpResult;
    const events = (await handle.fetchHistory()).events ?? [];
    const updatesInHistory = events.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length;
    rmSync(path);
    const after = await worldOf(cluster, [HA], extraDirs());
    sent.forEach((u, i) =>
      table.add({
        group: 'signal',
        input: `${u.update}(${u.label}) as an update to a running coreDump`,
        expected: 'OperationInvalid',
        observed: refusals[i] ?? 'accepted',
        unchanged: JSON.stringify(after) === JSON.stringify(before),
      }),
    );
    expect(refusals).toEqual(sent.map(() => 'OperationInvalid'));
    expect(accepted).toEqual({ speedLimitMiBps: 0 });
    expect(updatesInHistory).toBe(1);
    expect(result).toMatchObject({ path, format: 'elf', domainState: 'running' });
    expect(after).toEqual(before);
  });
});

// ---- CLI arguments --------------------------------------------------------------

describe('CLI arguments', () => {
  interface CliCase {
    args: string[];
    /** Starts a job on the guest. */
    serial?: boolean;
  }
  const cli: CliCase[] = [
    { args: ['migrate-setspeed', GUEST, '-5'] },
    { args: ['migrate-setspeed', GUEST, '--', '-5'] },
    { args: ['migrate-setspeed', GUEST, 'fast'] },
    { args: ['migrate-setmaxdowntime', GUEST, '0'] },
    { args: ['save', GUEST] },
    { args: ['list', '--bogus'] },
    { args: ['frobnicate', GUEST] },
    { args: ['dump', GUEST, join(saves, 'c.elf'), '--memory-only', '--bandwidth=ten'] },
    { args: ['dump', GUEST, join(saves, 'c.elf'), '--memory-only', '--bandwidth=-1'] },
    { args: ['migrate', GUEST, HB, '--bandwidth=1e3'] },
    { args: ['migrate', GUEST, HB, '--live', '--timeout', '-1'] },
    { args: ['--host', 'BAD_host', 'dominfo', GUEST] },
    { args: ['save', GUEST, 'relative.img'], serial: true },
    { args: ['save', GUEST, join(outside, 'x.img')], serial: true },
  ];
  function observe(r: CliResult): Observed {
    let type: string | undefined;
    try {
      type = (JSON.parse(r.stdout) as { error?: { type?: string } }).error?.type;
    } catch {
      // not JSON
    }
    return { type: `exit ${String(r.code)}${type ? ` + ${type}` : ' (no JSON)'}`, message: r.stderr.split('\n')[0] };
  }
  it('every bad command line exits 2, says OperationInvalid under --json, and changes nothing', async () => {
    const codes: (number | null)[] = [];
    await checkBatch(
      'cli',
      cli.map((c) => ({
        input: `vmferry --json ${c.args.join(' ')}`.slice(0, 120),
        expected: 'exit 2 + OperationInvalid',
        serial: c.serial,
        send: async () => {
          const r = await vmferry({ address: cluster.address, host: HA }, '--json', ...c.args);
          codes.push(r.code);
          return observe(r);
        },
      })),
      4,
    );
    expect(codes.every((c) => c === 2)).toBe(true);
  });
});

// A case table without enough cases is no proof.
describe('coverage', () => {
  it('ran at least 40 hostile cases, none of them failing outside the known bugs', () => {
    expect(table.rows.length).toBeGreaterThanOrEqual(40);
    expect(table.rows.filter((r) => !r.pass && !r.bug).map((r) => r.input)).toEqual([]);
  });
});
