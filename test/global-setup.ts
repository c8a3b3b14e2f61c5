// One Temporal dev server for the whole run (fresh SQLite file in a temp dir), and
// the workflow bundle built once so each control worker starts in a second.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { startDevServer, type DevServer } from '../src/local/dev-server.js';
import { freePort } from '../src/local/free-port.js';
import { findTemporalCli } from '../src/local/temporal-cli.js';
import { workflowInterceptorModules, workflowsPath } from '../src/workers/workflows-path.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundle: string;
    temporalUiUrl: string;
  }
}

let server: DevServer | undefined;
let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  const cli = findTemporalCli();
  if (!cli) throw new Error('no temporal CLI: run `npm run setup` first (npm test does)');
  dir = mkdtempSync(join(tmpdir(), 'vmferry-temporal-'));
  // The Web UI is on so the UI test can drive it; it costs the run little.
  server = await startDevServer({ cliPath: cli, stateDir: dir, port: await freePort(), uiPort: await freePort() });
  const { code } = await bundleWorkflowCode({
    workflowsPath: workflowsPath(),
    workflowInterceptorModules: workflowInterceptorModules(),
    logger: new DefaultLogger('WARN'),
  });
  const bundlePath = join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, code);
  project.provide('temporalAddress', server.address);
  project.provide('workflowBundle', bundlePath);
  project.provide('temporalUiUrl', server.uiUrl!);
}

export async function teardown(): Promise<void> {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
