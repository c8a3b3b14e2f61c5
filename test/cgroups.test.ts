// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// The cgroup placement of guests, without a QEMU: the systemd scope's command line (no
// systemd on this machine, so it is not run here), and the cgroup v2 directory made,
// entered by a real process and removed (root; cgroup v2 must be mounted, else skipped).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cgroup2Root, cgroupOf, placementFor, placeProcess, removeCgroup, resolveCgroupMode, scopeName, wrapCommand } from '../src/host/cgroups.js';
import { loadHostConfig } from '../src/host/host-config.js';

const UUID = '6c0f1e2a-9999-4000-8000-000000000001';
const PARENT = `vmf-cg-${process.pid}.slice`;
const ROOT = cgroup2Root();

afterAll(() => {
  if (ROOT && existsSync(join(ROOT, PARENT))) rmdirSync(join(ROOT, PARENT));
});

describe('cgroups for guests', () => {
  it('names the scope after the guest and its UUID, with only unit-safe characters', () => {
    expect(scopeName('web1', UUID)).toBe('machine-vmferry-web1-6c0f1e2a.scope');
    expect(scopeName('a b/c', UUID)).toBe('machine-vmferry-a_b_c-6c0f1e2a.scope');
  });

  it('under systemd, QEMU is exec’d by systemd-run --scope in the slice, with accounting, dropping to the guest’s uid itself', () => {
    const placement = placementFor({ mode: 'systemd', parent: 'vmferry.slice' }, 'systemd', 'web1', UUID)!;
    const w = wrapCommand(placement, '/usr/bin/qemu-system-x86_64', ['-S', '-name', 'guest=web1'], { uid: 1879048200, gid: 998 });
    expect(w).toEqual({
      binary: 'systemd-run',
      args: [
        '--scope',
        '--quiet',
        '--collect',
        '--unit=machine-vmferry-web1-6c0f1e2a.scope',
        '--slice=vmferry.slice',
        '--property=MemoryAccounting=yes',
        '--property=CPUAccounting=yes',
        '--uid=1879048200',
        '--gid=998',
        '--',
        '/usr/bin/qemu-system-x86_64',
        '-S',
        '-name',
        'guest=web1',
      ],
      identityInWrapper: true,
    });
    // Without systemd nothing wraps QEMU: the worker sets the uid at spawn and places the pid itself.
    expect(wrapCommand(undefined, '/q', ['-S'], { uid: 5, gid: 6 })).toEqual({ binary: '/q', args: ['-S'], identityInWrapper: false });
  });

  it('refuses a cgroup parent that is not a relative path of plain names, and a bad mode', () => {
    for (const parent of ['../escape', '/abs', 'a//b', 'a/./b'])
      expect(() =>
        loadHostConfig({ VMFERRY_HOST_BASE_DIR: '/tmp/vmf-cg-cfg', VMFERRY_HOST_MEMORY_DIR: '/tmp/vmf-cg-cfg/m', VMFERRY_CGROUP_PARENT: parent }),
      ).toThrow(/cgroup parent/);
    expect(() => loadHostConfig({ VMFERRY_HOST_BASE_DIR: '/tmp/vmf-cg-cfg', VMFERRY_HOST_MEMORY_DIR: '/tmp/vmf-cg-cfg/m', VMFERRY_CGROUPS: 'yes' })).toThrow(
      /VMFERRY_CGROUPS.*off, auto, systemd or cgroupfs/,
    );
    expect(resolveCgroupMode({ mode: 'off', parent: 'x' })).toBe('off');
  });

  it.skipIf(ROOT === undefined)(
    'cgroupfs: makes the guest’s cgroup v2 directory, moves a live process in, and removes it once the process is gone',
    async () => {
      const placement = placementFor({ mode: 'cgroupfs', parent: PARENT }, 'cgroupfs', 'cg1', UUID) as { kind: 'cgroupfs'; root: string; path: string };
      expect(placement).toEqual({ kind: 'cgroupfs', root: ROOT, path: `${PARENT}/machine-vmferry-cg1-6c0f1e2a.scope` });
      const child = spawn('sleep', ['60'], { stdio: 'ignore' });
      const exited = new Promise((r) => child.once('exit', r));
      try {
        const controllers = placeProcess(placement, child.pid!);
        // Only what the hierarchy offers: here a hybrid host's v2 tree may have neither.
        const offered = readFileSync(join(ROOT!, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
        expect(controllers).toEqual(['memory', 'cpu'].filter((c) => offered.includes(c)));
        expect(cgroupOf(child.pid!)).toBe(`/${placement.path}`);
        expect(readFileSync(join(ROOT!, placement.path, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(child.pid));
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      await removeCgroup(placement);
      expect(existsSync(join(ROOT!, placement.path))).toBe(false);
      // Removing again (a second release, a restarted worker) is harmless.
      await removeCgroup(placement);
    },
  );
});
