// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// No command is ever run through a shell: QEMU helpers, compressors and tools are
// spawned with argument vectors. This scans the sources for every way Node (or QEMU's
// exec: migration URI) could hand a string to /bin/sh.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/local/paths.js';

const FORBIDDEN: [RegExp, string][] = [
  [/\bshell\s*:\s*(true|['"`])/, 'spawn option shell'],
  [/\bexecSync\s*\(/, 'child_process.execSync runs a shell'],
  [/(?<![.\w])exec\s*\(/, 'child_process.exec runs a shell'],
  [/['"`]\/bin\/(ba)?sh['"`]/, 'explicit /bin/sh'],
  [/['"`]exec:\S/, "QEMU's exec: URI runs /bin/sh"],
  [/\bspawn\(\s*['"`](sh|bash)['"`]/, 'spawn of a shell'],
  // The synchronous and execFile forms take a program too: a shell there is still a shell.
  [/\b(spawnSync|execFile|execFileSync)\(\s*['"`](\/usr)?(\/bin\/)?(sh|bash|dash|zsh)['"`]/, 'spawnSync/execFile of a shell'],
  [/process\.env\.SHELL\b/, "the user's $SHELL"],
  [/from\s+['"](shelljs|zx|execa)['"]/, 'a package that runs command strings'],
];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return /\.(ts|js|mjs)$/.test(name) ? [p] : [];
  });
}

describe('no shell anywhere', () => {
  const files = ['src', 'scripts', 'bin', 'bench'].flatMap((d) => {
    try {
      return sources(join(PROJECT_ROOT, d));
    } catch {
      return [];
    }
  });

  it('scans a meaningful number of files', () => {
    expect(files.length).toBeGreaterThan(30);
  });

  it('finds no shell invocation in the sources', () => {
    const hits: string[] = [];
    for (const file of files) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          // Comments may explain why we avoid these; code may not use them.
          const code = line.replace(/\/\/.*$/, '');
          for (const [re, why] of FORBIDDEN) if (re.test(code)) hits.push(`${relative(PROJECT_ROOT, file)}:${i + 1}: ${why}: ${line.trim()}`);
        });
    }
    expect(hits).toEqual([]);
  });

  it('the scanner itself catches each pattern', () => {
    const samples = [
      "spawn('x', [], { shell: true })",
      "execSync('ls')",
      "exec('ls', cb)",
      "spawn('/bin/sh', ['-c', 'x'])",
      "'exec:cat > f'",
      "spawn('bash', ['-c'])",
      "spawnSync('sh', ['-c', 'x'])",
      "execFileSync('dash', ['-c', 'x'])",
      "execFile('/usr/bin/zsh', ['-c'], cb)",
      'spawn(process.env.SHELL!, [])',
      "import { $ } from 'zx'",
    ];
    for (const s of samples)
      expect(
        FORBIDDEN.some(([re]) => re.test(s)),
        s,
      ).toBe(true);
  });
});
