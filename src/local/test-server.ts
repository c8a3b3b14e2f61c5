// The time-skipping server of the workflow-logic tests: Temporal's Java test
// server, resolved by Maven from Maven Central into the user cache. The testing
// SDK's default would download a native build from elsewhere at run time, which
// fails here; it runs an existing executable instead, so a small wrapper script
// starts the JVM (the jar has no Class-Path: its dependencies sit beside it).
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userCacheDir } from './paths.js';
import { SetupError } from './temporal-cli.js';
import { which } from '../support/which.js';

export const TEST_SERVER_VERSION = '1.31.0';
const MAIN_CLASS = 'io.temporal.testserver.TestServer';

function baseDir(): string {
  return join(userCacheDir(), 'temporal-test-server');
}

/** The executable to hand the testing SDK (`existing-path`); it is called with the port as its only argument. */
export function cachedTestServerPath(version = TEST_SERVER_VERSION): string {
  return join(baseDir(), version, 'temporal-test-server');
}

export function findTestServer(version = TEST_SERVER_VERSION): string | undefined {
  const exe = cachedTestServerPath(version);
  return existsSync(exe) && existsSync(join(exe, '..', 'lib', `temporal-test-server-${version}.jar`)) ? exe : undefined;
}

function pom(version: string): string {
  return `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.vmferry</groupId>
  <artifactId>temporal-test-server-deps</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>${version}</version>
    </dependency>
  </dependencies>
</project>
`;
}

/**
 * The SDK passes the port first, as to the native build. No --enable-time-skipping: that
 * flag drops the server's own lock on skipping, and the SDK's client, which unlocks
 * skipping only while it awaits a result, would then release a lock an in-flight task
 * holds. C1 only and a serial GC start the JVM fastest (the SDK gives it 5 s to answer).
 */
function wrapper(libDir: string): string {
  return `#!/bin/sh
# Written by vmferry's setup step.
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss512k -cp '${libDir}/*' ${MAIN_CLASS} "$@"
`;
}

async function run(cmd: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new SetupError(`${cmd} ${args[0]} failed (${signal ?? `exit ${code}`})`))));
  });
}

export async function installTestServer(log: (line: string) => void, version = TEST_SERVER_VERSION): Promise<string> {
  const mvn = which('mvn');
  if (!mvn || !which('java')) throw new SetupError('the workflow-logic tests need Java >= 11 and Maven (Debian: apt-get install default-jre-headless maven)');
  const dir = join(baseDir(), version);
  const staging = join(baseDir(), `${version}.partial`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  writeFileSync(join(staging, 'pom.xml'), pom(version));
  log(`resolving Temporal's test server ${version} and its dependencies with Maven into ${dir}`);
  const started = Date.now();
  await run(mvn, [
    '-B',
    '-q',
    `-Dmaven.repo.local=${join(baseDir(), 'm2')}`,
    '-f',
    join(staging, 'pom.xml'),
    'dependency:copy-dependencies',
    '-DincludeScope=runtime',
    `-DoutputDirectory=${join(staging, 'lib')}`,
  ]);
  writeFileSync(join(staging, 'temporal-test-server'), wrapper(join(dir, 'lib')));
  chmodSync(join(staging, 'temporal-test-server'), 0o755);
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  const exe = findTestServer(version);
  if (!exe) throw new SetupError(`Maven finished but ${dir} holds no temporal-test-server-${version}.jar`);
  log(`test server ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return exe;
}

export async function ensureTestServer(log: (line: string) => void): Promise<string> {
  return findTestServer() ?? (await installTestServer(log));
}
