// Whether dist/ holds a build of the sources as they are now: made after the last edit of
// src/ (build-info.json records when the build read them). Plain JavaScript, so the CLI can
// decide without tsx whether it needs tsx.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function newestMtimeMs(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtimeMs(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** `root`: the checkout; `out`: the build folder (default root/dist). */
export function freshBuild(root, out = join(root, 'dist')) {
  const info = join(out, 'build-info.json');
  if (!existsSync(info)) return false;
  const { sourcesAsOfMs } = JSON.parse(readFileSync(info, 'utf8'));
  // An install that ships only the build has no sources to be newer.
  if (!existsSync(join(root, 'src'))) return true;
  return typeof sourcesAsOfMs === 'number' && newestMtimeMs(join(root, 'src')) <= sourcesAsOfMs;
}
