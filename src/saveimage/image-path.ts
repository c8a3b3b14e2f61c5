// Paths of save images as callers give them: checked before anything is touched
// (design §5: hostile input is refused with a typed error first).
import { accessSync, constants, lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, normalize, sep } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';

// Linux PATH_MAX less the NUL: longer paths fail in the kernel with ENAMETOOLONG.
const MAX_PATH_BYTES = 4095;

const invalid = (message: string, path: unknown): Error => vmError(ErrorType.OperationInvalid, message, { path });

function checkSyntax(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) throw invalid('missing image path', path);
  if (path.includes('\0')) throw invalid('image path contains a NUL character', path);
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw invalid(`image path is longer than ${MAX_PATH_BYTES} bytes`, path.slice(0, 200));
  if (!isAbsolute(path)) throw invalid(`image path ${JSON.stringify(path)} is not absolute`, path);
  if (path.split(sep).includes('..')) throw invalid(`image path ${JSON.stringify(path)} contains '..'`, path);
  if (normalize(path) !== path || path.endsWith(sep))
    throw invalid(`image path ${JSON.stringify(path)} is not in normal form (write ${JSON.stringify(normalize(path).replace(/\/+$/, ''))})`, path);
  return path;
}

function statOrUndefined(path: string, follow = true): Stats | undefined {
  try {
    return follow ? statSync(path) : lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    // Statements about the path the caller gave, not failures of the host.
    if (code === 'ENAMETOOLONG' || code === 'ENOTDIR' || code === 'ELOOP') throw invalid(`cannot use ${path}: ${(err as Error).message}`, path);
    throw vmError(ErrorType.OperationFailed, `cannot stat ${path}: ${(err as Error).message}`, { path });
  }
}

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/** When the host restricts where images go, `path`'s directory (symlinks resolved) must be below one of `dirs`. */
export function checkInsideDirs(path: string, dirs: readonly string[] | undefined): void {
  if (!dirs || dirs.length === 0) return;
  let real: string;
  try {
    real = realpathSync(dirname(path));
  } catch (err) {
    throw invalid(`directory of ${path} cannot be resolved: ${(err as Error).message}`, path);
  }
  if (!dirs.some((d) => isUnder(real, d))) throw invalid(`${path} is outside the directories this host saves to (${dirs.join(', ')})`, path);
}

/**
 * Where a save may write: an absolute normal path whose directory exists and is
 * writable, not a directory, not an existing file unless `overwrite`, and inside
 * one of `allowedDirs` when the host restricts them (symlinks in the directory
 * resolved first), and not a symbolic link itself.
 */
export function checkSaveTarget(path: unknown, opts: { overwrite: boolean; allowedDirs?: readonly string[] }): string {
  const p = checkSyntax(path);
  const parent = dirname(p);
  const ps = statOrUndefined(parent);
  if (!ps) throw invalid(`directory ${parent} does not exist`, p);
  if (!ps.isDirectory()) throw invalid(`${parent} is not a directory`, p);
  try {
    accessSync(parent, constants.W_OK | constants.X_OK);
  } catch {
    throw invalid(`directory ${parent} is not writable`, p);
  }
  checkInsideDirs(p, opts.allowedDirs);
  // Not followed: the worker runs as root, and a link planted at the target could point anywhere (/etc/passwd).
  const st = statOrUndefined(p, false);
  if (st?.isSymbolicLink()) throw invalid(`${p} is a symbolic link; save images are not written through links`, p);
  if (st?.isDirectory()) throw invalid(`${p} is a directory`, p);
  if (st && !st.isFile()) throw invalid(`${p} exists and is not a regular file`, p);
  if (st && !opts.overwrite) throw invalid(`${p} already exists (ask for overwrite to replace it)`, p);
  return p;
}

/** Where a restore (or an image XML edit) may read: an existing regular file at an absolute normal path. */
export function checkImageSource(path: unknown): string {
  const p = checkSyntax(path);
  const st = statOrUndefined(p);
  if (!st) throw invalid(`save image ${p} does not exist`, p);
  if (st.isDirectory()) throw invalid(`${p} is a directory, not a save image`, p);
  if (!st.isFile()) throw invalid(`${p} is not a regular file`, p);
  return p;
}
