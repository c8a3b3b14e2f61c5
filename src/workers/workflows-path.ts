import { fileURLToPath } from 'node:url';

/** The workflow entry point, for bundling (the control worker, the tests, the demo). */
export function workflowsPath(): string {
  return fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
}

/** Workflow interceptor modules; a prebuilt bundle must include them too. */
export function workflowInterceptorModules(): string[] {
  return [fileURLToPath(new URL('../workflows/interceptors.ts', import.meta.url))];
}
