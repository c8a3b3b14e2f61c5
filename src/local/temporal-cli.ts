// Finds the `temporal` CLI or builds it. No npm package ships a Temporal server and
// prebuilt downloads are unreachable here, so the fallback is `go install` from the
// Go module proxy, pinned to the newest tag that `go install` accepts (see
// shared/notes/temporal.md).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TEMPORAL_CLI_VERSION } from '../common/constants.js';
import { loadLocalConfig, type LocalConfig } from './local-config.js';
import { userCacheDir } from './paths.js';
import { which } from '../support/which.js';

const MODULE = 'github.com/temporalio/cli/cmd/temporal';
const MIN_GO = [1, 25] as const;

export class SetupError extends Error {
  override readonly name = 'SetupError';
}

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

function goVersion(go: string): [number, number] | undefined {
  try {
    const out = execFileSync(go, ['env', 'GOVERSION'], { encoding: 'utf8', timeout: 30_000 }).trim();
    const m = /^go(\d+)\.(\d+)/.exec(out);
    return m ? [Number(m[1]), Number(m[2])] : undefined;
  } catch {
    return undefined;
  }
}

export async function buildTemporalCli(log: (line: string) => void, local: LocalConfig = loadLocalConfig()): Promise<string> {
  // VMFERRY_GO names a toolchain explicitly; /usr/local/go is where the official tarball installs.
  const go =
    local.go !== undefined
      ? existsSync(local.go)
        ? local.go
        : undefined
      : (which('go') ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined));
  const need = `Go >= ${MIN_GO.join('.')} (Debian: apt-get install golang-go is too old on bookworm; install Go from the official tarball or a backport), or set VMFERRY_TEMPORAL_CLI to a temporal CLI >= ${TEMPORAL_CLI_VERSION}`;
  if (!go) throw new SetupError(`No temporal CLI found and no Go toolchain to build one. Install ${need}.`);
  const v = goVersion(go);
  if (!v || v[0] < MIN_GO[0] || (v[0] === MIN_GO[0] && v[1] < MIN_GO[1])) {
    throw new SetupError(`Go at ${go} is ${v ? v.join('.') : 'unusable'}; building temporal CLI v${TEMPORAL_CLI_VERSION} needs ${need}.`);
  }
  const target = cachedCliPath();
  const binDir = join(target, '..');
  mkdirSync(binDir, { recursive: true });
  log(`building temporal CLI v${TEMPORAL_CLI_VERSION} with ${go} into ${binDir} (several minutes on a fresh machine)`);
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      go,
      ['install', '-ldflags', `-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`, `${MODULE}@v${TEMPORAL_CLI_VERSION}`],
      { env: { ...process.env, CGO_ENABLED: '0', GOBIN: binDir }, stdio: ['ignore', 'inherit', 'inherit'] },
    );
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new SetupError(`go install of the temporal CLI failed (${signal ?? `exit ${code}`})`)),
    );
  });
  if (!cliVersion(target)) throw new SetupError(`go install finished but ${target} does not run`);
  log(`temporal CLI built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return target;
}

export async function ensureTemporalCli(log: (line: string) => void, local: LocalConfig = loadLocalConfig()): Promise<string> {
  return findTemporalCli(local) ?? (await buildTemporalCli(log, local));
}
