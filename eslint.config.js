// Two kinds of rule beyond the TypeScript ones:
// - Layers. Each folder of src/ may import only the folders listed for it. Every list
//   names folders strictly below, so no import cycle between folders can form, and a
//   protocol module that reached up into the host model, a registration file or the
//   local dev environment fails `npm run lint`.
// - Workflow code runs in Temporal's deterministic sandbox: Node built-ins there would
//   either fail at bundle time or, worse, smuggle nondeterminism into replays.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';
import { readdirSync } from 'node:fs';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);

/** What each folder of src/ may import (besides itself and packages). */
export const layers = {
  common: [],
  support: ['common'],
  xml: ['common'],
  domain: ['common', 'support', 'xml'],
  security: ['common', 'support'],
  qemu: ['common', 'support', 'domain'],
  saveimage: ['common', 'support', 'qemu', 'security'],
  migration: ['common', 'support', 'xml', 'domain', 'security', 'qemu'],
  // The Temporal connection's settings (TLS, API key, profiles), one reading for workers and CLI.
  connection: ['common'],
  host: ['common', 'support', 'xml', 'domain', 'security', 'qemu', 'saveimage', 'migration', 'connection'],
  activities: ['common', 'support', 'domain', 'security', 'qemu', 'saveimage', 'migration', 'host'],
  codec: ['common'],
  // Workflows see activities as types only (allowTypeImports below).
  workflows: ['common'],
  workers: ['common', 'support', 'host', 'migration', 'activities', 'codec', 'workflows', 'connection'],
  local: ['common', 'support', 'workers'],
  cli: ['common', 'domain', 'codec', 'connection'],
};

const folders = Object.keys(layers);
// A folder with no entry would escape the rules: name it in the table first.
const unlisted = readdirSync(new URL('./src', import.meta.url), { withFileTypes: true }).filter((d) => d.isDirectory() && !folders.includes(d.name));
if (unlisted.length > 0) throw new Error(`eslint.config.js: add src/${unlisted[0].name} to the layers table`);

function layerRule(folder) {
  const forbidden = folders.filter((f) => f !== folder && !layers[folder].includes(f));
  const sandboxed = folder === 'workflows' || folder === 'common';
  return {
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: sandboxed ? nodeBuiltins.map((name) => ({ name, message: 'Workflow and common code must stay free of Node built-ins.' })) : [],
          patterns: forbidden.map((f) => ({
            group: [`**/${f}/**`, `**/${f}`],
            message: `src/${folder} may import only ${layers[folder].map((l) => `src/${l}`).join(', ') || 'packages'} (layers in eslint.config.js).`,
            // Workflows name their activities' types; the code runs in the host worker.
            allowTypeImports: folder === 'workflows' && f === 'activities',
          })),
        },
      ],
    },
  };
}

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
  ...folders.map(layerRule),
);
