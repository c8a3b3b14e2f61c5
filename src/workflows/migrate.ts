// Live migration as a durable workflow, each step on its host's task queue:
// libvirt's v3 protocol (migrate-v3.ts), or v2 (migrate-v2.ts) when a host
// speaks only that. Both start alike (migrate-begin.ts) and share the state of
// one run (migration-job.ts): its job tracker, its signals and its undo stack.
// There is never a moment with two running copies. The first error is the
// workflow's, with its phase; errors met while undoing are attached to it.
import type { MigrateInput, MigrateResult } from '../common/migration-types.js';
import { begin } from './migrate-begin.js';
import { migrateV2 } from './migrate-v2.js';
import { migrateV3 } from './migrate-v3.js';
import { MigrationJob } from './migration-job.js';

export async function migrate(input: MigrateInput): Promise<MigrateResult> {
  const m = new MigrationJob(input);
  const front = await m.undoable(() => begin(m));
  return front.protocol === 3 ? await migrateV3(m, front) : await migrateV2(m, front);
}
