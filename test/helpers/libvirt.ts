// A private libvirt daemon for interoperability tests: Debian's libvirtd run
// directly (no systemd here) in session mode as the unprivileged user `nobody`,
// so every directory it uses (config, runtime socket, QEMU state, guest RAM
// files, logs) is under one temporary directory the test owns, and nothing in
// /etc, /run or /var is touched. qemu.conf is written per start: libvirt 9.0
// takes a save image's compression only from `save_image_format` there.
// virsh runs as the same user against the daemon's socket. Stopped by its PID.
// Options for a daemon that stands for one host of two (the storage bench): it
// runs inside a network namespace, and has a host UUID of its own (libvirt
// refuses a migration between daemons that report the same one), and, for the
// convergence bench, devices its user may open (/dev/net/tun for a tap made for it,
// /dev/userfaultfd for post-copy): nodes of its own bind-mounted over them in a
// private mount namespace, so nothing outside the daemon and its QEMUs changes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../../src/support/wait.js';
import { which } from '../../src/support/which.js';

export interface Account {
  uid: number;
  gid: number;
}

/** "major:minor" of a character device. */
function deviceNumbers(path: string): string {
  const st = statSync(path);
  if (!st.isCharacterDevice()) throw new Error(`${path} is not a character device`);
  const rdev = st.rdev;
  return `${(rdev >> 8) & 0xfff}:${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)}`;
}

/** uid and gid of a local account, from /etc/passwd. */
export function account(name: string): Account {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && f[3] !== undefined) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`no account '${name}' in /etc/passwd`);
}

/** Why libvirt cannot be used here, or undefined when it can. */
export function libvirtMissing(): string | undefined {
  for (const program of ['libvirtd', 'virsh'])
    if (!which(program)) return `'${program}' is not installed (setup --for-tests installs libvirt-daemon and libvirt-clients)`;
  return undefined;
}

export class LibvirtDaemon {
  readonly user = account('nobody');
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private stderr = '';

  /** `root` must exist and be owned by root; the daemon's files go in it. */
  constructor(
    readonly root: string,
    readonly opts: { netns?: string; hostUuid?: string; devices?: string[] } = {},
  ) {}

  /** Its socket, for a URI another virsh names it by (`qemu+unix:///session?socket=...`). */
  get socket(): string {
    return this.dir('run', 'libvirt', 'libvirt-sock');
  }

  private dir(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  private get env(): Record<string, string> {
    return {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: this.dir('home'),
      XDG_CONFIG_HOME: this.dir('config'),
      XDG_RUNTIME_DIR: this.dir('run'),
      XDG_CACHE_HOME: this.dir('cache'),
      XDG_DATA_HOME: this.dir('data'),
      LANG: 'C',
      // virsh must never start a session daemon of its own: one it started while ours was still
      // coming up took the runtime directory, ours exited, and the stray one (outside the host's
      // namespace) answered instead of it.
      LIBVIRT_AUTOSTART: '0',
    };
  }

  /** A directory the daemon's user may write (for `virsh save`, and images it reads). */
  ownedDir(name: string): string {
    const d = this.dir(name);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    chownSync(d, this.user.uid, this.user.gid);
    return d;
  }

  async start(saveImageFormat: 'raw' | 'gzip'): Promise<void> {
    if (this.child) throw new Error('libvirtd already started');
    chownSync(this.root, this.user.uid, this.user.gid);
    for (const d of ['home', 'config', 'config/libvirt', 'run', 'cache', 'data']) this.ownedDir(d);
    // stdio_handler=file: QEMU logs to a file, so libvirtd spawns no virtlogd we would have to stop.
    writeFileSync(this.dir('config', 'libvirt', 'qemu.conf'), `stdio_handler = "file"\nsave_image_format = "${saveImageFormat}"\n`);
    chownSync(this.dir('config', 'libvirt', 'qemu.conf'), this.user.uid, this.user.gid);
    if (this.opts.hostUuid) {
      writeFileSync(this.dir('config', 'libvirt', 'libvirtd.conf'), `host_uuid = "${this.opts.hostUuid}"\n`);
      chownSync(this.dir('config', 'libvirt', 'libvirtd.conf'), this.user.uid, this.user.gid);
    }
    const { uid, gid } = this.user;
    const libvirtd = which('libvirtd')!;
    // In a namespace: nsenter (root) enters it and drops to the daemon's user before it execs libvirtd.
    const inNetns = this.opts.netns
      ? [which('nsenter')!, `--net=/run/netns/${this.opts.netns}`, `--setgid=${gid}`, `--setuid=${uid}`, '--', libvirtd]
      : undefined;
    let child: ChildProcess;
    if (this.opts.devices?.length) {
      // unshare, sh, nsenter and setpriv all exec: the PID stays libvirtd's, as stop() expects.
      const asUser = inNetns ?? [which('setpriv')!, `--regid=${gid}`, `--reuid=${uid}`, '--clear-groups', '--', libvirtd];
      const [program, ...args] = this.withOwnDevices(this.opts.devices, asUser) as [string, ...string[]];
      child = spawn(program, args, { cwd: this.root, env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    } else if (inNetns) {
      const [program, ...args] = inNetns as [string, ...string[]];
      child = spawn(program, args, { cwd: this.root, env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    } else child = spawn(libvirtd, [], { cwd: this.root, env: this.env, uid, gid, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-8000)));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let gone = false;
    void this.exited.then(() => (gone = true));
    await waitFor(
      'libvirtd answering',
      () => {
        if (gone) throw new Error(`libvirtd exited: ${this.stderr}`);
        return this.virshResult(['version']).status === 0;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  }

  /**
   * `command` in a private mount namespace where each of `devices` is a node of the daemon's
   * user (a tmpfs of the daemon's own holds them, bind-mounted over the originals).
   */
  private withOwnDevices(devices: string[], command: string[]): string[] {
    const dir = this.dir('dev');
    mkdirSync(dir, { recursive: true });
    const script = [
      'set -e',
      'dir=$1; owner=$2; shift 2',
      'mount -t tmpfs -o mode=0755 vmf-dev "$dir"',
      'while [ "$1" != -- ]; do',
      '  path=${1%%:*}; nums=${1#*:}; node=$dir/$(basename "$path")',
      '  mknod -m 0600 "$node" c ${nums%:*} ${nums#*:}',
      '  chown "$owner" "$node"',
      '  mount --bind "$node" "$path"',
      '  shift',
      'done',
      'shift',
      'exec "$@"',
    ].join('\n');
    const nodes = devices.map((d) => `${d}:${deviceNumbers(d)}`);
    const { uid, gid } = this.user;
    return [which('unshare')!, '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', dir, `${uid}:${gid}`, ...nodes, '--', ...command];
  }

  /** Stops the daemon it started (SIGTERM, then SIGKILL) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private virshResult(args: string[]) {
    return spawnSync(which('virsh')!, ['-q', '-c', 'qemu:///session', ...args], {
      env: this.env,
      uid: this.user.uid,
      gid: this.user.gid,
      encoding: 'utf8',
      timeout: 120_000,
    });
  }

  /** virsh without blocking the event loop (a migration takes a while): its exit code and output. */
  async virshAsync(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(which('virsh')!, ['-q', '-c', 'qemu:///session', ...args], { env: this.env, uid: this.user.uid, gid: this.user.gid });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    return { code, stdout, stderr };
  }

  /** Runs virsh; its stdout, or an error with its stderr. */
  virsh(...args: string[]): string {
    const r = this.virshResult(args);
    if (r.status !== 0) throw new Error(`virsh ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.error?.message}`);
    return r.stdout;
  }

  domState(name: string): string {
    return this.virsh('domstate', name).trim();
  }

  /** PID of the QEMU libvirt runs for a domain (from its pid file). */
  qemuPid(name: string): number {
    return Number(readFileSync(this.dir('run', 'libvirt', 'qemu', 'run', `${name}.pid`), 'utf8').trim());
  }

  /** The RAM file libvirt made for a running domain with <memoryBacking><source type='file'/>. */
  memoryFile(name: string): string {
    const ramDir = this.dir('config', 'libvirt', 'qemu', 'ram');
    const dirs = existsSync(ramDir) ? readdirSync(ramDir).filter((d) => d.endsWith(`-${name}`)) : [];
    if (dirs.length !== 1) throw new Error(`expected one RAM directory for ${name} in ${ramDir}, found ${dirs.length}`);
    return join(ramDir, dirs[0]!, 'pc.ram');
  }
}
