// Prints vitest's JSON results as the plain closing line CI recognises.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'test-artifacts/vitest-results.json';
let results: { numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number };
try {
  results = JSON.parse(readFileSync(file, 'utf8')) as typeof results;
} catch (err) {
  console.log(`no test results at ${file}: ${(err as Error).message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const skipped = results.numPendingTests + results.numTodoTests;
console.log(`${results.numPassedTests} passed, ${results.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(results.numFailedTests > 0 || results.numPassedTests === 0 ? 1 : 0);
