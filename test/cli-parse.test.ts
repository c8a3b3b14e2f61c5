// The vmferry command's own argument errors, as a script sees them: exit code 2
// and, under --json, an {"error":{"type":"OperationInvalid"}} object on stdout,
// whether the mistake is an unknown flag or verb, missing arguments, or a
// negative number (a value, refused by the verb's check, never taken for a flag).
// Every case is refused before any workflow starts, so no worker is needed.
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/local/paths.js';
import { parseCommandLine } from '../src/cli/command-line.js';
import { UsageError } from '../src/cli/exit-codes.js';
import { TestCluster } from './helpers/cluster.js';
import { vmferry } from './helpers/vmferry-cli.js';

const cluster = new TestCluster();
const env = { address: cluster.address, host: 'cl-p' };

afterAll(() => cluster.stop());

describe('command-line parsing', () => {
  it('reads negative numbers as values, as positionals and as option values', () => {
    const spec = { bandwidth: { type: 'string' as const }, json: { type: 'boolean' as const } };
    expect(parseCommandLine(['dom', '-5', '--json'], spec)).toEqual({ values: { json: true }, positionals: ['dom', '-5'] });
    expect(parseCommandLine(['dom', '--bandwidth', '-1.5'], spec)).toEqual({ values: { bandwidth: '-1.5' }, positionals: ['dom'] });
    expect(parseCommandLine(['dom', '--', '-5'], spec).positionals).toEqual(['dom', '-5']);
    expect(() => parseCommandLine(['dom', '-x'], spec)).toThrow(UsageError);
    expect(() => parseCommandLine(['--bogus'], spec)).toThrow(/Unknown option '--bogus'/);
  });

  it('a reader that goes away (`vmferry --help | head -0`) ends the command quietly with its own exit code', async () => {
    const child = spawn(process.execPath, ['bin/vmferry.js', '--help'], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    // The pipe's reading end closed before the CLI writes: its write fails with EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    expect(stderr).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  });

  const cases: [string, string[], RegExp][] = [
    ['unknown flag', ['list', '--bogus'], /Unknown option '--bogus'/],
    ['unknown verb', ['frobnicate', 'dom'], /unknown verb "frobnicate"/],
    ['no verb', [], /no verb given/],
    ['missing arguments', ['save', 'dom'], /usage: vmferry save/],
    ['negative speed as a positional', ['migrate-setspeed', 'dom', '-5'], /speed/i],
    ['negative downtime as a positional', ['migrate-setmaxdowntime', 'dom', '-300'], /downtime/i],
    ['negative bandwidth as an option value', ['dump', 'dom', '/tmp/x.elf', '--memory-only', '--bandwidth', '-1'], /--bandwidth must be a whole number/],
    ['a flag where a value belongs', ['migrate', 'dom', 'cl-b', '--bandwidth', '--live'], /--bandwidth/],
  ];
  for (const [what, args, message] of cases) {
    // Each case is two short CLI processes: run a few at once.
    it.concurrent(`${what}: exit 2, OperationInvalid under --json`, async () => {
      const [json, plain] = await Promise.all([vmferry(env, '--json', ...args), vmferry(env, ...args)]);
      expect(json.code, json.stderr).toBe(2);
      const error = (JSON.parse(json.stdout) as { error: { type: string; message: string } }).error;
      expect(error.type).toBe('OperationInvalid');
      expect(error.message).toMatch(message);
      expect(plain.code).toBe(2);
      expect(plain.stdout).toBe('');
      expect(plain.stderr).toMatch(/^error: OperationInvalid: /);
      expect(plain.stderr).toMatch(message);
    });
  }

  it('--help still prints usage and exits 0', async () => {
    const r = await vmferry(env, 'migrate', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: vmferry migrate DOMAIN DESTHOST/);
  });
});
