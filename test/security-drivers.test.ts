// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Security drivers on real files: DAC really chowns to nobody and back (we run as
// root), SELinux is exercised with a fake attribute where the kernel has no SELinux.
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AttrToolsXattr,
  createSecurityDriver,
  DacDriver,
  defaultImageLabel,
  restoreFailuresOf,
  selinuxKernelEnabled,
  SelinuxDriver,
  StackDriver,
  type SecurityContext,
  type SecurityDriver,
} from '../src/security/index.js';
import { securityConfigFromEnv } from '../src/host/host-env.js';

const NOBODY = 65534;
const ctx: SecurityContext = { domain: 'sec1', uuid: '6a1f4c1e-0b5e-4c1d-9a55-3f1e2d3c4b5a' };
const other: SecurityContext = { domain: 'sec2', uuid: '0b0f0f0f-1111-4222-8333-444455556666' };
const FAKE_ATTR = 'user.vmferry.fake-selinux';

let dir: string;
let shm: string;

beforeAll(() => {
  expect(process.getuid?.()).toBe(0); // chown to another user needs root
  dir = mkdtempSync(join(tmpdir(), 'vmf-sec-'));
  shm = mkdtempSync(join('/dev/shm', 'vmf-sec-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

function file(name: string, mode = 0o400, base = dir): string {
  const p = join(base, name);
  writeFileSync(p, 'image');
  chmodSync(p, mode);
  return p;
}

function owner(p: string): { uid: number; gid: number; mode: number } {
  const st = statSync(p);
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

async function failure(p: Promise<unknown> | (() => unknown)): Promise<ApplicationFailure> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

/** Records what the stack asks of it; optionally fails one step. */
class Recorder implements SecurityDriver {
  constructor(
    readonly name: string,
    private readonly log: string[],
    private readonly failOn?: 'label' | 'restore',
  ) {}
  private step(what: 'label' | 'restore', target: string): Promise<void> {
    this.log.push(`${what} ${this.name} ${target}`);
    return this.failOn === what ? Promise.reject(new Error(`${this.name} refuses to ${what}`)) : Promise.resolve();
  }
  labelPath(p: string) {
    return this.step('label', p);
  }
  restorePath(p: string) {
    return this.step('restore', p);
  }
  labelFd(fd: number) {
    return this.step('label', `fd${fd}`);
  }
  restoreFd(fd: number) {
    return this.step('restore', `fd${fd}`);
  }
  labelHandedFd(fd: number) {
    return this.step('label', `handed fd${fd}`);
  }
}

describe('dac driver', () => {
  it('chowns a file to nobody with owner rw, and restores the original owner and mode', async () => {
    const remember = join(dir, 'remember-1');
    const p = file('disk1.img', 0o400);
    const dac = createSecurityDriver({ driver: 'dac', user: 'nobody', rememberDir: remember });
    expect(dac.name).toBe('dac');
    await dac.labelPath(p, ctx);
    expect(owner(p)).toEqual({ uid: NOBODY, gid: NOBODY, mode: 0o600 });
    // The original was on disk before the chown, for a worker that crashes now.
    const saved = JSON.parse(readFileSync(join(remember, 'dac-labels.json'), 'utf8')) as Record<string, unknown>;
    expect(saved[`path:${p}`]).toEqual({ original: { uid: 0, gid: 0, mode: 0o400 }, holders: [ctx.uuid] });
    await dac.restorePath(p, ctx);
    expect(owner(p)).toEqual({ uid: 0, gid: 0, mode: 0o400 });
    expect(JSON.parse(readFileSync(join(remember, 'dac-labels.json'), 'utf8'))).toEqual({});
  });

  it('restores from the remembered-labels file after the driver object is recreated', async () => {
    const remember = join(dir, 'remember-2');
    const p = file('disk2.img', 0o640);
    const before = new DacDriver({ user: NOBODY, group: 'nogroup', rememberDir: remember });
    await before.labelPath(p, ctx);
    expect(owner(p)).toEqual({ uid: NOBODY, gid: NOBODY, mode: 0o640 });
    const after = new DacDriver({ user: '+65534', group: NOBODY, rememberDir: remember });
    expect(after.rememberedFor(p)).toEqual({ uid: 0, gid: 0, mode: 0o640 });
    await after.restorePath(p, ctx);
    expect(owner(p)).toEqual({ uid: 0, gid: 0, mode: 0o640 });
    expect(after.rememberedFor(p)).toBeUndefined();
  });

  it("keeps another driver object's remembered labels when both use one directory", async () => {
    const remember = join(dir, 'remember-3');
    const a = new DacDriver({ user: 'nobody', rememberDir: remember });
    const b = new DacDriver({ user: 'nobody', rememberDir: remember });
    const pa = file('a.img', 0o400);
    const pb = file('b.img', 0o440);
    await a.labelPath(pa, ctx);
    await b.labelPath(pb, ctx);
    await b.restorePath(pb, ctx);
    // b's writes left a's entry in the file: a third object (a restarted worker) still restores pa.
    await new DacDriver({ user: 'nobody', rememberDir: remember }).restorePath(pa, ctx);
    expect(owner(pa)).toEqual({ uid: 0, gid: 0, mode: 0o400 });
    expect(owner(pb)).toEqual({ uid: 0, gid: 0, mode: 0o440 });
  });

  it('labels an open descriptor with fchown and restores it', async () => {
    const p = file('fd.img', 0o400);
    const fd = openSync(p, 'r');
    try {
      const dac = createSecurityDriver({ driver: 'dac', user: 'nobody', group: 'nogroup' });
      await dac.labelFd(fd, ctx);
      expect(owner(p)).toEqual({ uid: NOBODY, gid: NOBODY, mode: 0o600 });
      await dac.restoreFd(fd, ctx);
      expect(owner(p)).toEqual({ uid: 0, gid: 0, mode: 0o400 });
    } finally {
      closeSync(fd);
    }
  });

  it('labels a listening unix socket QEMU will connect to', async () => {
    const sock = join(dir, 'mon.sock');
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const before = owner(sock);
      const dac = createSecurityDriver({ driver: 'dac', user: 'nobody' });
      await dac.labelPath(sock, ctx);
      expect(owner(sock)).toMatchObject({ uid: NOBODY, gid: NOBODY });
      await dac.restorePath(sock, ctx);
      expect(owner(sock)).toEqual(before);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('keeps the label while another domain still holds it, and is idempotent per domain', async () => {
    const p = file('shared.img', 0o444);
    const dac = createSecurityDriver({ driver: 'dac', user: 'nobody' });
    await dac.labelPath(p, ctx);
    await dac.labelPath(p, ctx); // a retried activity
    await dac.labelPath(p, other);
    await dac.restorePath(p, ctx);
    expect(owner(p).uid).toBe(NOBODY);
    await dac.restorePath(p, ctx); // restoring twice changes nothing
    expect(owner(p).uid).toBe(NOBODY);
    await dac.restorePath(p, other);
    expect(owner(p)).toEqual({ uid: 0, gid: 0, mode: 0o444 });
  });

  it('forgets a label whose file is gone, and restoring something never labelled is a no-op', async () => {
    const p = file('gone.img');
    const dac = new DacDriver({ user: 'nobody' });
    await dac.labelPath(p, ctx);
    rmSync(p);
    await dac.restorePath(p, ctx);
    expect(dac.rememberedFor(p)).toBeUndefined();
    await dac.restorePath(join(dir, 'never-labelled'), ctx);
  });

  it('names unknown users and groups, a missing user and relative paths with typed errors', async () => {
    expect((await failure(() => createSecurityDriver({ driver: 'dac', user: 'no-such-user-vmferry' }))).type).toBe('ConfigUnsupported');
    expect((await failure(() => createSecurityDriver({ driver: 'dac', user: 'nobody', group: 'no-such-group-vmferry' }))).type).toBe('ConfigUnsupported');
    expect((await failure(() => createSecurityDriver({ driver: 'dac' }))).type).toBe('ConfigUnsupported');
    const dac = createSecurityDriver({ driver: 'dac', user: 'nobody' });
    expect((await failure(dac.labelPath('relative/disk.img', ctx))).type).toBe('OperationInvalid');
    const missing = await failure(dac.labelPath(join(dir, 'missing.img'), ctx));
    expect(missing.type).toBe('OperationFailed');
    expect(missing.message).toMatch(/could not label .*ENOENT/);
  });
});

describe('dac driver with a uid per domain (VMFERRY_QEMU_UID_RANGE)', () => {
  const range = { min: 3_300_000, max: 3_300_000 + 65_535 };

  it('gives each domain its own uid from the range (the same on every driver object), labels for it, and refuses a file another domain holds', async () => {
    const dac = new DacDriver({ uidRange: range, group: 'nogroup' });
    const again = new DacDriver({ uidRange: range, group: 'nogroup' });
    const a = dac.processIdentity(ctx);
    const b = dac.processIdentity(other);
    expect(a).toEqual(again.processIdentity(ctx));
    expect(a.uid).not.toBe(b.uid);
    for (const id of [a, b]) (expect(id).toMatchObject({ gid: NOBODY }), expect(id.uid >= range.min && id.uid <= range.max).toBe(true));
    const stack = createSecurityDriver({ driver: 'stack', stack: ['none', 'dac'], uidRange: range, group: 'nogroup' });
    expect(stack.processIdentity?.(ctx)).toEqual(a);
    expect(createSecurityDriver({ driver: 'none' }).processIdentity).toBeUndefined();

    const p = join(dir, 'range.img');
    writeFileSync(p, 'x', { mode: 0o600 });
    await dac.labelPath(p, ctx);
    expect(statSync(p)).toMatchObject({ uid: a.uid, gid: NOBODY });
    const shared = await failure(dac.labelPath(p, other));
    expect(shared.type).toBe('OperationInvalid');
    expect(shared.message).toMatch(/in use by the QEMU of domain .* another uid/);
    expect(statSync(p).uid).toBe(a.uid);
    await dac.restorePath(p, ctx);
    expect(statSync(p)).toMatchObject({ uid: 0, gid: 0 });
  });

  it('needs a group with a range, refuses a range holding root, and reads MIN-MAX from the environment', async () => {
    expect((await failure(() => createSecurityDriver({ driver: 'dac', uidRange: range }))).type).toBe('ConfigUnsupported');
    expect((await failure(() => createSecurityDriver({ driver: 'dac', uidRange: { min: 0, max: 10 }, group: 'nogroup' }))).type).toBe('ConfigUnsupported');
    expect(securityConfigFromEnv({ VMFERRY_SECURITY_DRIVER: 'dac', VMFERRY_QEMU_UID_RANGE: '3300000-3365535', VMFERRY_QEMU_GROUP: 'nogroup' })).toEqual({
      driver: 'dac',
      group: 'nogroup',
      uidRange: { min: 3_300_000, max: 3_365_535 },
    });
    for (const bad of ['0-10', '20-10', 'abc', '5'])
      expect(() => securityConfigFromEnv({ VMFERRY_QEMU_UID_RANGE: bad })).toThrow(/VMFERRY_QEMU_UID_RANGE.*MIN-MAX/);
  });
});

describe('selinux driver', () => {
  it('fake SELinux (user.* xattr on tmpfs standing in for security.selinux): labels and restores a path, and restores after recreation', async () => {
    const remember = join(shm, 'remember-se');
    const xattr = new AttrToolsXattr();
    const p = file('se.img', 0o600, shm);
    await xattr.set(p, FAKE_ATTR, Buffer.from('system_u:object_r:tmp_t:s0\0'));
    const se = new SelinuxDriver({ rememberDir: remember }, { attrName: FAKE_ATTR });
    await se.labelPath(p, ctx);
    expect((await xattr.get(p, FAKE_ATTR))?.toString()).toBe(`${defaultImageLabel(ctx.uuid)}\0`);
    expect(defaultImageLabel(ctx.uuid)).toMatch(/^system_u:object_r:svirt_image_t:s0:c\d+,c\d+$/);
    expect(defaultImageLabel(other.uuid)).not.toBe(defaultImageLabel(ctx.uuid));
    const again = new SelinuxDriver({ rememberDir: remember }, { attrName: FAKE_ATTR });
    await again.restorePath(p, ctx);
    expect((await xattr.get(p, FAKE_ATTR))?.toString()).toBe('system_u:object_r:tmp_t:s0\0');
  });

  it('fake SELinux: a file with no label gets its attribute removed again, and descriptors are labelled through /proc', async () => {
    const xattr = new AttrToolsXattr();
    const p = file('se-fd.img', 0o600, shm);
    const se = new SelinuxDriver({ imageLabel: 'system_u:object_r:svirt_image_t:s0:c1,c2' }, { attrName: FAKE_ATTR });
    const fd = openSync(p, 'r');
    try {
      await se.labelFd(fd, ctx);
      expect((await xattr.get(p, FAKE_ATTR))?.toString()).toBe('system_u:object_r:svirt_image_t:s0:c1,c2\0');
      await se.restoreFd(fd, ctx);
      expect(await xattr.get(p, FAKE_ATTR)).toBeUndefined();
    } finally {
      closeSync(fd);
    }
  });

  it('fake SELinux: a descriptor handed to QEMU for good keeps the domain label and nothing is remembered for it', async () => {
    const remember = join(shm, 'remember-se-handed');
    const xattr = new AttrToolsXattr();
    const p = file('se-handed.img', 0o600, shm);
    const se = new SelinuxDriver({ rememberDir: remember, imageLabel: 'system_u:object_r:svirt_image_t:s0:c3,c4' }, { attrName: FAKE_ATTR });
    const fd = openSync(p, 'r');
    try {
      await se.labelHandedFd(fd, ctx);
    } finally {
      closeSync(fd);
    }
    expect((await xattr.get(p, FAKE_ATTR))?.toString()).toBe('system_u:object_r:svirt_image_t:s0:c3,c4\0');
    const saved = join(remember, 'selinux-fake-labels.json');
    expect(existsSync(saved) ? Object.keys(JSON.parse(readFileSync(saved, 'utf8')) as object) : []).toEqual([]);
  });

  it.skipIf(selinuxKernelEnabled())('refuses the real driver on a kernel without SELinux', async () => {
    const err = await failure(() => createSecurityDriver({ driver: 'selinux' }));
    expect(err.type).toBe('ConfigUnsupported');
    expect(err.message).toMatch(/SELinux/);
  });

  it.skipIf(selinuxKernelEnabled())('writes the real security.selinux attribute on a kernel without SELinux (stored, not enforced)', async () => {
    const xattr = new AttrToolsXattr();
    const p = file('se-real.img', 0o600);
    const se = new SelinuxDriver({}, { requireKernel: false });
    await se.labelPath(p, ctx);
    expect((await xattr.get(p, 'security.selinux'))?.toString()).toBe(`${defaultImageLabel(ctx.uuid)}\0`);
    await se.restorePath(p, ctx);
    expect(await xattr.get(p, 'security.selinux')).toBeUndefined();
  });
});

describe('stack and factory', () => {
  it('labels in order and restores in reverse', async () => {
    const log: string[] = [];
    const stack = new StackDriver([new Recorder('a', log), new Recorder('b', log), new Recorder('c', log)]);
    await stack.labelPath('/x', ctx);
    await stack.restorePath('/x', ctx);
    await stack.labelFd(7, ctx);
    await stack.restoreFd(7, ctx);
    await stack.labelHandedFd(8, ctx);
    expect(log).toEqual([
      'label a /x',
      'label b /x',
      'label c /x',
      'restore c /x',
      'restore b /x',
      'restore a /x',
      'label a fd7',
      'label b fd7',
      'label c fd7',
      'restore c fd7',
      'restore b fd7',
      'restore a fd7',
      'label a handed fd8',
      'label b handed fd8',
      'label c handed fd8',
    ]);
  });

  it('rolls back earlier members when a later one cannot label', async () => {
    const log: string[] = [];
    const stack = new StackDriver([new Recorder('a', log), new Recorder('b', log), new Recorder('c', log, 'label'), new Recorder('d', log)]);
    await expect(stack.labelPath('/y', ctx)).rejects.toThrow(/c refuses to label/);
    expect(log).toEqual(['label a /y', 'label b /y', 'label c /y', 'restore b /y', 'restore a /y']);
  });

  it('tries every member on restore and reports each failure in a typed error', async () => {
    const p = file('stack.img', 0o400);
    const log: string[] = [];
    const dac = createSecurityDriver({ driver: 'dac', user: 'nobody' });
    const stack = new StackDriver([dac, new Recorder('broken', log, 'restore')]);
    await stack.labelPath(p, ctx);
    expect(owner(p).uid).toBe(NOBODY);
    const err = await failure(stack.restorePath(p, ctx));
    expect(err.type).toBe('OperationFailed');
    expect(restoreFailuresOf(err)).toEqual([{ driver: 'broken', target: p, message: 'broken refuses to restore' }]);
    // The broken member did not stop DAC's restore, which ran after it (reverse order).
    expect(owner(p)).toEqual({ uid: 0, gid: 0, mode: 0o400 });
  });

  it('builds a none+dac stack from config, and refuses unknown drivers', async () => {
    const stack = createSecurityDriver({ driver: 'stack', stack: ['none', 'dac'], user: 'nobody' });
    expect(stack.name).toBe('stack');
    const p = file('stack2.img', 0o400);
    await stack.labelPath(p, ctx);
    expect(owner(p).uid).toBe(NOBODY);
    await stack.restorePath(p, ctx);
    expect(owner(p).uid).toBe(0);
    expect(createSecurityDriver({}).name).toBe('none');
    expect((await failure(() => createSecurityDriver({ driver: 'apparmor' as 'none' }))).type).toBe('ConfigUnsupported');
    expect((await failure(() => createSecurityDriver({ driver: 'stack', stack: [] }))).type).toBe('ConfigUnsupported');
    expect((await failure(() => createSecurityDriver({ driver: 'stack', stack: ['stack' as 'none'] }))).type).toBe('ConfigUnsupported');
  });

  it('reads its settings from the environment, defaulting to none', () => {
    expect(securityConfigFromEnv({})).toEqual({ driver: 'none' });
    expect(
      securityConfigFromEnv({ VMFERRY_SECURITY_DRIVER: 'dac', VMFERRY_QEMU_USER: 'nobody', VMFERRY_QEMU_GROUP: 'nogroup' }, { rememberDir: '/var/lib/x' }),
    ).toEqual({
      driver: 'dac',
      user: 'nobody',
      group: 'nogroup',
      rememberDir: '/var/lib/x',
    });
    expect(securityConfigFromEnv({ VMFERRY_SECURITY_DRIVER: 'dac,selinux' })).toEqual({ driver: 'stack', stack: ['dac', 'selinux'] });
    expect(createSecurityDriver(securityConfigFromEnv({})).name).toBe('none');
  });
});
