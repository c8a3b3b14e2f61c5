// vitest-lane: isolated (no QEMU, host worker or namespace: runs beside the end-to-end files; scripts/test-lanes.ts)
// Replay of recorded migrate histories against today's workflow code: a change
// to what the workflow decides for the same events (the convergence policy's
// evaluator above all) must not break a migration already running. Each file in
// histories/ was recorded from an earlier version (VMFERRY_RECORD_HISTORIES=DIR
// on convergence.test.ts writes them); a change that would replay differently
// goes behind patched() and the old histories stay here.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';

const DIR = join(import.meta.dirname, 'histories');
const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));

describe('workflow logic: recorded histories replay on the current workflow code', () => {
  it('has histories to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(3);
  });

  it.each(files)('%s replays without nondeterminism', async (file) => {
    const history = historyFromJSON(JSON.parse(readFileSync(join(DIR, file), 'utf8')));
    await expect(Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundle') } }, history, `replay-${file}`)).resolves.toBeUndefined();
  });
});
