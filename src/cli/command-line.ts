// Command-line parsing on node:util's parseArgs, with two things it does not do:
// a negative number ("-5") is a value, never a flag (so `migrate-setspeed dom -5`
// reaches the verb's own check and is refused as invalid input, not as an unknown
// option), and every parse error is a UsageError so --json reports it like any
// other invalid input.
import { parseArgs } from 'node:util';
import { UsageError } from './exit-codes.js';
import type { OptionSpec } from './verb.js';

export interface CommandLine {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

const NEGATIVE_NUMBER = /^-(\d|\.\d)/;
// No real argument starts with NUL (the kernel cannot pass one), so this cannot collide.
const HIDDEN = '\u0000';

export function parseCommandLine(args: string[], options: OptionSpec): CommandLine {
  const hidden: string[] = [];
  const end = args.indexOf('--');
  const masked = args.map((a, i) => ((end < 0 || i < end) && NEGATIVE_NUMBER.test(a) ? `${HIDDEN}${hidden.push(a) - 1}` : a));
  let parsed;
  try {
    parsed = parseArgs({ args: masked, options, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs' own hint ("place it after '--'") would name a masked token: show the first line only.
    throw new UsageError(
      String((err as Error).message)
        .split('\n')[0]!
        .replace(/\u0000(\d+)/g, (_, n: string) => hidden[Number(n)] ?? ''),
    );
  }
  const reveal = (v: string): string => (v.startsWith(HIDDEN) ? (hidden[Number(v.slice(1))] ?? v) : v);
  const values: CommandLine['values'] = {};
  for (const [k, v] of Object.entries(parsed.values)) {
    values[k] = typeof v === 'string' ? reveal(v) : Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? reveal(x) : String(x))) : v;
  }
  return { values, positionals: parsed.positionals.map(reveal) };
}
