// The local dev environment's settings (setup, demo, the test run's dev server),
// read here only: where the demo keeps its state, which Temporal CLI and Go to use,
// the demo's ports and guest.
import { join } from 'node:path';
import { envNumber, optionalText, parseEnv, rawText, text, type Env } from '../common/config-schema.js';
import { PROJECT_ROOT } from './paths.js';

const port = envNumber({ integer: true, min: 1, max: 65535 });

export const localEnvShape = {
  VMFERRY_STATE_DIR: text(),
  VMFERRY_TEMPORAL_CLI: optionalText(),
  // Set (even empty) it is the only toolchain tried.
  VMFERRY_GO: rawText(),
  VMFERRY_TEMPORAL_PORT: port,
  VMFERRY_UI_PORT: port,
  VMFERRY_DEMO_GUEST: text(),
  // Set by the demo for its own detached copy (scripts/demo-detach.ts).
  VMFERRY_DEMO_DETACHED: rawText(),
};

export interface LocalConfig {
  /** The demo's Temporal database and host directories; never inside a host's real /var. */
  stateDir: string;
  temporalCli?: string;
  go?: string;
  temporalPort: number;
  uiPort: number;
  demoGuest: string;
  demoDetached: boolean;
}

export function loadLocalConfig(env: Env = process.env): LocalConfig {
  const e = parseEnv(localEnvShape, env);
  const temporalPort = e.VMFERRY_TEMPORAL_PORT ?? 7233;
  return {
    stateDir: e.VMFERRY_STATE_DIR ?? join(PROJECT_ROOT, '.state'),
    ...(e.VMFERRY_TEMPORAL_CLI ? { temporalCli: e.VMFERRY_TEMPORAL_CLI } : {}),
    ...(e.VMFERRY_GO !== undefined ? { go: e.VMFERRY_GO } : {}),
    temporalPort,
    uiPort: e.VMFERRY_UI_PORT ?? temporalPort + 1000,
    demoGuest: e.VMFERRY_DEMO_GUEST ?? 'demo1',
    demoDetached: e.VMFERRY_DEMO_DETACHED === '1',
  };
}
