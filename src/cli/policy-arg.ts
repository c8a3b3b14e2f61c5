// --policy and migrate-setpolicy take a built-in policy's name or a JSON file
// holding a whole policy (src/common/convergence-policy.ts); the workflow's
// validator has the last word on what the policy may contain.
import { readFileSync, statSync } from 'node:fs';
import type { ConvergencePolicy } from '../common/convergence-policy.js';
import { UsageError } from './exit-codes.js';

const MAX_POLICY_FILE_BYTES = 64 * 1024;
const NAME = /^[a-z][a-z0-9-]{0,63}$/;

export function policyArg(value: string | boolean | string[] | undefined, flag: string): string | ConvergencePolicy | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new UsageError(`${flag} needs a policy name (default, minimal-downtime, ...) or a JSON file`);
  if (NAME.test(value)) return value;
  let size: number;
  try {
    size = statSync(value).size;
  } catch (err) {
    throw new UsageError(`${flag} ${value}: not a built-in policy name, and no such file (${(err as Error).message})`);
  }
  if (size > MAX_POLICY_FILE_BYTES) throw new UsageError(`${flag} ${value}: ${size} bytes, a policy file is at most ${MAX_POLICY_FILE_BYTES}`);
  try {
    return JSON.parse(readFileSync(value, 'utf8')) as ConvergencePolicy;
  } catch (err) {
    throw new UsageError(`${flag} ${value}: not JSON (${(err as Error).message})`);
  }
}
