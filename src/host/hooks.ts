// The operator's host hook, with libvirt's calling convention so existing hook
// scripts keep working: `<hooksDir>/qemu DOMAIN OPERATION SUBOP -`, the domain
// XML on stdin. prepare/start (begin) run before QEMU is spawned, started (begin)
// once it runs but before its CPUs do, stopped/release (end) after it is gone
// whatever the reason, migrate (begin) at the destination's Prepare before
// anything is made there, restore (begin) when a restore or a start from a
// managed save begins, before the job is taken, and reconnect (begin) when a
// restarted worker reattaches to a QEMU that outlived its predecessor. A non-zero
// exit of prepare, start, started, migrate or restore refuses that step; one of
// reconnect kills that QEMU, as libvirt does; stopped and release cannot refuse
// (QEMU is already gone), so their failures are only logged. libvirt's attach
// (a QEMU started outside it, adopted) has no counterpart here. The hook runs without a shell, with a bare
// environment (no worker secrets) and a deadline.
import { spawn } from 'node:child_process';
import { constants, accessSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ErrorType, vmError } from '../common/errors.js';
import { formatDomainXml, type DomainDef } from '../domain/index.js';
import type { LaunchedQemu } from '../qemu/launch.js';
import { terminate } from '../support/proc.js';
import type { HostConfig } from './host-config.js';

export type HookOperation = 'prepare' | 'start' | 'started' | 'stopped' | 'release' | 'migrate' | 'restore' | 'reconnect';

/** A hook that does not answer within this long is killed and counts as a refusal. */
export const HOOK_TIMEOUT_MS = 30_000;
/** More output than this is cut: a hook's stdout is at most a domain definition. */
const MAX_OUTPUT = 4 * 1024 * 1024;

interface HookHost {
  readonly config: Pick<HostConfig, 'hooksDir'>;
  readonly log: Logger;
}

const SUBOP: Record<HookOperation, 'begin' | 'end'> = {
  prepare: 'begin',
  start: 'begin',
  started: 'begin',
  stopped: 'end',
  release: 'end',
  migrate: 'begin',
  restore: 'begin',
  reconnect: 'begin',
};

/** libvirt's rule: the hook exists when the file is there and executable; otherwise nothing runs. */
function hookPath(hooksDir: string | undefined): string | undefined {
  if (hooksDir === undefined) return undefined;
  const path = join(hooksDir, 'qemu');
  try {
    if (!statSync(path).isFile()) return undefined;
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    return undefined;
  }
}

/**
 * Runs the hook for one step; returns its stdout (the replacement XML for migrate),
 * or undefined when there is no hook. Throws OperationFailed when it refuses.
 */
export async function runHook(host: HookHost, op: HookOperation, domain: string, xml: string, timeoutMs = HOOK_TIMEOUT_MS): Promise<string | undefined> {
  const path = hookPath(host.config.hooksDir);
  if (path === undefined) return undefined;
  const argv = [domain, op, SUBOP[op], '-'];
  const refuse = (why: string) =>
    vmError(ErrorType.OperationFailed, `hook ${path} refused ${op} ${SUBOP[op]} of domain '${domain}': ${why}`, { domain, hook: path, operation: op });
  const result = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean } | Error>((resolve) => {
    const child = spawn(path, argv, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      cwd: '/',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const keep = (into: Buffer[]) => (b: Buffer) => {
      if (size < MAX_OUTPUT) into.push(b);
      size += b.length;
    };
    child.stdout.on('data', keep(out));
    child.stderr.on('data', keep(err));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // Only the child this call spawned; its pipes are dropped too, so a grandchild
      // holding them open cannot keep this waiting.
      child.kill('SIGKILL');
      child.stdout.destroy();
      child.stderr.destroy();
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
    // A hook that does not read its stdin closes the pipe early: not an error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(xml);
  });
  if (result instanceof Error) throw refuse(`cannot run it: ${result.message}`);
  const firstLine =
    result.stderr
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? '';
  if (result.timedOut) throw refuse(`no answer within ${timeoutMs} ms (killed)`);
  if (result.code !== 0)
    throw refuse(`${result.code === null ? `killed by ${result.signal}` : `exit status ${result.code}`}${firstLine ? `: ${firstLine}` : ''}`);
  host.log.info({ domain, hook: path, operation: op }, 'host hook ran');
  return result.stdout;
}

/** stopped/release: QEMU is gone already, so a failing hook is logged and nothing more. */
export async function runEndHooks(host: HookHost, domain: string, xml: string, ops: HookOperation[] = ['stopped', 'release']): Promise<void> {
  for (const op of ops) {
    await runHook(host, op, domain, xml).catch((err: unknown) => host.log.warn({ domain, err, operation: op }, 'host hook failed (ignored: QEMU is gone)'));
  }
}

/** What a start does around the hooks: libvirt's order is prepare, set-up, start, spawn, started. */
export interface StartSteps {
  /** Host resources the hook may have prepared for (taps on bridges, OVS ports): after prepare, before start. */
  setUp: () => Promise<void>;
  spawn: () => Promise<LaunchedQemu>;
  /** Undoes setUp (synchronously, as when QEMU goes); runs before release. */
  tearDown: () => void;
}

/**
 * prepare before anything is set up (libvirt's hook may create a missing bridge),
 * start after, then `spawn`, then started. A refusal of prepare or start, or a
 * failed set-up or spawn, is followed by tearDown and release (every prepare gets
 * its release, so a hook's cleanup runs); a refused started kills the QEMU just
 * spawned and is followed by stopped, tearDown and release.
 */
export async function spawnWithHooks(host: HookHost, def: DomainDef, steps: StartSteps): Promise<LaunchedQemu> {
  const hooked = hookPath(host.config.hooksDir) !== undefined;
  const xml = hooked ? formatDomainXml(def) : '';
  let launched: LaunchedQemu;
  try {
    if (hooked) await runHook(host, 'prepare', def.name, xml);
    await steps.setUp();
    if (hooked) await runHook(host, 'start', def.name, xml);
    launched = await steps.spawn();
  } catch (err) {
    steps.tearDown();
    if (hooked) await runEndHooks(host, def.name, xml, ['release']);
    throw err;
  }
  if (!hooked) return launched;
  try {
    await runHook(host, 'started', def.name, xml);
  } catch (err) {
    await terminate(launched.pid);
    await launched.qmp.close().catch(() => undefined);
    await runEndHooks(host, def.name, xml, ['stopped']);
    steps.tearDown();
    await runEndHooks(host, def.name, xml, ['release']);
    throw err;
  }
  return launched;
}

/**
 * The restore hook (restore and managed-save start), with the image's definition
 * on stdin; a non-empty stdout replaces it, and the caller checks the replacement
 * as libvirt does (ABI stability against the image's). Undefined: no replacement.
 */
export async function restoreHook(host: HookHost, domain: string, xml: string): Promise<string | undefined> {
  const out = await runHook(host, 'restore', domain, xml);
  return out !== undefined && out.trim() !== '' ? out : undefined;
}

/**
 * Prepare's migrate hook: the incoming definition on stdin; a non-empty stdout
 * replaces it (libvirt's rule), and the caller checks the replacement as it
 * checks what the source sent.
 */
export async function migrateHook(host: HookHost, domain: string, xml: string): Promise<string> {
  const out = await runHook(host, 'migrate', domain, xml);
  return out !== undefined && out.trim() !== '' ? out : xml;
}
