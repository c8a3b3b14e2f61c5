// A table of hostile cases: each row says what was sent, which typed error was
// expected, what came back, and whether anything changed; the suite prints it.
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';

export interface Observed {
  /** The ApplicationFailure type, or for the CLI "exit N + Type". */
  type: string;
  message?: string;
}

export interface Row {
  group: string;
  input: string;
  expected: string;
  observed: string;
  unchanged: boolean;
  /** A known defect: the row is reported, the expectation is not enforced. */
  bug?: string;
  pass: boolean;
}

export class CaseTable {
  readonly rows: Row[] = [];

  add(row: Omit<Row, 'pass'>): Row {
    const typed = row.observed.split(':')[0] === row.expected;
    const full = { ...row, pass: typed && row.unchanged };
    this.rows.push(full);
    return full;
  }

  format(): string {
    const cut = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s).padEnd(n);
    const lines = [`${cut('group', 10)} ${cut('input', 58)} ${cut('expected', 28)} ${cut('observed', 70)} unchanged  result`];
    for (const r of this.rows) {
      const result = r.pass ? 'PASS' : r.bug ? `KNOWN BUG: ${r.bug}` : 'FAIL';
      lines.push(`${cut(r.group, 10)} ${cut(r.input, 58)} ${cut(r.expected, 28)} ${cut(r.observed, 70)} ${cut(r.unchanged ? 'yes' : 'NO', 10)} ${result}`);
    }
    const passed = this.rows.filter((r) => r.pass).length;
    const bugs = this.rows.filter((r) => !r.pass && r.bug).length;
    lines.push(`${this.rows.length} cases: ${passed} pass, ${bugs} known bugs, ${this.rows.length - passed - bugs} fail`);
    return lines.join('\n');
  }
}

/** What a workflow run ended with: its typed failure, or that it succeeded (which a hostile case must not). */
export async function outcomeOf(p: Promise<unknown>): Promise<Observed> {
  try {
    await p;
    return { type: 'succeeded' };
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure) {
      return { type: err.cause.type ?? 'untyped ApplicationFailure', message: err.cause.message };
    }
    const e = err as Error;
    return { type: `untyped ${e.constructor.name}`, message: e.message };
  }
}

export function describeObserved(o: Observed): string {
  return o.message ? `${o.type}: ${o.message.replace(/\s+/g, ' ')}` : o.type;
}
