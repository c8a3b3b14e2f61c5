// The host worker's environment variables and what each must look like. Only
// host-config.ts reads them; the values reach the rest of the worker through
// HostConfig. A variable, where set, wins over the config file's field.
import { z } from 'zod';
import { ConfigError, envNumber, optionalText, parseEnv, parsedText, rawText, text, workerEnvShape, type Env } from '../common/config-schema.js';
import { parseFaults } from '../support/fault-points.js';
import { parseQemuHide } from './host-capabilities.js';
import type { SecurityConfig, SecurityDriverName, StackableDriverName } from '../security/driver.js';

export class HostConfigError extends ConfigError {
  override readonly name = 'HostConfigError';
}

/** "2,3": each 2 or 3. */
const protocols = optionalText().transform((v, ctx) => {
  if (v === undefined) return undefined;
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.every((n) => n === 2 || n === 3)) return list;
  ctx.addIssue({ code: 'custom', message: 'must be a comma-separated subset of 2,3' });
  return z.NEVER;
});

/** Colon-separated; an empty value is an empty list (no emulator, no save-directory restriction). */
const colonList = rawText().transform((v) => v?.split(':'));

export const UID_RANGE_FORM = 'must be MIN-MAX, two uids with 0 < MIN <= MAX';

/** "MIN-MAX" of uids, or undefined when it is not one. */
export function parseUidRange(v: string): { min: number; max: number } | undefined {
  const m = /^(\d{1,10})-(\d{1,10})$/.exec(v.trim());
  return m && Number(m[1]) >= 1 && Number(m[1]) <= Number(m[2]) && Number(m[2]) <= 0xfffffffe ? { min: Number(m[1]), max: Number(m[2]) } : undefined;
}

const securityEnvShape = {
  VMFERRY_SECURITY_DRIVER: optionalText(),
  VMFERRY_SECURITY_STACK: optionalText(),
  VMFERRY_QEMU_USER: optionalText(),
  VMFERRY_QEMU_GROUP: optionalText(),
  // "MIN-MAX": each domain's QEMU runs as its own uid from this range (DAC).
  VMFERRY_QEMU_UID_RANGE: optionalText().transform((v, ctx) => {
    if (v === undefined) return undefined;
    const r = parseUidRange(v);
    if (r) return r;
    ctx.addIssue({ code: 'custom', message: UID_RANGE_FORM });
    return z.NEVER;
  }),
  VMFERRY_SELINUX_LABEL: optionalText(),
  VMFERRY_SELINUX_IMAGE_LABEL: optionalText(),
  VMFERRY_SECURITY_STATE_DIR: optionalText(),
};

export const hostEnvShape = {
  ...workerEnvShape,
  VMFERRY_HOST_CONFIG: optionalText(),
  // Checked against the host name pattern once the file's name is known.
  VMFERRY_HOST_NAME: rawText(),
  VMFERRY_HOST_BASE_DIR: text(),
  VMFERRY_HOST_STATE_DIR: text(),
  VMFERRY_HOST_RUN_DIR: text(),
  VMFERRY_HOST_LOG_DIR: text(),
  VMFERRY_HOST_MEMORY_DIR: text(),
  VMFERRY_HOST_PROTOCOLS: protocols,
  VMFERRY_HOST_MIGRATION_ADDRESS: text(),
  VMFERRY_HOST_MIGRATION_PORT_MIN: envNumber({ integer: true, min: 1, max: 65535 }),
  VMFERRY_HOST_MIGRATION_PORT_MAX: envNumber({ integer: true, min: 1, max: 65535 }),
  VMFERRY_QEMU_BINARY: text(),
  VMFERRY_HOST_EMULATORS: colonList,
  VMFERRY_QEMU_MODULE_DIR: optionalText(),
  VMFERRY_QEMU_FIRMWARE_DIRS: colonList,
  VMFERRY_HOST_UUID: text(),
  VMFERRY_SAVE_DIRS: colonList,
  VMFERRY_SHARED_STORAGE_PATHS: colonList,
  VMFERRY_HOST_HOOKS_DIR: optionalText(),
  VMFERRY_LOCKSPACE_DIR: optionalText(),
  VMFERRY_HOST_TUNNEL_LISTEN: optionalText(),
  VMFERRY_HOST_TUNNEL_CA: optionalText(),
  VMFERRY_HOST_TUNNEL_CERT: optionalText(),
  VMFERRY_HOST_TUNNEL_KEY: optionalText(),
  ...securityEnvShape,
  VMFERRY_QEMU_SANDBOX: optionalText().transform((v, ctx) => {
    if (v === undefined || v === 'on' || v === 'off') return v;
    ctx.addIssue({ code: 'custom', message: 'must be on or off' });
    return z.NEVER;
  }),
  VMFERRY_CGROUPS: optionalText().transform((v, ctx) => {
    if (v === undefined || ['off', 'auto', 'systemd', 'cgroupfs'].includes(v)) return v as 'off' | 'auto' | 'systemd' | 'cgroupfs' | undefined;
    ctx.addIssue({ code: 'custom', message: 'must be off, auto, systemd or cgroupfs' });
    return z.NEVER;
  }),
  VMFERRY_CGROUP_PARENT: optionalText(),
  VMFERRY_CGROUP_ROOT: optionalText(),
  VMFERRY_AUDIT_LOG: text(),
  VMFERRY_AUTO_DESTROY_INTERVAL_MS: envNumber({ above: 0, blankIsUnset: true }).transform((v) => v ?? 10_000),
  VMFERRY_INVENTORY_INTERVAL_MS: envNumber({ above: 0, blankIsUnset: true }).transform((v) => v ?? 30_000),
  // Unset: the monitor's own default (60 s).
  VMFERRY_MIGRATION_STALL_TIMEOUT_MS: envNumber({ integer: true, above: 0, blankIsUnset: true }),
  // Test-only fault injection (support/fault-points.ts); never set in production.
  VMFERRY_FAULTS: parsedText(parseFaults),
  VMFERRY_FAULT_DIR: text().transform((v) => v ?? '/tmp'),
  // Test-only: probed QEMU features this worker acts as if its QEMU lacked (host-capabilities.ts).
  VMFERRY_HOST_QEMU_HIDE: parsedText(parseQemuHide),
};

export type HostEnv = ReturnType<typeof readHostEnv>;

export function readHostEnv(env: Env) {
  return parseEnv(hostEnvShape, env, (m) => new HostConfigError(m));
}

/**
 * The security driver's settings: VMFERRY_SECURITY_DRIVER none (default), dac, selinux,
 * stack, or a comma list ("dac,selinux") as a shorthand for a stack. Unknown names are
 * refused by createSecurityDriver, not here, so the error names the setting's value.
 */
export function securityConfigOf(e: z.output<z.ZodObject<typeof securityEnvShape>>, defaults: { rememberDir?: string } = {}): SecurityConfig {
  const raw = (e.VMFERRY_SECURITY_DRIVER ?? '').trim() || 'none';
  const list = (v: string): StackableDriverName[] =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean) as StackableDriverName[];
  const config: SecurityConfig = raw.includes(',')
    ? { driver: 'stack', stack: list(raw) }
    : { driver: raw as SecurityDriverName, ...(e.VMFERRY_SECURITY_STACK ? { stack: list(e.VMFERRY_SECURITY_STACK) } : {}) };
  if (e.VMFERRY_QEMU_USER) config.user = e.VMFERRY_QEMU_USER;
  if (e.VMFERRY_QEMU_GROUP) config.group = e.VMFERRY_QEMU_GROUP;
  if (e.VMFERRY_QEMU_UID_RANGE) config.uidRange = e.VMFERRY_QEMU_UID_RANGE;
  if (e.VMFERRY_SELINUX_LABEL) config.selinuxLabel = e.VMFERRY_SELINUX_LABEL;
  if (e.VMFERRY_SELINUX_IMAGE_LABEL) config.imageLabel = e.VMFERRY_SELINUX_IMAGE_LABEL;
  const rememberDir = e.VMFERRY_SECURITY_STATE_DIR || defaults.rememberDir;
  if (rememberDir) config.rememberDir = rememberDir;
  return config;
}

/** The security settings alone, from an environment record (tests, and the shape of the docs). */
export function securityConfigFromEnv(env: Env, defaults: { rememberDir?: string } = {}): SecurityConfig {
  return securityConfigOf(
    parseEnv(securityEnvShape, env, (m) => new HostConfigError(m)),
    defaults,
  );
}
