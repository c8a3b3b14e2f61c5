// The Go toolchain setup builds Temporal's binaries with (`go install` from the Go module
// proxy: no npm package ships them and prebuilt downloads are unreachable here).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import type { LocalConfig } from './local-config.js';
import { which } from '../support/which.js';

export const MIN_GO = [1, 25] as const;

export class SetupError extends Error {
  override readonly name = 'SetupError';
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

/** VMFERRY_GO names a toolchain explicitly; /usr/local/go is where the official tarball installs. `need` says what else would do. */
export function findGo(local: LocalConfig, what: string, need: string): string {
  const go =
    local.go !== undefined
      ? existsSync(local.go)
        ? local.go
        : undefined
      : (which('go') ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined));
  const install = `Go >= ${MIN_GO.join('.')} (Debian: apt-get install golang-go is too old on bookworm; install Go from the official tarball or a backport)`;
  if (!go) throw new SetupError(`No ${what} found and no Go toolchain to build one. Install ${install}, or ${need}.`);
  const v = goVersion(go);
  if (!v || v[0] < MIN_GO[0] || (v[0] === MIN_GO[0] && v[1] < MIN_GO[1])) {
    throw new SetupError(`Go at ${go} is ${v ? v.join('.') : 'unusable'}; building ${what} needs ${install}, or ${need}.`);
  }
  return go;
}

/** `go install PKG@vVERSION` into binDir, pure Go (no C toolchain needed). */
export async function goInstall(go: string, pkg: string, version: string, binDir: string, ldflags?: string): Promise<void> {
  mkdirSync(binDir, { recursive: true });
  await new Promise<void>((resolve, reject) => {
    const child = spawn(go, ['install', ...(ldflags ? ['-ldflags', ldflags] : []), `${pkg}@v${version}`], {
      env: { ...process.env, CGO_ENABLED: '0', GOBIN: binDir },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new SetupError(`go install ${pkg}@v${version} failed (${signal ?? `exit ${code}`})`)),
    );
  });
}
