// The production form of the code (`npm run build`, and setup when the build is missing or
// stale): TypeScript compiled to dist/, so workers and the CLI run with plain node; the
// workflow bundle prebuilt beside it, so the control worker skips webpack; the CLI bundled
// into one module (dist/cli.mjs), so a command starts quickly; build-info.json,
// which tells a build from a checkout edited since (bin/build-fresh.js).
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { build as esbuild } from 'esbuild';
import { freshBuild } from '../../bin/build-fresh.js';
import { PROJECT_ROOT } from './paths.js';

/** The bundled CLI in the build folder, which bin/vmferry.js runs. */
export const CLI_BUNDLE_NAME = 'cli.mjs';

export class BuildError extends Error {
  override readonly name = 'BuildError';
}

/** Builds into `out` (inside the checkout: the compiled code finds its packages there); returns the seconds it took. */
export async function build(out = join(PROJECT_ROOT, 'dist')): Promise<number> {
  out = resolve(out);
  if (!out.startsWith(`${PROJECT_ROOT}/`)) throw new BuildError(`the build folder must be inside the checkout (${PROJECT_ROOT}): ${out}`);
  // The start, not the end: a source edited while tsc runs makes the build stale.
  const started = Date.now();
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const tsc = spawnSync(process.execPath, [join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', out], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (tsc.status !== 0) throw new BuildError(`tsc failed (exit ${tsc.status ?? tsc.signal})`);
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(out, 'workflows', 'index.js'),
    workflowInterceptorModules: [join(out, 'workflows', 'interceptors.js')],
    logger: new DefaultLogger('WARN'),
  });
  writeFileSync(join(out, 'workflow-bundle.js'), code);
  // The CLI as one file: an operator's command loads one module instead of resolving (and,
  // for the CommonJS packages, lexing) hundreds, which halves its start-up.
  await esbuild({
    entryPoints: [join(out, 'cli', 'main.js')],
    outfile: join(out, CLI_BUNDLE_NAME),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Native addons stay where npm put them.
    external: ['usocket', '@temporalio/core-bridge'],
    // Bundled CommonJS packages call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as vmferryCreateRequire } from 'node:module'; const require = vmferryCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  writeFileSync(join(out, 'build-info.json'), `${JSON.stringify({ sourcesAsOfMs: started })}\n`);
  return (Date.now() - started) / 1000;
}

/** Setup's step: dist/ rebuilt only when it is missing or older than the sources. */
export async function ensureBuild(log: (line: string) => void): Promise<string> {
  const out = join(PROJECT_ROOT, 'dist');
  if (freshBuild(PROJECT_ROOT, out)) return `${out} (up to date)`;
  log('building dist/ (npm run build)');
  return `${out} (built in ${(await build(out)).toFixed(1)} s)`;
}
