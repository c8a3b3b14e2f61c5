#!/usr/bin/env node
// The CLI runs the build (`npm run build`, dist/) when there is one of the current sources,
// and otherwise the sources through tsx: a checkout never runs stale code, and a built
// install answers without compiling TypeScript first.
import { fileURLToPath } from 'node:url';
import { freshBuild } from './build-fresh.js';

if (freshBuild(fileURLToPath(new URL('..', import.meta.url)))) {
  await import('../dist/cli.mjs');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
