// The host worker's security driver settings from its environment. Every
// default keeps a one-machine setup working: no driver, QEMU as the worker's user.
import type { SecurityConfig, SecurityDriverName, StackableDriverName } from './driver.js';

/**
 * VMFERRY_SECURITY_DRIVER: none (default), dac, selinux, stack, or a comma list
 * ("dac,selinux") as a shorthand for a stack; VMFERRY_SECURITY_STACK: the stack's
 * members; VMFERRY_QEMU_USER / VMFERRY_QEMU_GROUP: whom DAC hands files to;
 * VMFERRY_SELINUX_LABEL / VMFERRY_SELINUX_IMAGE_LABEL: SELinux process and file
 * labels; VMFERRY_SECURITY_STATE_DIR (or `defaults.rememberDir`): where
 * remembered labels survive a worker restart. Unknown names are refused by
 * createSecurityDriver, not here, so the error names the setting's value.
 */
export function securityConfigFromEnv(env: NodeJS.ProcessEnv = process.env, defaults: { rememberDir?: string } = {}): SecurityConfig {
  const raw = (env.VMFERRY_SECURITY_DRIVER ?? '').trim() || 'none';
  const list = (v: string): StackableDriverName[] =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean) as StackableDriverName[];
  const config: SecurityConfig = raw.includes(',')
    ? { driver: 'stack', stack: list(raw) }
    : { driver: raw as SecurityDriverName, ...(env.VMFERRY_SECURITY_STACK ? { stack: list(env.VMFERRY_SECURITY_STACK) } : {}) };
  if (env.VMFERRY_QEMU_USER) config.user = env.VMFERRY_QEMU_USER;
  if (env.VMFERRY_QEMU_GROUP) config.group = env.VMFERRY_QEMU_GROUP;
  if (env.VMFERRY_SELINUX_LABEL) config.selinuxLabel = env.VMFERRY_SELINUX_LABEL;
  if (env.VMFERRY_SELINUX_IMAGE_LABEL) config.imageLabel = env.VMFERRY_SELINUX_IMAGE_LABEL;
  const rememberDir = env.VMFERRY_SECURITY_STATE_DIR || defaults.rememberDir;
  if (rememberDir) config.rememberDir = rememberDir;
  return config;
}
