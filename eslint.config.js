// Workflow code runs in Temporal's deterministic sandbox: Node built-ins there would
// either fail at bundle time or, worse, smuggle nondeterminism into replays.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.state/**', '.scratch/**', 'test-artifacts/**'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  {
    files: ['src/workflows/**/*.ts', 'src/common/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow and common code must stay free of Node built-ins.' })),
          patterns: [
            { group: ['**/activities/**', '**/workers/**', '**/cli/**'], message: 'Workflows import only @temporalio/workflow and src/common (activity types via import type).', allowTypeImports: true },
          ],
        },
      ],
    },
  },
);
