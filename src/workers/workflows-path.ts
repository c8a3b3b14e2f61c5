import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** .ts when this runs from the sources under tsx, .js when it runs from `npm run build`'s output. */
const EXT = import.meta.url.endsWith('.ts') ? 'ts' : 'js';

/** The workflow entry point, for bundling (the control worker, the tests, the demo, the build). */
export function workflowsPath(): string {
  return fileURLToPath(new URL(`../workflows/index.${EXT}`, import.meta.url));
}

/** Workflow interceptor modules; a prebuilt bundle must include them too. */
export function workflowInterceptorModules(): string[] {
  return [fileURLToPath(new URL(`../workflows/interceptors.${EXT}`, import.meta.url))];
}

/** Where `npm run build` puts the workflow bundle, beside the compiled code. */
export const PREBUILT_BUNDLE_NAME = 'workflow-bundle.js';

/** The build's workflow bundle when this runs compiled and the build made one; from the sources, none (webpack at start-up). */
export function prebuiltWorkflowBundle(): string | undefined {
  if (EXT !== 'js') return undefined;
  const path = fileURLToPath(new URL(`../${PREBUILT_BUNDLE_NAME}`, import.meta.url));
  return existsSync(path) ? path : undefined;
}
