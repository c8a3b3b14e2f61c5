// One idempotent step for a fresh machine: Debian packages for QEMU (>= 10, from backports on
// Debian 12; for the tests also QEMU 7.2 unpacked under the user cache), then the
// Temporal CLI (found or built into the user cache), and for the tests the
// time-skipping test server (resolved by Maven into the same cache) and the Temporal server
// itself (go install, for the mutual-TLS test), and dist/ (npm run build)
// when it is missing or stale. Prints the CLI path last.
import { ensureHostPackages } from '../src/local/qemu-install.js';
import { ensureCompatQemu } from '../src/local/compat-qemu-install.js';
import { ensureTemporalCli, SetupError } from '../src/local/temporal-cli.js';
import { ensureLinuxGuest } from '../src/local/linux-guest.js';
import { ConfigError } from '../src/common/config-schema.js';
import { ensureTestServer } from '../src/local/test-server.js';
import { ensureTemporalServer } from '../src/local/temporal-server.js';
import { BuildError, ensureBuild } from '../src/local/build.js';

const log = (line: string): void => console.error(`[setup] ${line}`);

try {
  const started = Date.now();
  const forTests = process.argv.includes('--for-tests');
  ensureHostPackages(log, forTests);
  // The compatibility lane's and the cross-version test's second QEMU (scripts/test-lanes.ts).
  if (forTests) log(`QEMU 7.2 beside the system's: ${ensureCompatQemu(log).dir}`);
  const cli = await ensureTemporalCli(log);
  log(`Linux guest: ${ensureLinuxGuest(log).dir}`);
  log(`build: ${await ensureBuild(log)}`);
  if (forTests) log(`time-skipping test server: ${await ensureTestServer(log)}`);
  // Only the tests need it (a frontend requiring mutual TLS, which the CLI's dev server cannot serve).
  if (forTests) log(`Temporal server: ${await ensureTemporalServer(log)}`);
  log(`temporal CLI: ${cli}; setup took ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  if (err instanceof SetupError || err instanceof ConfigError || err instanceof BuildError) {
    log(`cannot continue: ${err.message}`);
    process.exit(2);
  }
  throw err;
}
