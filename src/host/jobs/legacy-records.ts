// Workers before the one job store kept migration records in
// <runDir>/migrations/<encoded name>.json with a `role` instead of a `kind`.
// A worker that starts where an older one ran takes them into the store once,
// so the reaper still undoes a migration the old worker left.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JobDeps } from './deps.js';
import type { MigrationRecord } from './records.js';

export function adoptLegacyRecords(deps: JobDeps): void {
  const dir = join(deps.rt.config.runDir, 'migrations');
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  } catch {
    return;
  }
  for (const f of files) {
    try {
      const { role, ...rest } = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Omit<MigrationRecord, 'kind'> & { role: 'out' | 'in' };
      const rec = { ...rest, kind: role === 'in' ? 'migrate-in' : 'migrate-out' } as MigrationRecord;
      const current = deps.records.find(rec.name, rec.jobId, 'migrate-in', 'migrate-out');
      if (deps.records.names().includes(rec.name) && !current) {
        deps.log.warn({ domain: rec.name, job: rec.jobId }, 'a migration record from an older worker names a domain that has another job; dropped');
      } else {
        deps.records.write(rec);
        deps.log.info({ domain: rec.name, job: rec.jobId }, 'migration record from an older worker taken into the job store');
      }
    } catch (err) {
      deps.log.error({ file: join(dir, f), err }, 'unreadable migration record from an older worker; dropped');
    }
    rmSync(join(dir, f), { force: true });
  }
  rmSync(dir, { recursive: true, force: true });
}
