// One idempotent step for a fresh machine: Debian packages for QEMU, then the
// Temporal CLI (found or built into the user cache). Prints the CLI path last.
import { ensureHostPackages } from '../src/local/qemu-install.js';
import { ensureTemporalCli, SetupError } from '../src/local/temporal-cli.js';
import { ConfigError } from '../src/common/config-schema.js';

const log = (line: string): void => console.error(`[setup] ${line}`);

try {
  const started = Date.now();
  ensureHostPackages(log, process.argv.includes('--for-tests'));
  const cli = await ensureTemporalCli(log);
  log(`temporal CLI: ${cli}; setup took ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  if (err instanceof SetupError || err instanceof ConfigError) {
    log(`cannot continue: ${err.message}`);
    process.exit(2);
  }
  throw err;
}
