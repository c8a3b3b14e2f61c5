// Where a dump lands. The data goes to a hidden temporary file beside the target,
// named after the job, and appears under the user's name only once complete: a
// partial dump never sits at the path the user asked for, a retried attempt finds
// and truncates its own temporary, and cleanup knows exactly what to remove.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, lstatSync, openSync, rmSync, statSync, unlinkSync, constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import { invalidDumpPath } from '../common/dump-types.js';
import { checkInsideDirs } from '../saveimage/image-path.js';

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Absolute, its directory exists (below one of `allowedDirs` when the host restricts them), nothing is there yet. */
export function checkDumpTarget(path: string, allowedDirs: readonly string[] = []): string {
  const why = invalidDumpPath(path);
  if (why) throw vmError(ErrorType.OperationInvalid, why, { path });
  const p = resolve(path);
  const dir = dirname(p);
  let st;
  try {
    st = statSync(dir);
  } catch (err) {
    throw vmError(ErrorType.OperationInvalid, `directory of dump path ${p} does not exist (${code(err) ?? String(err)})`, { path: p });
  }
  if (!st.isDirectory()) throw vmError(ErrorType.OperationInvalid, `${dir} is not a directory`, { path: p });
  checkInsideDirs(p, allowedDirs);
  if (exists(p)) throw vmError(ErrorType.OperationInvalid, `dump path ${p} already exists; refusing to overwrite it`, { path: p });
  return p;
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch (err) {
    if (code(err) === 'ENOENT') return false;
    throw err;
  }
}

export function tempDumpPath(path: string, jobId: string): string {
  const p = resolve(path);
  const tag = createHash('sha256').update(jobId).digest('hex').slice(0, 16);
  return `${dirname(p)}/.${basename(p)}.vmferry-dump-${tag}`;
}

/**
 * Opens (creating or reusing) the job's temporary. The worker runs as root in a
 * directory a user chose: never follow a symlink planted under that name, and
 * never truncate a file that is also linked elsewhere.
 */
export async function openDumpTemp(tmp: string): Promise<FileHandle> {
  let file: FileHandle;
  try {
    file = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw vmError(ErrorType.OperationFailed, `cannot create dump file ${tmp}: ${(err as Error).message}`, { path: tmp });
  }
  const st = await file.stat();
  if (!st.isFile() || st.nlink !== 1 || st.uid !== process.getuid?.()) {
    await file.close();
    throw vmError(ErrorType.OperationFailed, `${tmp} is not a file this job made; refusing to write the dump there`, { path: tmp });
  }
  await file.truncate(0);
  return file;
}

export function sizeOf(p: string): number | undefined {
  try {
    return statSync(p).size;
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Moves the finished temporary to the target without ever replacing a file that
 * appeared there meanwhile (link fails on an existing name, rename would not).
 * Repeating it after success is a no-op.
 */
export function publishDump(tmp: string, path: string): number {
  const tmpSize = sizeOf(tmp);
  if (tmpSize === undefined) {
    const done = sizeOf(path);
    if (done !== undefined) return done; // published by an earlier attempt of this step
    throw vmError(ErrorType.OperationFailed, `finished dump ${tmp} is missing`, { path });
  }
  try {
    linkSync(tmp, path);
  } catch (err) {
    if (code(err) === 'EEXIST') throw vmError(ErrorType.OperationFailed, `${path} appeared while the dump ran; the dump was not moved over it`, { path });
    throw err;
  }
  unlinkSync(tmp);
  syncDir(dirname(path));
  return tmpSize;
}

export function removeDumpTemp(tmp: string): void {
  rmSync(tmp, { force: true });
}

function syncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
