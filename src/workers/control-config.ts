// The control worker's environment, read here only; the worker gets typed values.
import { envNumber, optionalText, parseEnv, workerEnvShape, type Env, type LogLevel } from '../common/config-schema.js';
import { resolveTemporalSettings, type TemporalSettings } from '../connection/temporal-settings.js';

export const controlEnvShape = {
  ...workerEnvShape,
  // A prebuilt workflow bundle (tests, deployments) skips webpack at start-up.
  VMFERRY_WORKFLOW_BUNDLE: optionalText(),
  VMFERRY_STICKY_QUEUE_TIMEOUT_MS: envNumber({ above: 0, blankIsUnset: true }),
};

export interface ControlConfig {
  /** The Temporal CLI's profile, then TEMPORAL_* (certificates already read). */
  temporal: TemporalSettings;
  logLevel: LogLevel;
  metricsAddress?: string;
  payloadKeyFiles?: string[];
  workflowBundle?: string;
  /** Unset: the SDK's default (10 s). */
  stickyQueueTimeoutMs?: number;
}

export function loadControlConfig(env: Env = process.env): ControlConfig {
  const e = parseEnv(controlEnvShape, env);
  return {
    temporal: resolveTemporalSettings(env),
    logLevel: e.VMFERRY_LOG_LEVEL,
    ...(e.VMFERRY_METRICS_ADDRESS ? { metricsAddress: e.VMFERRY_METRICS_ADDRESS } : {}),
    ...(e.VMFERRY_PAYLOAD_KEY_FILE ? { payloadKeyFiles: e.VMFERRY_PAYLOAD_KEY_FILE } : {}),
    ...(e.VMFERRY_WORKFLOW_BUNDLE ? { workflowBundle: e.VMFERRY_WORKFLOW_BUNDLE } : {}),
    ...(e.VMFERRY_STICKY_QUEUE_TIMEOUT_MS !== undefined ? { stickyQueueTimeoutMs: e.VMFERRY_STICKY_QUEUE_TIMEOUT_MS } : {}),
  };
}
