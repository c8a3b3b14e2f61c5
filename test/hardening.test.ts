// Hardening, proven on a real host worker and real QEMU: everything the host
// keeps is private to the service user, save images and dumps go only where the
// host allows, and graphics passwords in domain XML reach QEMU over QMP and the
// host's private files, and nowhere a caller or an operator reads: not the
// logs, not search attributes, not QEMU's command line, not dumpxml (unless
// asked for security info, as in libvirt).
import { closeSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo, DomainOperation, DomainOperationResult } from '../src/common/domain-types.js';
import type { CoreDumpResult } from '../src/common/dump-types.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import type { RestoreResult, SaveImageXmlResult, SaveResult } from '../src/common/save-types.js';
import { outcomeOf } from './helpers/case-table.js';
import { TestCluster } from './helpers/cluster.js';
import { guestXml } from './helpers/guest-xml.js';

const cluster = new TestCluster();
const HOST = 'hd-a';
const NAME = 'hd1';
const VNC_PW = 'Vnc-S3cret-7f1a2b';
const SPICE_PW = 'Spice-S3cret-9b2c4d';
const SECRETS = [VNC_PW, SPICE_PW];
const saves = join(cluster.root, 'saves');
const outside = join(cluster.root, 'outside');
const image = join(saves, `${NAME}.img`);
const core = join(saves, `${NAME}.elf`);
/** Every workflow run this file started, for their search attributes. */
const runs: WorkflowHandle[] = [];
let seq = 0;
let uuid: string;
let base: string;
let memoryDir: string;

async function op(operation: DomainOperation): Promise<DomainOperationResult> {
  const handle = await cluster.client.workflow.start('domainOperation', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: `hardening-${process.pid}-${seq++}`,
    args: [{ host: HOST, operation }],
    workflowExecutionTimeout: '2 minutes',
  });
  runs.push(handle);
  return (await handle.result()) as DomainOperationResult;
}

async function job<T>(workflow: string, input: unknown): Promise<T> {
  const started = await cluster.client.workflow.start(workflow, {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(uuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
    workflowExecutionTimeout: '2 minutes',
  });
  // The job ID is reused by every job on the domain: keep this very run.
  const handle = cluster.client.workflow.getHandle(started.workflowId, started.firstExecutionRunId);
  runs.push(handle);
  return (await handle.result()) as T;
}

async function info(): Promise<DomainInfo> {
  return ((await op({ op: 'info', name: NAME })) as { domain: DomainInfo }).domain;
}

async function dumpxml(opts: { migratable?: boolean; securityInfo?: boolean } = {}): Promise<string> {
  return ((await op({ op: 'dumpxml', name: NAME, ...opts })) as { xml: string }).xml;
}

const cmdline = (pid: number): string => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
const umaskOf = (pid: number): string => /^Umask:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';

/** Does the file hold `needle` anywhere (read in chunks: images are large)? */
function fileContains(path: string, needle: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const n = Buffer.from(needle);
    const buf = Buffer.alloc(1024 * 1024 + n.length);
    let carry = 0;
    for (;;) {
      const read = readSync(fd, buf, carry, buf.length - carry, null);
      if (read === 0) return false;
      if (buf.subarray(0, carry + read).includes(n)) return true;
      buf.copy(buf, 0, carry + read - n.length, carry + read);
      carry = n.length;
    }
  } finally {
    closeSync(fd);
  }
}

/** Every path below `dir` with its lstat. */
function tree(dir: string): [string, Stats][] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    const st = lstatSync(p);
    return st.isDirectory() ? [[p, st] as [string, Stats], ...tree(p)] : [[p, st] as [string, Stats]];
  });
}

const octal = (st: Stats): string => (st.mode & 0o7777).toString(8).padStart(4, '0');

beforeAll(async () => {
  mkdirSync(saves);
  mkdirSync(outside);
  await cluster.connect();
  // DAC labelling (QEMU user nobody) so the remembered-labels file exists too.
  const env = { VMFERRY_SAVE_DIRS: saves, VMFERRY_SECURITY_DRIVER: 'dac', VMFERRY_QEMU_USER: 'nobody' };
  const [host] = await Promise.all([cluster.startHost(HOST, env), cluster.startControl()]);
  base = host.baseDir;
  memoryDir = host.memoryDir;
  const graphics =
    `\n    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='${VNC_PW}'/>` +
    `\n    <graphics type='spice' autoport='yes' listen='127.0.0.1' passwd='${SPICE_PW}'/>`;
  const defined = await op({ op: 'define', xml: guestXml({ name: NAME, memoryMiB: 64, extraDevices: graphics }) });
  uuid = (defined as { domain: { uuid: string } }).domain.uuid;
  await op({ op: 'start', name: NAME });
});

afterAll(async () => {
  await op({ op: 'destroy', name: NAME }).catch(() => undefined);
  await op({ op: 'undefine', name: NAME }).catch(() => undefined);
  await cluster.stop(); // removes saves/ and outside/ with the cluster's root
});

describe('hardening', () => {
  it('the host worker and the QEMU it starts run with umask 077', async () => {
    const dom = await info();
    expect(umaskOf(cluster.hosts.get(HOST)!.worker!.pid)).toBe('0077');
    expect(umaskOf(dom.pid!)).toBe('0077');
  });

  it('dumpxml leaves graphics passwords out unless asked for security info', async () => {
    for (const xml of [await dumpxml(), await dumpxml({ migratable: true })]) {
      expect(xml).toContain("<graphics type='vnc'");
      expect(xml).toContain("<graphics type='spice'");
      for (const s of SECRETS) expect(xml).not.toContain(s);
    }
    const full = await dumpxml({ securityInfo: true });
    for (const s of SECRETS) expect(full).toContain(`passwd='${s}'`);
  });

  it('refuses a dump and a save outside VMFERRY_SAVE_DIRS with OperationInvalid, and writes inside', async () => {
    const dumpOut = await outcomeOf(job('coreDump', { host: HOST, name: NAME, uuid, path: join(outside, 'x.elf') }));
    const saveOut = await outcomeOf(job('save', { host: HOST, name: NAME, path: join(outside, 'x.img') }));
    expect([dumpOut.type, saveOut.type]).toEqual(['OperationInvalid', 'OperationInvalid']);
    expect(dumpOut.message).toMatch(/outside the directories this host saves to/);
    expect(saveOut.message).toMatch(/outside the directories this host saves to/);
    expect(readdirSync(outside)).toEqual([]);
    expect((await info()).state).toBe('running');

    const dumped = await job<CoreDumpResult>('coreDump', { host: HOST, name: NAME, uuid, path: core });
    expect(dumped).toMatchObject({ path: core, domainState: 'running' });
    const saved = await job<SaveResult>('save', { host: HOST, name: NAME, path: image });
    expect(saved).toMatchObject({ path: image, name: NAME });
    expect(readdirSync(saves).sort()).toEqual([`${NAME}.elf`, `${NAME}.img`]);

    // The image's XML edited in place is a write too: a second name for it outside is refused.
    linkSync(image, join(outside, 'alias.img'));
    const defineOut = await outcomeOf(
      cluster.client.workflow.execute('saveImageXml', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: `hardening-${process.pid}-${seq++}`,
        args: [{ host: HOST, op: 'define', path: join(outside, 'alias.img'), xml: guestXml({ name: NAME, uuid }) }],
      }),
    );
    expect(defineOut.type).toBe('OperationInvalid');
  });

  it('keeps graphics passwords out of save-image-dumpxml unless asked, and restores the guest with them', async () => {
    const imageXml = (securityInfo?: boolean): Promise<SaveImageXmlResult> =>
      cluster.client.workflow.execute('saveImageXml', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: `hardening-${process.pid}-${seq++}`,
        args: [{ host: HOST, op: 'dumpxml', path: image, securityInfo }],
      });
    const shown = (await imageXml()).xml;
    expect(shown).toContain("<graphics type='vnc'");
    for (const s of SECRETS) expect(shown).not.toContain(s);
    const full = (await imageXml(true)).xml;
    for (const s of SECRETS) expect(full).toContain(s);
    const restored = await job<RestoreResult>('restore', { host: HOST, path: image });
    expect(restored.domain).toMatchObject({ name: NAME, state: 'running' });
  });

  it('keeps state, run and log private: directories 0700 (0711 on the way to the confined QEMU), files and sockets 0600 or stricter', async () => {
    const dom = await info();
    const entries = [...tree(base), ...tree(memoryDir), ...tree(saves)];
    const modes = new Map(entries.map(([p, st]) => [p, st]));
    // Each kind of thing the host keeps is really there to be checked.
    const expected = [
      join(base, 'state'),
      join(base, 'run'),
      join(base, 'log'),
      join(base, 'state', 'domains', `${NAME}.xml`),
      join(base, 'state', 'host-uuid'),
      // The QEMU probe the worker keeps across restarts.
      join(base, 'state', 'qemu-probe.json'),
      join(base, 'state', 'jobs', `${NAME}.json`),
      join(base, 'state', 'security', 'dac-labels.json'),
      join(base, 'run', `${NAME}.xml`),
      dom.qmpSocket!,
      join(base, 'log', `${NAME}.log`),
      join(base, 'log', 'audit.log'),
      dom.memoryBackingFile!,
      image,
      core,
    ];
    expect(expected.filter((p) => !modes.has(p))).toEqual([]);
    expect(modes.get(dom.qmpSocket!)!.isSocket()).toBe(true);
    const wrong = entries.flatMap(([p, st]) => {
      // QEMU runs as its own uid (DAC): it passes through these by name (0711), it lists none of them.
      const want = [base, join(base, 'run'), memoryDir].includes(p) ? 0o711 : 0o700;
      if (st.isDirectory()) return p.startsWith(saves) || (st.mode & 0o777) === want ? [] : [`${p} ${octal(st)} (want ${want.toString(8)})`];
      return (st.mode & 0o177) === 0 ? [] : [`${p} ${octal(st)} (want 0600 or stricter)`];
    });
    expect(wrong).toEqual([]);
    expect((lstatSync(base).mode & 0o777).toString(8)).toBe('711');
    expect((lstatSync(memoryDir).mode & 0o777).toString(8)).toBe('711');
    console.log(
      `\nhost files and modes\n${entries.map(([p, st]) => `${octal(st)} ${st.isSocket() ? 'socket' : st.isDirectory() ? 'dir   ' : 'file  '} ${p}`).join('\n')}\n`,
    );
  });

  it("never puts graphics passwords in logs, search attributes or QEMU's command line; only the host's private files hold them", async () => {
    const dom = await info();
    const host = cluster.hosts.get(HOST)!;
    const places: [string, string][] = [
      ['host worker log lines', JSON.stringify(host.worker!.logs)],
      ['control worker log lines', JSON.stringify(cluster.control!.logs)],
      ["restored QEMU's command line", cmdline(dom.pid!)],
    ];
    for (const f of readdirSync(join(base, 'log'))) places.push([`log/${f}`, readFileSync(join(base, 'log', f), 'utf8')]);
    for (const h of runs) {
      const d = await h.describe();
      places.push([`search attributes of ${h.workflowId}`, JSON.stringify({ sa: d.searchAttributes, typed: d.typedSearchAttributes, memo: d.memo })]);
    }
    expect(places.length).toBeGreaterThan(10);
    const leaks = places.flatMap(([where, text]) => SECRETS.filter((s) => text.includes(s)).map((s) => `${s} in ${where}`));
    expect(leaks).toEqual([]);
    // The check looks at the right thing: QEMU got them (password=on, set over QMP), and the private files have them.
    expect(cmdline(dom.pid!)).toContain('password=on');
    for (const s of SECRETS) {
      expect(readFileSync(join(base, 'state', 'domains', `${NAME}.xml`), 'utf8')).toContain(s);
      expect(fileContains(image, s)).toBe(true);
    }
  });

  // Workflow history: with a payload key configured the passwords travel encrypted; test/payload-codec.test.ts
  // searches real histories for them (and shows that without the key they would be there).
});
