// The fault matrix's report: one row per cell (fault, point, expected,
// observed, pass), printed as a fixed-width table and kept as a test artifact.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface MatrixRow {
  fault: string;
  point: string;
  expected: string;
  observed: string;
  /** 'PASS', 'FAIL', or 'n/a' (the fault cannot exist at that point; the outcome was still checked). */
  result: 'PASS' | 'FAIL' | 'n/a';
  note?: string;
  seconds: number;
}

export class MatrixTable {
  readonly rows: MatrixRow[] = [];

  add(row: MatrixRow): void {
    this.rows.push(row);
  }

  format(): string {
    const cut = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s).padEnd(n);
    const lines = [`${cut('fault', 30)} ${cut('point', 14)} ${cut('expected', 40)} ${cut('observed', 64)} ${cut('s', 5)} result`];
    for (const r of this.rows) {
      lines.push(`${cut(r.fault, 30)} ${cut(r.point, 14)} ${cut(r.expected, 40)} ${cut(r.observed, 64)} ${cut(r.seconds.toFixed(1), 5)} ${r.result}`);
    }
    const notes = this.rows.filter((r) => r.note);
    if (notes.length > 0) {
      lines.push('', 'notes:');
      for (const r of notes) lines.push(`  ${r.fault} @ ${r.point}: ${r.note}`);
    }
    const count = (k: MatrixRow['result']): number => this.rows.filter((r) => r.result === k).length;
    lines.push('', `${this.rows.length} cells: ${count('PASS')} pass, ${count('n/a')} n/a (outcome checked), ${count('FAIL')} fail`);
    return lines.join('\n');
  }

  write(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${this.format()}\n`);
  }
}
