// Extended attributes through Debian's attr tools (setfattr, getfattr), spawned
// with argument vectors: Node has no xattr API. Values travel as hex on the way
// in and raw bytes on the way out, so any byte (a context's trailing NUL) survives.
import { spawn } from 'node:child_process';
import { ErrorType, vmError } from '../common/errors.js';
import { which } from '../support/which.js';

export interface XattrBackend {
  /** The value, or undefined when the file has no such attribute. */
  get(path: string, name: string): Promise<Buffer | undefined>;
  set(path: string, name: string, value: Buffer): Promise<void>;
  /** Removing an attribute the file does not have is fine. */
  remove(path: string, name: string): Promise<void>;
}

/** The errno behind an attr tool's message (it prints strerror text, in the C locale here). */
export class XattrError extends Error {
  override readonly name = 'XattrError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

const ERRNO_TEXT: [RegExp, string][] = [
  [/No such file or directory/, 'ENOENT'],
  [/No such attribute|No data available/, 'ENODATA'],
  [/Operation not permitted/, 'EPERM'],
  [/Permission denied/, 'EACCES'],
  [/Operation not supported/, 'ENOTSUP'],
];

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function run(binary: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      stderr += s;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: stderr.trim() }));
  });
}

function failure(tool: string, r: Run): XattrError {
  const code = ERRNO_TEXT.find(([re]) => re.test(r.stderr))?.[1] ?? 'EIO';
  return new XattrError(`${tool}: ${r.stderr || `exit ${String(r.code)}`}`, code);
}

export class AttrToolsXattr implements XattrBackend {
  private readonly setfattr: string;
  private readonly getfattr: string;

  constructor(opts: { setfattr?: string; getfattr?: string } = {}) {
    const setfattr = opts.setfattr ?? which('setfattr');
    const getfattr = opts.getfattr ?? which('getfattr');
    if (!setfattr || !getfattr) {
      throw vmError(ErrorType.ConfigUnsupported, 'setfattr/getfattr not found: install the Debian package attr for the SELinux security driver');
    }
    this.setfattr = setfattr;
    this.getfattr = getfattr;
  }

  async get(path: string, name: string): Promise<Buffer | undefined> {
    const r = await run(this.getfattr, ['--absolute-names', '--only-values', '-n', name, '--', path]);
    if (r.code === 0) return r.stdout;
    const err = failure('getfattr', r);
    if (err.code === 'ENODATA') return undefined;
    throw err;
  }

  async set(path: string, name: string, value: Buffer): Promise<void> {
    // "0x" with no digits is not a valid empty value for setfattr; an empty one is written without -v.
    const args = value.length ? ['-n', name, '-v', `0x${value.toString('hex')}`, '--', path] : ['-n', name, '--', path];
    const r = await run(this.setfattr, args);
    if (r.code !== 0) throw failure('setfattr', r);
  }

  async remove(path: string, name: string): Promise<void> {
    const r = await run(this.setfattr, ['-x', name, '--', path]);
    if (r.code === 0) return;
    const err = failure('setfattr', r);
    if (err.code !== 'ENODATA') throw err;
  }
}
