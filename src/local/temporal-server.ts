// Finds or builds the Temporal server itself (not the CLI's dev server), for what the dev
// server cannot do: a frontend that requires mutual TLS (test/mtls.test.ts). Built with
// `go install` like the CLI, at the server version the pinned CLI bundles, so on a machine
// that built the CLI most packages come from Go's build cache; cached outside the clone.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadLocalConfig, type LocalConfig } from './local-config.js';
import { userCacheDir } from './paths.js';
import { findGo, goInstall, SetupError } from './go-toolchain.js';

/** The server temporal CLI v1.5.1 bundles (its go.mod), so the module and build caches are shared. */
export const TEMPORAL_SERVER_VERSION = '1.29.1';
const PACKAGE = 'go.temporal.io/server/cmd/server';

export function cachedServerPath(version = TEMPORAL_SERVER_VERSION): string {
  return join(userCacheDir(), 'temporal-server', version, 'bin', 'server');
}

function serverVersion(path: string): string | undefined {
  try {
    return /version\s+(\d+\.\d+\.\d+)/.exec(execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 30_000 }))?.[1];
  } catch {
    return undefined;
  }
}

export function findTemporalServer(): string | undefined {
  const cached = cachedServerPath();
  return existsSync(cached) && serverVersion(cached) === TEMPORAL_SERVER_VERSION ? cached : undefined;
}

export async function ensureTemporalServer(log: (line: string) => void, local: LocalConfig = loadLocalConfig()): Promise<string> {
  const found = findTemporalServer();
  if (found) return found;
  const go = findGo(
    local,
    `Temporal server v${TEMPORAL_SERVER_VERSION}`,
    `build it elsewhere (go install ${PACKAGE}@v${TEMPORAL_SERVER_VERSION}) and copy it to ${cachedServerPath()}`,
  );
  const target = cachedServerPath();
  log(`building the Temporal server v${TEMPORAL_SERVER_VERSION} with ${go} into ${join(target, '..')} (minutes; the mutual-TLS test needs it)`);
  const started = Date.now();
  await goInstall(go, PACKAGE, TEMPORAL_SERVER_VERSION, join(target, '..'));
  if (serverVersion(target) !== TEMPORAL_SERVER_VERSION) throw new SetupError(`go install finished but ${target} does not run`);
  log(`Temporal server built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return target;
}
