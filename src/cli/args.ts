// Small argument checks shared by the job verbs: exact positional counts, the
// run-state override pair, numbers, and XML files read on the client.
import { readFileSync } from 'node:fs';
import type { RunStateOverride } from '../common/save-types.js';
import { UsageError } from './exit-codes.js';

export type Opts = Record<string, string | boolean | string[] | undefined>;

export function positionals(args: string[], count: number, usage: string): string[] {
  if (args.length !== count || args.some((a) => a.length === 0)) throw new UsageError(`usage: ${usage}`);
  return args;
}

/** libvirt's --running / --paused pair; giving both is a usage error. */
export function runState(opts: Opts): RunStateOverride {
  if (opts.running === true && opts.paused === true) throw new UsageError('--running and --paused are mutually exclusive');
  return { ...(opts.running === true ? { running: true } : {}), ...(opts.paused === true ? { paused: true } : {}) };
}

export function wholeNumber(value: string | boolean | string[] | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d+$/.test(value.trim())) throw new UsageError(`${what} must be a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

export function stringOpt(value: string | boolean | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Domain XML the user hands the CLI lives on the client; its text travels in the workflow input. */
export function readXmlFile(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

export const MIB = 1024 * 1024;

export function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}
