// `npm test`'s runner: two vitest processes at once. The "isolated" lane holds the files that
// start no QEMU, host worker or network namespace (pure code, and workflow logic on Temporal's
// time-skipping server): they cannot disturb the end-to-end files, which run one at a time in
// the other lane as they always have. A file joins the isolated lane by saying so in its first
// lines: `// vitest-lane: isolated`. Extra arguments go to both vitest runs; each lane writes its
// JSON results, merged into test-artifacts/vitest-results.json for scripts/test-summary.ts.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PROJECT_ROOT } from '../src/local/paths.js';

const MARKER = '// vitest-lane: isolated';
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [relative(PROJECT_ROOT, join(dir, e.name))] : [],
  );
}

const files = testFiles(join(PROJECT_ROOT, 'test')).sort();
const isolated = files.filter((f) => readFileSync(join(PROJECT_ROOT, f), 'utf8').slice(0, 2000).includes(MARKER));
const e2e = files.filter((f) => !isolated.includes(f));
const extra = process.argv.slice(2);
mkdirSync(ARTIFACTS, { recursive: true });
// `npm test -- test/some.test.ts`: a chosen file or filter is one plain vitest run.
if (extra.some((a) => !a.startsWith('-'))) {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...extra], { cwd: PROJECT_ROOT, stdio: 'inherit' });
  process.exit(await new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? 1))));
}

interface Lane {
  name: string;
  files: string[];
  /** Where its output goes: the terminal for the long lane, a log (printed at the end) for the other. */
  log?: string;
}

function run(lane: Lane): Promise<number> {
  const json = join(ARTIFACTS, `vitest-${lane.name}.json`);
  const args = [join(PROJECT_ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', `--outputFile.json=${json}`, ...extra, ...lane.files];
  const child = spawn(process.execPath, args, { cwd: PROJECT_ROOT, stdio: ['ignore', lane.log ? 'pipe' : 'inherit', lane.log ? 'pipe' : 'inherit'] });
  if (lane.log) {
    const out = createWriteStream(lane.log);
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
  }
  return new Promise((resolve) => child.once('close', (code) => resolve(code ?? 1)));
}

const lanes: Lane[] = [
  { name: 'e2e', files: e2e },
  { name: 'isolated', files: isolated, log: join(ARTIFACTS, 'vitest-isolated.log') },
];
console.log(`[test] ${e2e.length} end-to-end files one at a time; beside them ${isolated.length} isolated files (output: test-artifacts/vitest-isolated.log)`);
const codes = await Promise.all(lanes.map((l) => (l.files.length ? run(l) : Promise.resolve(0))));
console.log(`\n[test] isolated lane (exit ${codes[1]}):\n${readFileSync(lanes[1]!.log!, 'utf8')}`);

// One results file, as one vitest run would write it, for the CI summary and scripts/suite-time.ts.
interface Results {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  startTime: number;
  success: boolean;
  testResults: unknown[];
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
  merged.testResults.push(...r.testResults);
}
writeFileSync(join(ARTIFACTS, 'vitest-results.json'), JSON.stringify(merged));
process.exit(codes.some((c) => c !== 0) ? 1 : 0);
