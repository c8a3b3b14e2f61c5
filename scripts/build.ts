// `npm run build [-- --out DIR]`: see src/local/build.ts.
import { build, BuildError } from '../src/local/build.js';

const at = process.argv.indexOf('--out');
const out = at >= 0 ? process.argv[at + 1] : undefined;
try {
  const seconds = await build(out);
  console.log(`[build] done in ${seconds.toFixed(1)} s`);
} catch (err) {
  if (!(err instanceof BuildError)) throw err;
  console.error(`[build] ${err.message}`);
  process.exit(2);
}
