// The CLI as an operator types it: `vmferry list` and `dominfo` started cold (a new
// process each time, as a shell runs it), from the build (dist/, what an install runs)
// and from the sources through tsx, against `virsh list` / `dominfo` on a private libvirtd
// with a domain defined, interleaved in one run. Medians of --runs N (default 10).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshBuild } from '../bin/build-fresh.js';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { LibvirtDaemon, libvirtMissing } from '../test/helpers/libvirt.js';
import { guestXml } from '../test/helpers/guest-xml.js';
import { arg, BenchEnv, median, say } from './common.js';

const RUNS = arg('runs', 10);
const HOST = 'bench-cli';

function timed(program: string, args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(program, args, { cwd: PROJECT_ROOT, env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${program} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}

if (!freshBuild(PROJECT_ROOT)) {
  console.error('[bench] dist/ is missing or older than src/: run `npm run build` first (setup does)');
  process.exit(2);
}
const env = await BenchEnv.create('vmf-bench-cli');
// Its own folder under /tmp: the daemon's user must reach it, and the bench's root is private.
const libvirt = libvirtMissing() ? undefined : new LibvirtDaemon(mkdtempSync(join(tmpdir(), 'vmf-bench-libvirt-')));
try {
  await Promise.all([env.startHost(HOST), env.startControl()]);
  await env.op(HOST, { op: 'define', xml: guestXml({ name: 'bc-g' }) });
  const cliEnv = { ...process.env, TEMPORAL_ADDRESS: env.server.address, VMFERRY_HOST: HOST, NODE_OPTIONS: '' };
  const dist = (verb: string[]): number => timed(process.execPath, [join(PROJECT_ROOT, 'bin', 'vmferry.js'), ...verb], cliEnv);
  const tsx = (verb: string[]): number => timed(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'cli', 'main.ts'), ...verb], cliEnv);
  let virsh: ((verb: string[]) => number) | undefined;
  if (libvirt) {
    await libvirt.start('raw');
    const xml = join(libvirt.ownedDir('xml'), 'bc-g.xml');
    writeFileSync(xml, guestXml({ name: 'bc-g' }));
    libvirt.virsh('define', xml);
    virsh = (verb) => {
      const t0 = process.hrtime.bigint();
      libvirt.virsh(...verb);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
  } else say(`no libvirt comparison: ${libvirtMissing()}`);
  for (const [label, verb] of [
    ['list --all', ['list', '--all']],
    ['dominfo', ['dominfo', 'bc-g']],
  ] as const) {
    const rows: Record<string, number[]> = { 'vmferry (build)': [], 'vmferry (tsx)': [], virsh: [] };
    dist([...verb]); // warm the page cache, as a second command in a shell would find it
    for (let i = 0; i < RUNS; i++) {
      rows['vmferry (build)']!.push(dist([...verb]));
      rows['vmferry (tsx)']!.push(tsx([...verb]));
      if (virsh) rows.virsh!.push(virsh([...verb]));
    }
    const base = rows.virsh!.length ? median(rows.virsh!) : undefined;
    for (const [who, xs] of Object.entries(rows)) {
      if (!xs.length) continue;
      const m = median(xs);
      say(
        `${label.padEnd(10)} ${who.padEnd(15)} median ${m.toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})${base ? `, ${(m / base).toFixed(1)}x virsh` : ''}`,
      );
    }
  }
} finally {
  await libvirt?.stop();
  if (libvirt) rmSync(libvirt.root, { recursive: true, force: true });
  await env.stop();
}
