// QEMU's migration engine, driven from one place: start an outgoing stream
// (migration or save), start an incoming one (migration or restore), cancel,
// switch to post-copy, and ask where it stands. Together with
// migration-params.ts (capabilities and parameters) this is the only code that
// sends QEMU's migration commands; test/migration-engine-boundary.test.ts keeps
// it that way. Callers choose deadlines and whether an error matters, so each
// command goes out exactly as asked and its error comes back unchanged.
import { parseMigrationInfo, type MigrationInfo } from './migration-info.js';
import type { QmpClient, QmpExecuteOptions } from './qmp-client.js';

type Deadline = Pick<QmpExecuteOptions, 'timeoutMs'>;

/** Outgoing: `uri` is tcp:, unix: or fd:NAME (a descriptor handed over with getfd on the same monitor). */
export async function startMigration(qmp: QmpClient, uri: string): Promise<void> {
  await qmp.execute('migrate', { uri });
}

/** Incoming, on a QEMU launched with `-incoming defer`. */
export async function startIncomingMigration(qmp: QmpClient, uri: string): Promise<void> {
  await qmp.execute('migrate-incoming', { uri });
}

/** Asks QEMU to stop the outgoing stream; it reaches `cancelled` (or another end state) later, announced by a MIGRATION event. */
export async function cancelMigration(qmp: QmpClient, deadline?: Deadline): Promise<void> {
  await qmp.execute('migrate_cancel', undefined, deadline);
}

/** From here on the guest runs on the destination and the source can no longer resume it. */
export async function startPostcopy(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-start-postcopy');
}

/**
 * Post-copy only: cuts the stream's connection so this side enters postcopy-paused
 * at once (a link that silently drops packets would otherwise hold it in
 * postcopy-active for as long as TCP retransmits). Works on either side.
 */
export async function pausePostcopy(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-pause');
}

/** Destination of a paused post-copy stream: listen on `uri` for the source's resumed stream (issued again, it listens anew). */
export async function listenForRecovery(qmp: QmpClient, uri: string): Promise<void> {
  await qmp.execute('migrate-recover', { uri });
}

/** Source of a paused post-copy stream: dial the destination's recovery listener and go on where the stream broke. */
export async function resumeMigration(qmp: QmpClient, uri: string): Promise<void> {
  await qmp.execute('migrate', { uri, resume: true });
}

export async function queryMigration(qmp: QmpClient, deadline?: Deadline): Promise<MigrationInfo> {
  return parseMigrationInfo(await qmp.execute('query-migrate', undefined, deadline));
}
