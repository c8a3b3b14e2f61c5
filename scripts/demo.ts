// README command 1: a whole vmferry on one machine. An embedded Temporal dev server,
// two simulated hosts and the control worker, then a real 256 MiB QEMU guest booted
// on host-a through a workflow, saved to a file and restored, and migrated to host-b
// and back. Stays up until Ctrl-C (or --once), then stops what it started.
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo, DomainOperation, DomainOperationResult } from '../src/common/domain-types.js';
import { cancelSignal } from '../src/common/job-messages.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import { startDevServer } from '../src/local/dev-server.js';
import { loadLocalConfig } from '../src/local/local-config.js';
import { findTemporalCli } from '../src/local/temporal-cli.js';
import { startWorkerProcess, type WorkerProcess } from '../src/local/worker-process.js';
import { runDetached } from './demo-detach.js';
import { runDemoMigration } from './demo-migration.js';
import { runDemoSaveRestore } from './demo-save.js';

const local = loadLocalConfig();
await runDetached(local.demoDetached);

const say = (line: string): void => console.log(`[demo] ${line}`);
const { stateDir, temporalPort: port, uiPort, demoGuest: GUEST } = local;
const headless = process.env.CI === 'true' || process.argv.includes('--headless');

const cli = findTemporalCli(local);
if (!cli) {
  console.error('[demo] no temporal CLI; run `npm run setup`');
  process.exit(2);
}

const server = await startDevServer({ cliPath: cli, stateDir: join(stateDir, 'temporal'), port, uiPort, headless });
say(`Temporal dev server at ${server.address} (SQLite ${server.dbFilename})`);
const workers: WorkerProcess[] = [];
let stopping = false;
/** The guest's UUID once known: its job, if one runs at Ctrl-C, is aborted before the workers stop. */
let guestUuid: string | undefined;

async function abortRunningJob(): Promise<void> {
  if (!guestUuid) return;
  const handle = client.workflow.getHandle(jobWorkflowId(guestUuid));
  const running = await handle.describe().then(
    (d) => d.status.name === 'RUNNING',
    () => false,
  );
  if (!running) return;
  say(`aborting the running job ${handle.workflowId}`);
  await handle.signal(cancelSignal).catch(() => undefined);
  await Promise.race([handle.result().catch(() => undefined), delay(30_000)]);
}

async function shutdown(code: number): Promise<never> {
  if (stopping) {
    say('interrupted again: leaving without cleaning up');
    process.exit(code);
  }
  stopping = true;
  say('stopping: guest, workers, server');
  if (workers.length) {
    await abortRunningJob().catch((err: unknown) => say(`could not abort the running job: ${String(err)}`));
    // Wherever the guest is (a migration may have been cut short), it goes.
    for (const host of ['host-a', 'host-b']) {
      await op(host, { op: 'destroy', name: GUEST }).then(
        () => say(`destroyed ${GUEST} on ${host}`),
        (err: unknown) => {
          const cause = (err as { cause?: { type?: string; message?: string } }).cause;
          // Not defined there, or not running there: nothing to destroy.
          if (cause?.type !== 'DomainNotFound' && cause?.type !== 'OperationInvalid')
            say(`could not destroy ${GUEST} on ${host}: ${cause?.message ?? String(err)}`);
        },
      );
    }
  }
  await Promise.all(workers.map((w) => w.stop()));
  await server.stop();
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

const hostEnv = (name: string): Record<string, string> => ({
  VMFERRY_HOST_NAME: name,
  VMFERRY_HOST_BASE_DIR: join(stateDir, 'hosts', name),
  TEMPORAL_ADDRESS: server.address,
});
const logDir = join(stateDir, 'logs');
mkdirSync(logDir, { recursive: true });
const connection = await Connection.connect({ address: server.address });
const client = new Client({ connection });

async function op(host: string, operation: DomainOperation): Promise<DomainOperationResult> {
  return await client.workflow.execute('domainOperation', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: `demo-${operation.op}-${host}-${randomUUID().slice(0, 8)}`,
    args: [{ host, operation }],
  });
}

try {
  workers.push(
    ...(await Promise.all([
      startWorkerProcess('host', hostEnv('host-a'), 'host worker ready', { logFile: join(logDir, 'host-a.log') }),
      startWorkerProcess('host', hostEnv('host-b'), 'host worker ready', { logFile: join(logDir, 'host-b.log') }),
      startWorkerProcess('control', { TEMPORAL_ADDRESS: server.address }, 'control worker ready', { logFile: join(logDir, 'control.log') }),
    ])),
  );
  say(`worker logs (pino JSON lines) in ${logDir}`);
  say(`workers up: host-a (pid ${workers[0]!.pid}), host-b (pid ${workers[1]!.pid}), control (pid ${workers[2]!.pid})`);

  // A demo stopped mid-migration may have left the definition on host-b: the guest starts on host-a.
  const onB = await op('host-b', { op: 'list' });
  if ('domains' in onB && onB.domains.some((d) => d.name === GUEST)) {
    await op('host-b', { op: 'destroy', name: GUEST }).catch(() => undefined);
    await op('host-b', { op: 'undefine', name: GUEST });
  }
  const list = await op('host-a', { op: 'list' });
  const known = 'domains' in list ? list.domains.find((d) => d.name === GUEST) : undefined;
  if (!known) {
    await op('host-a', { op: 'define', xml: demoGuestXml(GUEST) });
    say(`defined ${GUEST} (256 MiB) on host-a`);
  }
  if (known?.state !== 'running') {
    const started = await op('host-a', { op: 'start', name: GUEST });
    if ('domain' in started) say(`started ${GUEST} on host-a: QEMU pid ${(started.domain as { pid?: number }).pid}, state ${started.domain.state}`);
  }
  const info = await op('host-a', { op: 'info', name: GUEST });
  const dom = (info as { domain: DomainInfo }).domain;
  guestUuid = dom.uuid;
  say(`dominfo: ${JSON.stringify(dom)}`);
  await runDemoSaveRestore(client, { host: 'host-a', name: GUEST, uuid: dom.uuid, dir: join(stateDir, 'demo'), log: say });
  await runDemoMigration(client, GUEST, { from: 'host-a', to: 'host-b', log: say });
  say(`try the CLI: npx vmferry --address ${server.address} --host host-a domjobinfo ${GUEST} --completed`);
  say(server.uiUrl ? `Web UI: ${server.uiUrl}/namespaces/default/workflows` : 'Web UI off (headless)');
  say(`list the workflows: ${cli} workflow list --address ${server.address}`);
  say('running; Ctrl-C stops the guest, the workers and the server');
  if (process.argv.includes('--once')) await shutdown(0);
} catch (err) {
  // A job aborted by Ctrl-C fails here too: the shutdown under way then finishes the job.
  if (!stopping) {
    console.error('[demo] failed:', err);
    await shutdown(1);
  }
}

function demoGuestXml(name: string): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <uuid>${randomUUID()}</uuid>
  <title>vmferry demo guest</title>
  <memory unit='MiB'>256</memory>
  <currentMemory unit='MiB'>256</currentMemory>
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
  </memoryBacking>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
    <memballoon model='virtio'/>
  </devices>
</domain>
`;
}
