// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// QEMU's migration machinery (storage copy included) is driven from one module, src/qemu/migration-*.ts
// (design.md: "the migration engine, the only code that sets migration
// capabilities/parameters, starts, cancels, queries"). This guard reads every
// source file's string literals and fails when a migration command is named
// anywhere else, so a new caller goes through the engine instead of growing a
// second copy of its rules (timeouts, capabilities written in full, one
// MigrationInfo type). No QEMU needed.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/local/paths.js';

const ENGINE_FILES = new Set([
  'src/qemu/migration-engine.ts',
  'src/qemu/migration-engine-storage.ts',
  'src/qemu/migration-engine-mapped-ram.ts',
  'src/qemu/migration-params.ts',
  'src/qemu/migration-info.ts',
  'src/qemu/migration-engine-multifd.ts',
]);

/**
 * Files that name migration commands as facts about a QEMU (which ones its schema has, which ones a
 * job needs), never as something to send: no such name is the first argument of a call there.
 */
const NAMES_ONLY = new Set(['src/qemu/capabilities-probe.ts', 'src/common/qemu-capabilities.ts', 'src/common/migration-needs.ts']);

/** QMP's migration commands, including the ones vmferry does not send yet. */
const COMMANDS = new Set([
  'migrate-set-capabilities',
  'migrate-set-parameters',
  'query-migrate',
  'query-migrate-parameters',
  'query-migrate-capabilities',
  'migrate-incoming',
  'migrate_cancel',
  'migrate-start-postcopy',
  'migrate-pause',
  'migrate-recover',
  'migrate-continue',
  'migrate_set_speed',
  'migrate_set_downtime',
  // Storage migration (libvirt's NBD path): the destination's NBD server and exports, the source's mirrors.
  'nbd-server-start',
  'nbd-server-stop',
  'nbd-server-add',
  'nbd-server-remove',
  'block-export-add',
  'block-export-del',
  'query-block-exports',
  'blockdev-mirror',
  'drive-mirror',
  'query-block-jobs',
  'block-job-cancel',
  'block-job-complete',
  'block-job-set-speed',
  'job-dismiss',
]);

/** Also a workflow type and a job kind, so it counts only where QMP takes a command name. */
const AMBIGUOUS = 'migrate';

/** The same commands spelled for the human monitor (`migrate_cancel`, `info migrate_parameters`). */
const HMP = /^\s*(migrate\w*|info\s+migrate\w*)(\s|$)/;

const methodName = (call: ts.CallExpression): string | undefined => {
  const callee = call.expression;
  if (ts.isPropertyAccessExpression(callee)) return callee.name.text;
  if (ts.isIdentifier(callee)) return callee.text;
  return undefined;
};

/** Why this literal names a migration command, or undefined. */
function violation(node: ts.StringLiteral | ts.NoSubstitutionTemplateLiteral | ts.TemplateHead): string | undefined {
  const text = node.text;
  // A template's head stands for the whole template expression as an argument.
  const arg: ts.Node = ts.isTemplateHead(node) ? node.parent : node;
  const parent = arg.parent;
  const firstArgOf = ts.isCallExpression(parent) && parent.arguments[0] === arg ? methodName(parent) : undefined;
  if (firstArgOf === 'hmp' && HMP.test(text)) return `HMP ${text.trim().split(/\s+/)[0]}`;
  if (ts.isTemplateHead(node)) return undefined;
  // An object's key is a name in this code (virsh's verb migrate-recover), never a command sent to QEMU.
  if (ts.isPropertyAssignment(parent) && parent.name === node) return undefined;
  if (COMMANDS.has(text)) return text;
  if (text !== AMBIGUOUS) return undefined;
  if (firstArgOf === 'execute') return text;
  if (
    ts.isPropertyAssignment(parent) &&
    parent.initializer === node &&
    (ts.isIdentifier(parent.name) || ts.isStringLiteral(parent.name)) &&
    parent.name.text === 'execute'
  )
    return text;
  return undefined;
}

/** Every migration command named as a string in `source`, as "line: command". */
function migrationCommandsIn(fileName: string, source: string): string[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true);
  const hits: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node)) {
      const why = violation(node);
      if (why) hits.push(`${sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1}: ${why}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return hits;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return name.endsWith('.ts') ? [p] : [];
  });
}

describe('migration engine boundary', () => {
  const files = sources(join(PROJECT_ROOT, 'src')).map((p) => relative(PROJECT_ROOT, p));

  it('scans every source file, the engine among them', () => {
    expect(files.length).toBeGreaterThan(100);
    for (const f of ENGINE_FILES) expect(files).toContain(f);
  });

  it('names no QEMU migration command outside src/qemu/migration-*.ts', () => {
    const hits = files
      .filter((f) => !ENGINE_FILES.has(f) && !NAMES_ONLY.has(f))
      .flatMap((f) => migrationCommandsIn(f, readFileSync(join(PROJECT_ROOT, f), 'utf8')).map((h) => `${f}:${h}`));
    expect(hits).toEqual([]);
  });

  it('the files that only name commands (probe, needs) send none of them', () => {
    for (const f of NAMES_ONLY) {
      expect(files).toContain(f);
      const sf = ts.createSourceFile(f, readFileSync(join(PROJECT_ROOT, f), 'utf8'), ts.ScriptTarget.Latest, true);
      const sent: string[] = [];
      const named: string[] = [];
      const visit = (node: ts.Node): void => {
        if (ts.isStringLiteral(node) && COMMANDS.has(node.text)) {
          named.push(node.text);
          const call = node.parent;
          if (ts.isCallExpression(call) && call.arguments[0] === node && methodName(call) === 'execute') sent.push(node.text);
        }
        ts.forEachChild(node, visit);
      };
      visit(sf);
      expect(sent, f).toEqual([]);
      expect(named.length, f).toBeGreaterThan(0);
    }
  });

  it('the engine itself sends what it owns (the scanner still recognises it)', () => {
    const engine = [...ENGINE_FILES].flatMap((f) => migrationCommandsIn(f, readFileSync(join(PROJECT_ROOT, f), 'utf8')).map((h) => h.split(': ')[1]));
    for (const c of [
      'migrate',
      'migrate-incoming',
      'migrate_cancel',
      'migrate-start-postcopy',
      'migrate-pause',
      'migrate-recover',
      'query-migrate-capabilities',
      'query-migrate',
      'migrate-set-capabilities',
      'migrate-set-parameters',
      'query-migrate-parameters',
      'migrate-continue',
      'nbd-server-start',
      'nbd-server-stop',
      'block-export-add',
      'blockdev-mirror',
      'query-block-jobs',
      'block-job-cancel',
      'block-job-set-speed',
    ])
      expect(engine).toContain(c);
  });

  it('catches each way of naming a command, and not the job kind or prose', () => {
    const caught = [
      "await qmp.execute('migrate_cancel')",
      'await dom.qmp.execute<Info>(`query-migrate`, undefined, { timeoutMs: 5 })',
      'const cmd = "migrate-set-parameters"',
      "qmp.execute('migrate', { uri })",
      "send({ execute: 'migrate', arguments: {} })",
      "send({ 'execute': 'migrate' })",
      "qmp.hmp('migrate_set_parameter max-bandwidth 1')",
      'qmp.hmp(`info migrate_parameters ${x}`)',
      "const cmds = ['migrate-start-postcopy']",
      "const verbs = { 'migrate-recover': 'migrate-recover' }",
    ];
    for (const code of caught) expect(migrationCommandsIn('sample.ts', code), code).toHaveLength(1);
    const allowed = [
      "startJob(client, 'migrate', uuid)",
      "const kind = 'migrate'",
      '// query-migrate every 500 ms',
      'throw new Error(`did not stop after migrate_cancel (status ${s})`)',
      "cli['migrate-setspeed']",
      "const verbs = { 'migrate-recover': recoverVerb }",
      "qmp.execute('query-status')",
    ];
    for (const code of allowed) expect(migrationCommandsIn('sample.ts', code), code).toEqual([]);
  });
});
