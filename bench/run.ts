// `npm run bench`: every benchmark, one after another (each starts its own dev server
// and workers, measures raw QEMU and vmferry interleaved, prints ratios of medians).
// `npm run bench -- save-restore` runs one; extra arguments pass through.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCHES = ['save-restore', 'save-parallel', 'migrate', 'migrate-parallel', 'migrate-tunnel', 'cli', 'linux-guest', 'storage-migrate', 'convergence'];
/** Short names: `npm run bench -- tunnel`. */
const ALIASES: Record<string, string> = { parallel: 'migrate-parallel', tunnel: 'migrate-tunnel', linux: 'linux-guest', storage: 'storage-migrate' };
const [given, ...rest] = process.argv.slice(2);
const only = given !== undefined ? (ALIASES[given] ?? given) : undefined;
const selected = only && !only.startsWith('-') ? [only] : BENCHES;
const passThrough = only && !only.startsWith('-') ? rest : process.argv.slice(2);
let failed = false;
for (const name of selected) {
  if (!BENCHES.includes(name)) {
    console.error(`unknown benchmark ${name}; have ${BENCHES.join(', ')}`);
    process.exit(2);
  }
  console.log(`\n=== bench ${name} ===`);
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...passThrough], { stdio: 'inherit' });
  failed ||= r.status !== 0;
}
process.exit(failed ? 1 : 0);
