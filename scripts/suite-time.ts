// Where a test run's time goes, from vitest's JSON results (what `npm test` writes to
// test-artifacts/vitest-results.json): the run's wall time, each file's time, and the share of
// the files that boot the Linux test guest (they import test/helpers/linux-guest.ts, the demo
// test runs it through the demo) — issue 13's "the suite's added time".
// Usage: node --import tsx scripts/suite-time.ts [results.json]
import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { PROJECT_ROOT } from '../src/local/paths.js';

interface FileResult {
  name: string;
  startTime: number;
  endTime: number;
  status: string;
}
const file = process.argv[2] ?? 'test-artifacts/vitest-results.json';
const results = JSON.parse(readFileSync(file, 'utf8')) as { startTime: number; testResults: FileResult[] };
const files = results.testResults.map((t) => ({ name: relative(PROJECT_ROOT, t.name), ms: t.endTime - t.startTime, status: t.status, end: t.endTime }));
const bootsLinux = (name: string): boolean => {
  const path = `${PROJECT_ROOT}/${name}`;
  if (!existsSync(path)) return false;
  const src = readFileSync(path, 'utf8');
  return src.includes('helpers/linux-guest') || name.endsWith('demo.test.ts');
};
const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const wall = Math.max(...files.map((f) => f.end)) - results.startTime;
const linux = files.filter((f) => bootsLinux(f.name));
const sum = (xs: { ms: number }[]): number => xs.reduce((a, f) => a + f.ms, 0);
for (const f of [...files].sort((a, b) => b.ms - a.ms)) console.log(`${s(f.ms).padStart(9)}  ${bootsLinux(f.name) ? 'L' : ' '} ${f.name} (${f.status})`);
console.log(`run wall time ${s(wall)}; ${files.length} files, ${s(sum(files))} of file time (files run in parallel)`);
console.log(
  `files that boot the Linux guest (L): ${linux.length}, ${s(sum(linux))} of file time, ` +
    `${((100 * sum(linux)) / Math.max(1, sum(files))).toFixed(0)}% of the total; at the run's parallelism (${(sum(files) / wall).toFixed(2)}) about ${s((sum(linux) * wall) / Math.max(1, sum(files)))} of wall time`,
);
