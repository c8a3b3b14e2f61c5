// The disk leases a migrating domain holds, as the v3 cookie's
// `<lockstate driver='vmferry-lockspace'><leases>…</leases></lockstate>` carries
// them: the lockspace's identity (both hosts must use the same one) and each
// lease by name and mode, e.g. `lockspace=<id> exclusive=<sha256> shared=<sha256>`.
// Begin sends the leases the source holds (Prepare lets exactly those be held,
// by this domain, while the source runs); Perform sends the ones it released at
// the switchover (Finish takes them before the destination's CPUs start).
import { ErrorType, vmError } from '../common/errors.js';

export const LOCK_DRIVER = 'vmferry-lockspace';

export type LockMode = 'exclusive' | 'shared';

export interface LockState {
  lockspace: string;
  leases: { key: string; mode: LockMode }[];
}

const MAX_LEASES = 1024;
const KEY = /^[0-9a-f]{64}$/;
const LOCKSPACE = /^[0-9a-f]{32}$/;

export function formatLockState(s: LockState): { driver: string; leases: string } {
  return { driver: LOCK_DRIVER, leases: [`lockspace=${s.lockspace}`, ...s.leases.map((l) => `${l.mode}=${l.key}`)].join(' ') };
}

/** A cookie's lock state, checked whole: an unknown driver is ConfigUnsupported, anything malformed OperationInvalid. */
export function parseLockState(c: { driver: string; leases?: string }): LockState {
  if (c.driver !== LOCK_DRIVER) {
    throw vmError(ErrorType.ConfigUnsupported, `the migration cookie carries lock state of driver '${c.driver}'; this host's lock manager is '${LOCK_DRIVER}'`);
  }
  const bad = (why: string): Error => vmError(ErrorType.OperationInvalid, `bad lock state in the migration cookie: ${why}`);
  const tokens = (c.leases ?? '').split(' ').filter((t) => t !== '');
  const [first, ...rest] = tokens;
  const lockspace = first?.startsWith('lockspace=') ? first.slice('lockspace='.length) : undefined;
  if (lockspace === undefined || !LOCKSPACE.test(lockspace)) throw bad('no lockspace identity');
  if (rest.length > MAX_LEASES) throw bad(`more than ${MAX_LEASES} leases`);
  const seen = new Set<string>();
  const leases = rest.map((t) => {
    const eq = t.indexOf('=');
    const mode = t.slice(0, eq);
    const key = t.slice(eq + 1);
    if (eq < 0 || (mode !== 'exclusive' && mode !== 'shared') || !KEY.test(key)) throw bad(`'${t.slice(0, 80)}' is not MODE=LEASE`);
    if (seen.has(key)) throw bad(`lease ${key} listed twice`);
    seen.add(key);
    return { key, mode: mode as LockMode };
  });
  return { lockspace, leases };
}
