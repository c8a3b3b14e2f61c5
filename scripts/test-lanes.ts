// `npm test`'s runner: two vitest processes at once. The "isolated" lane holds the files that
// start no QEMU, host worker or network namespace (pure code, and workflow logic on Temporal's
// time-skipping server): they cannot disturb the end-to-end files, which run one at a time in
// the other lane as they always have. A file joins the isolated lane by saying so in its first
// lines: `// vitest-lane: isolated`. When the isolated lane is done, the same slot runs the
// "compat" lane: the save, restore and migration core (COMPAT_CORE) a second time with every
// host worker on QEMU 7.2 (src/local/compat-qemu.ts: the run's environment names its binary,
// module and firmware directories, which each test cluster's workers inherit), and the files
// marked `// vitest-lane: compat` (they run only there: the cross-version test sets each of its
// hosts' QEMU itself). Each lane is its own vitest process with its own Temporal dev server.
// Extra arguments go to every vitest run (`--lane=compat` runs that lane alone); each lane
// writes its JSON results, merged into test-artifacts/vitest-results.json for
// scripts/test-summary.ts, the compat lane's files named `<file> [qemu-7.2]`.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { COMPAT_QEMU_SERIES, compatQemu, compatQemuHostEnv, compatQemuPresent } from '../src/local/compat-qemu.js';

const MARKER = '// vitest-lane: isolated';
const COMPAT_MARKER = '// vitest-lane: compat';
/** Run twice: on the system's QEMU in the e2e lane, on QEMU 7.2 in the compat lane. */
const COMPAT_CORE = ['test/migrate.test.ts', 'test/restore-crash.test.ts', 'test/save-restore.test.ts'];
const COMPAT_LABEL = ` [qemu-${COMPAT_QEMU_SERIES}]`;
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [relative(PROJECT_ROOT, join(dir, e.name))] : [],
  );
}

const files = testFiles(join(PROJECT_ROOT, 'test')).sort();
const head = (f: string): string => readFileSync(join(PROJECT_ROOT, f), 'utf8').slice(0, 2000);
const isolated = files.filter((f) => head(f).includes(MARKER));
const compatOnly = files.filter((f) => head(f).includes(COMPAT_MARKER));
const e2e = files.filter((f) => !isolated.includes(f) && !compatOnly.includes(f));
const compat = [...COMPAT_CORE.filter((f) => files.includes(f)), ...compatOnly];
const laneArg = process.argv.find((a) => a.startsWith('--lane='))?.slice('--lane='.length);
const extra = process.argv.slice(2).filter((a) => !a.startsWith('--lane='));
mkdirSync(ARTIFACTS, { recursive: true });
// `npm test -- test/some.test.ts`: a chosen file or filter is one plain vitest run.
if (extra.some((a) => !a.startsWith('-'))) {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...extra], { cwd: PROJECT_ROOT, stdio: 'inherit' });
  process.exit(await new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? 1))));
}

interface Lane {
  name: string;
  files: string[];
  /** Where its output goes: the terminal for the long lane, a log (printed at the end) for the others. */
  log?: string;
  /** On top of this process's environment (host workers inherit it). */
  env?: Record<string, string>;
  /** Appended to its files' names in the merged results. */
  label?: string;
}

function run(lane: Lane): Promise<number> {
  const json = join(ARTIFACTS, `vitest-${lane.name}.json`);
  // A previous run's results must not stand in for a lane that writes none.
  rmSync(json, { force: true });
  const args = [join(PROJECT_ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', `--outputFile.json=${json}`, ...extra, ...lane.files];
  const child = spawn(process.execPath, args, {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...lane.env },
    stdio: ['ignore', lane.log ? 'pipe' : 'inherit', lane.log ? 'pipe' : 'inherit'],
  });
  if (lane.log) {
    const out = createWriteStream(lane.log);
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
  }
  return new Promise((resolve) => child.once('close', (code) => resolve(code ?? 1)));
}

const compatLane: Lane = { name: 'compat', files: compat, log: join(ARTIFACTS, 'vitest-compat.log'), env: compatQemuHostEnv(), label: COMPAT_LABEL };
const all: Lane[] = [{ name: 'e2e', files: e2e }, { name: 'isolated', files: isolated, log: join(ARTIFACTS, 'vitest-isolated.log') }, compatLane];
const lanes = laneArg === undefined ? all : all.filter((l) => l.name === laneArg);
if (lanes.length === 0) {
  console.log(`[test] no lane ${JSON.stringify(laneArg)} (lanes: ${all.map((l) => l.name).join(', ')})`);
  process.exit(2);
}
const codes = new Map<string, number>();
async function runLane(lane: Lane): Promise<void> {
  if (lane.name === 'compat' && !compatQemuPresent()) {
    writeFileSync(lane.log!, `no QEMU ${COMPAT_QEMU_SERIES} under ${compatQemu().dir}: run \`npm run setup -- --for-tests\`\n`);
    codes.set(lane.name, 1);
    return;
  }
  codes.set(lane.name, lane.files.length ? await run(lane) : 0);
}
const has = (name: string): Lane | undefined => lanes.find((l) => l.name === name);
console.log(
  `[test] ${e2e.length} end-to-end files one at a time; beside them ${isolated.length} isolated files, then ${compat.length} files on QEMU ${COMPAT_QEMU_SERIES} ` +
    '(output: test-artifacts/vitest-isolated.log, vitest-compat.log)',
);
// The compat lane waits for the isolated one: at most two vitest processes at a time on this machine.
await Promise.all([
  has('e2e') ? runLane(has('e2e')!) : undefined,
  (async () => {
    if (has('isolated')) await runLane(has('isolated')!);
    if (has('compat')) await runLane(has('compat')!);
  })(),
]);
for (const lane of lanes.filter((l) => l.log)) console.log(`\n[test] ${lane.name} lane (exit ${codes.get(lane.name)}):\n${readFileSync(lane.log!, 'utf8')}`);

// One results file, as one vitest run would write it, for the CI summary and scripts/suite-time.ts.
interface Results {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  startTime: number;
  success: boolean;
  testResults: { name: string; assertionResults?: { fullName?: string }[] }[];
}
const merged: Results = {
  numTotalTests: 0,
  numPassedTests: 0,
  numFailedTests: 0,
  numPendingTests: 0,
  numTodoTests: 0,
  startTime: Date.now(),
  success: true,
  testResults: [],
};
for (const lane of lanes) {
  if (!lane.files.length) continue;
  let r: Results;
  try {
    r = JSON.parse(readFileSync(join(ARTIFACTS, `vitest-${lane.name}.json`), 'utf8')) as Results;
  } catch {
    console.log(`[test] the ${lane.name} lane wrote no results`);
    merged.success = false;
    merged.numFailedTests++;
    continue;
  }
  for (const k of ['numTotalTests', 'numPassedTests', 'numFailedTests', 'numPendingTests', 'numTodoTests'] as const) merged[k] += r[k];
  merged.startTime = Math.min(merged.startTime, r.startTime);
  merged.success &&= r.success;
  for (const t of r.testResults) {
    if (lane.label) {
      t.name += lane.label;
      for (const a of t.assertionResults ?? []) if (a.fullName !== undefined) a.fullName += lane.label;
    }
    merged.testResults.push(t);
  }
}
writeFileSync(join(ARTIFACTS, 'vitest-results.json'), JSON.stringify(merged));
process.exit([...codes.values()].some((c) => c !== 0) ? 1 : 0);
