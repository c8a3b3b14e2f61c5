// The production deployment files, validated offline as far as this machine allows:
// the compose file by docker-compose's own schema check, the units by systemd.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadHostConfig } from '../src/host/host-config.js';
import { DacDriver } from '../src/security/index.js';
import { PROJECT_ROOT } from '../src/local/paths.js';

const DEPLOY = join(PROJECT_ROOT, 'deploy');

describe('deployment files', () => {
  it('docker-compose.yml passes docker-compose config and names every service vmferry needs', () => {
    const r = spawnSync('docker-compose', ['-f', join(DEPLOY, 'docker-compose.yml'), 'config'], { encoding: 'utf8' });
    expect(r.error, 'docker-compose missing: npm test installs it through setup --for-tests').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    for (const svc of ['postgresql', 'temporal', 'temporal-ui', 'control-worker', 'host-worker']) expect(r.stdout).toMatch(new RegExp(`\\n  ${svc}:`));
  });

  it('systemd units pass systemd-analyze verify, and the host worker never kills guests on stop', () => {
    const units = ['vmferry-host-worker.service', 'vmferry-control-worker.service', 'vmferry-guests.service'].map((u) => join(DEPLOY, 'systemd', u));
    const r = spawnSync('systemd-analyze', ['verify', ...units], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(units[0]!, 'utf8')).toMatch(/^KillMode=process$/m);
    // The host-shutdown action runs at stop, through the CLI verb, with libvirt-guests' three settings.
    expect(readFileSync(units[2]!, 'utf8')).toMatch(
      /^ExecStop=.* host-shutdown --on-shutdown \$\{ON_SHUTDOWN\} --shutdown-timeout \$\{SHUTDOWN_TIMEOUT\} --parallel \$\{PARALLEL_SHUTDOWN\}$/m,
    );
  });

  it('the example host config loads with the host worker loader', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'vmf-cfg-'));
    try {
      const cfg = loadHostConfig({
        VMFERRY_HOST_CONFIG: join(DEPLOY, 'host-worker.example.json'),
        // Keep the loader's mkdir inside the temp dir.
        VMFERRY_HOST_STATE_DIR: join(tmp, 's'),
        VMFERRY_HOST_RUN_DIR: join(tmp, 'r'),
        VMFERRY_HOST_LOG_DIR: join(tmp, 'l'),
        VMFERRY_HOST_MEMORY_DIR: join(tmp, 'm'),
      });
      expect(cfg).toMatchObject({
        name: 'host-a',
        emulators: ['/usr/bin/qemu-system-x86_64'],
        protocolVersions: [2, 3],
        migration: { portMin: 49152, portMax: 49215 },
        temporal: { address: 'temporal.example:7233' },
        // Production is confined: a uid per guest, the sandbox, a cgroup per guest.
        security: { driver: 'dac', group: 'vmferry-qemu', uidRange: { min: 1879048192, max: 1879113727 } },
        qemuSandbox: true,
        cgroups: { mode: 'auto', parent: 'vmferry.slice' },
      });
      // The DAC driver those settings make gives each guest its own non-root uid.
      const groups = join(tmp, 'group');
      writeFileSync(groups, 'vmferry-qemu:x:998:\n');
      const dac = new DacDriver(cfg.security, { group: groups });
      const a = dac.processIdentity({ domain: 'a', uuid: '6c0f1e2a-0000-4000-8000-00000000000a' });
      const b = dac.processIdentity({ domain: 'b', uuid: '6c0f1e2a-0000-4000-8000-00000000000b' });
      expect(a.gid).toBe(998);
      expect(a.uid).toBeGreaterThanOrEqual(1879048192);
      expect(a.uid).not.toBe(b.uid);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
