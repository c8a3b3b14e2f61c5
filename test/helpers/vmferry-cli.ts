// The vmferry command as a user runs it: a real process (node bin/vmferry.js),
// with pipes, or under a pseudo-terminal made by python3's pty module (an argv
// list: no shell anywhere), for the progress line a terminal gets.
import { spawn, type ChildProcess } from 'node:child_process';
import { PROJECT_ROOT } from '../../src/local/paths.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcess;
  /** Everything written so far (stdout; under a pty, the terminal's whole output). */
  output: () => string;
  done: Promise<CliResult>;
}

export interface CliEnv {
  address: string;
  host: string;
  env?: Record<string, string>;
}

function collect(child: ChildProcess): CliProcess {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, output: () => stdout, done };
}

function envFor(e: CliEnv): NodeJS.ProcessEnv {
  return { ...process.env, TEMPORAL_ADDRESS: e.address, VMFERRY_HOST: e.host, VMFERRY_REQUESTED_BY: 'cli-test@ops', ...e.env };
}

export function startVmferry(e: CliEnv, args: string[]): CliProcess {
  return collect(spawn(process.execPath, ['bin/vmferry.js', ...args], { cwd: PROJECT_ROOT, env: envFor(e), stdio: ['ignore', 'pipe', 'pipe'] }));
}

export async function vmferry(e: CliEnv, ...args: string[]): Promise<CliResult> {
  return await startVmferry(e, args).done;
}

/** JSON stdout of a --json run, with the run's stderr in the message when it is not JSON. */
export function jsonOf<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

// Forks with a pseudo-terminal (160 columns) as the child's stdin/stdout/stderr, copies what
// the child writes to our stdout, and exits with the child's exit code.
const PTY_RUNNER = `
import fcntl, os, pty, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 160, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
`;

export function startVmferryInPty(e: CliEnv, args: string[]): CliProcess {
  return collect(
    spawn('python3', ['-c', PTY_RUNNER, process.execPath, 'bin/vmferry.js', ...args], {
      cwd: PROJECT_ROOT,
      env: { ...envFor(e), TERM: 'xterm' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}
