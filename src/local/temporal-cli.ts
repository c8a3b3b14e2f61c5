// Finds the `temporal` CLI or builds it. No npm package ships a Temporal server and
// prebuilt downloads are unreachable here, so the fallback is `go install` from the
// Go module proxy, pinned to the newest tag that `go install` accepts (see
// shared/notes/temporal.md).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TEMPORAL_CLI_VERSION } from '../common/constants.js';
import { loadLocalConfig, type LocalConfig } from './local-config.js';
import { userCacheDir } from './paths.js';
import { which } from '../support/which.js';
import { findGo, goInstall, SetupError } from './go-toolchain.js';

export { SetupError } from './go-toolchain.js';

const MODULE = 'github.com/temporalio/cli/cmd/temporal';

export function cachedCliPath(version = TEMPORAL_CLI_VERSION): string {
  return join(userCacheDir(), 'temporal-cli', version, 'bin', 'temporal');
}

function cliVersion(path: string): string | undefined {
  try {
    const out = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    return /version\s+(\d+\.\d+\.\d+)/.exec(out)?.[1];
  } catch {
    return undefined;
  }
}

/** The configured CLI (VMFERRY_TEMPORAL_CLI) wins, then PATH (only at the pinned version or newer), then the cache. */
export function findTemporalCli(local: LocalConfig = loadLocalConfig()): string | undefined {
  const fromEnv = local.temporalCli;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new SetupError(`VMFERRY_TEMPORAL_CLI=${fromEnv} does not exist`);
    return fromEnv;
  }
  const onPath = which('temporal');
  if (onPath && isAtLeast(cliVersion(onPath), TEMPORAL_CLI_VERSION)) return onPath;
  const cached = cachedCliPath();
  if (existsSync(cached) && cliVersion(cached)) return cached;
  return undefined;
}

function isAtLeast(version: string | undefined, min: string): boolean {
  if (!version) return false;
  const a = version.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

export async function buildTemporalCli(log: (line: string) => void, local: LocalConfig = loadLocalConfig()): Promise<string> {
  const go = findGo(local, `temporal CLI v${TEMPORAL_CLI_VERSION}`, `set VMFERRY_TEMPORAL_CLI to a temporal CLI >= ${TEMPORAL_CLI_VERSION}`);
  const target = cachedCliPath();
  const binDir = join(target, '..');
  log(`building temporal CLI v${TEMPORAL_CLI_VERSION} with ${go} into ${binDir} (several minutes on a fresh machine)`);
  const started = Date.now();
  await goInstall(go, MODULE, TEMPORAL_CLI_VERSION, binDir, `-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`);
  if (!cliVersion(target)) throw new SetupError(`go install finished but ${target} does not run`);
  log(`temporal CLI built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return target;
}

export async function ensureTemporalCli(log: (line: string) => void, local: LocalConfig = loadLocalConfig()): Promise<string> {
  return findTemporalCli(local) ?? (await buildTemporalCli(log, local));
}
