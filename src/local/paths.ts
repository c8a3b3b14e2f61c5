import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Where the demo keeps its Temporal database and host directories; never inside a host's real /var. */
export function projectStateDir(): string {
  return process.env.VMFERRY_STATE_DIR ?? join(PROJECT_ROOT, '.state');
}

/** Outside the clone, so a fresh clone on the same machine does not rebuild the Temporal CLI. */
export function userCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vmferry');
}
