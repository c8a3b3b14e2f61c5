// The vmferry command's environment, read here only: the Temporal CLI's connection
// variables and profile file (so an operator's TEMPORAL_* settings and temporal.toml just
// work), the host a verb acts on, who is asking, and the payload key.
import { parseEnv, rawText, temporalEnvShape, type Env } from '../common/config-schema.js';
import { resolveTemporalSettings, type TemporalOverrides, type TemporalSettings } from '../connection/temporal-settings.js';
import { UsageError } from './exit-codes.js';

export const cliEnvShape = {
  ...temporalEnvShape,
  VMFERRY_HOST: rawText(),
  VMFERRY_REQUESTED_BY: rawText(),
};

/** The connection options of the command line (--profile, --config-file, --address...). */
export interface CommandLineConnection {
  profile?: string;
  configFile?: string;
  overrides: TemporalOverrides;
}

export interface CliConfig {
  /** The connection once the command line is known: its options win over the environment, which wins over the profile. */
  temporal: (commandLine: CommandLineConnection) => TemporalSettings;
  host?: string;
  /** Who the audit log names (default user@machine). */
  requestedBy?: string;
  payloadKeyFiles?: string[];
}

/** A bad value is a usage error (exit 2) naming the variable. */
export function loadCliConfig(env: Env = process.env): CliConfig {
  const e = parseEnv(cliEnvShape, env, (m) => new UsageError(m));
  return {
    temporal: (c) => resolveTemporalSettings(env, { profile: c.profile, configFile: c.configFile, above: c.overrides, aboveName: 'command line' }),
    ...(e.VMFERRY_HOST !== undefined ? { host: e.VMFERRY_HOST } : {}),
    ...(e.VMFERRY_REQUESTED_BY !== undefined ? { requestedBy: e.VMFERRY_REQUESTED_BY } : {}),
    ...(e.VMFERRY_PAYLOAD_KEY_FILE ? { payloadKeyFiles: e.VMFERRY_PAYLOAD_KEY_FILE } : {}),
  };
}
