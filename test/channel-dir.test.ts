// The channel socket directory of a domain (host/device-setup.ts) exists only
// while its QEMU does: a start that fails leaves nothing of it behind, whether
// it fails before QEMU is set up (a missing disk) or when QEMU refuses to start
// (a disk image QEMU cannot open), and a started domain's is removed at stop.
// Real QEMU through a HostRuntime on a temporary base directory; no Temporal.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVmError } from '../src/common/errors.js';
import { channelDir } from '../src/host/device-setup.js';
import { loadHostConfig } from '../src/host/host-config.js';
import { HostRuntime } from '../src/host/host-runtime.js';
import { guestXml } from './helpers/guest-xml.js';

const CHANNEL = `
    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>`;
const disk = (file: string) => `
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${file}'/>
      <target dev='vda' bus='virtio'/>
    </disk>`;

let base: string;
let rt: HostRuntime;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'vmf-chdir-'));
  rt = new HostRuntime(
    loadHostConfig({ VMFERRY_HOST_NAME: 'chdir', VMFERRY_HOST_BASE_DIR: base, VMFERRY_HOST_MEMORY_DIR: join(base, 'mem'), PATH: process.env.PATH ?? '' }),
    pino({ level: 'silent' }),
  );
});

afterAll(async () => {
  for (const name of ['ch-missing', 'ch-corrupt', 'ch-ok']) if (rt.getRunning(name)) await rt.destroy(name);
  rmSync(base, { recursive: true, force: true });
});

async function failedStart(name: string): Promise<unknown> {
  return await rt.start(name, {}).then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('channel directory of a failed start', () => {
  it('is not made when the start is refused for a missing disk', async () => {
    rt.define(guestXml({ name: 'ch-missing', extraDevices: disk(join(base, 'absent.qcow2')) + CHANNEL }));
    const err = await failedStart('ch-missing');
    expect(isVmError(err, 'OperationFailed' as never)).toBe(true);
    expect(existsSync(channelDir(rt.config.runDir, rt.definition('ch-missing', { inactive: true })))).toBe(false);
  });

  it('is removed when QEMU cannot start (an image that is not qcow2), and only the domain directory goes', async () => {
    const image = join(base, 'corrupt.qcow2');
    writeFileSync(image, 'not a qcow2 image\n'.repeat(64));
    rt.define(guestXml({ name: 'ch-corrupt', extraDevices: disk(image) + CHANNEL }));
    const err = await failedStart('ch-corrupt');
    expect(err).toBeDefined();
    expect(rt.getRunning('ch-corrupt')).toBeUndefined();
    const dir = channelDir(rt.config.runDir, rt.definition('ch-corrupt', { inactive: true }));
    expect(existsSync(dir)).toBe(false);
    // The shared parent stays for the other domains.
    expect(existsSync(join(dir, '..'))).toBe(true);
  });

  it('exists while the domain runs and goes when it stops (the path a failed start must also clean)', async () => {
    rt.define(guestXml({ name: 'ch-ok', extraDevices: CHANNEL }));
    await rt.start('ch-ok', { paused: true });
    const socket = rt.definition('ch-ok').devices.channels?.[0]?.sourcePath;
    expect(socket).toBeDefined();
    expect(existsSync(socket!)).toBe(true);
    await rt.destroy('ch-ok');
    expect(existsSync(join(socket!, '..'))).toBe(false);
  });
});
