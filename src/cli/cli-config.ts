// The vmferry command's environment, read here only: the Temporal CLI's connection
// variables (so an operator's TEMPORAL_* settings just work), the host a verb acts
// on, who is asking, and the payload key.
import { parseEnv, rawText, temporalEnvShape, type Env } from '../common/config-schema.js';
import type { ConnectionOptions } from './connection.js';
import { UsageError } from './exit-codes.js';

export const cliEnvShape = {
  ...temporalEnvShape,
  // The Temporal CLI's names first, then the shorter ones it also accepts.
  TEMPORAL_TLS_CLIENT_CERT_PATH: rawText(),
  TEMPORAL_TLS_CERT: rawText(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: rawText(),
  TEMPORAL_TLS_KEY: rawText(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: rawText(),
  TEMPORAL_TLS_CA: rawText(),
  TEMPORAL_TLS_SERVER_NAME: rawText(),
  VMFERRY_HOST: rawText(),
  VMFERRY_REQUESTED_BY: rawText(),
};

export interface CliConfig {
  /** Connection settings from the environment; command-line options override each. */
  connection: ConnectionOptions;
  host?: string;
  /** Who the audit log names (default user@machine). */
  requestedBy?: string;
  payloadKeyFiles?: string[];
}

/** A bad value is a usage error (exit 2) naming the variable. */
export function loadCliConfig(env: Env = process.env): CliConfig {
  const e = parseEnv(cliEnvShape, env, (m) => new UsageError(m));
  return {
    connection: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      tlsCertPath: e.TEMPORAL_TLS_CLIENT_CERT_PATH ?? e.TEMPORAL_TLS_CERT,
      tlsKeyPath: e.TEMPORAL_TLS_CLIENT_KEY_PATH ?? e.TEMPORAL_TLS_KEY,
      tlsCaPath: e.TEMPORAL_TLS_SERVER_CA_CERT_PATH ?? e.TEMPORAL_TLS_CA,
      tlsServerName: e.TEMPORAL_TLS_SERVER_NAME,
    },
    ...(e.VMFERRY_HOST !== undefined ? { host: e.VMFERRY_HOST } : {}),
    ...(e.VMFERRY_REQUESTED_BY !== undefined ? { requestedBy: e.VMFERRY_REQUESTED_BY } : {}),
    ...(e.VMFERRY_PAYLOAD_KEY_FILE ? { payloadKeyFiles: e.VMFERRY_PAYLOAD_KEY_FILE } : {}),
  };
}
