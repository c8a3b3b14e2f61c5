// README command 1: a whole vmferry on one machine. An embedded Temporal dev server,
// two simulated hosts and the control worker, then the Linux test guest (256 MiB, direct
// kernel boot) booted on host-a through a workflow, saved to a file and restored, and
// migrated to host-b and back, the counter it streams over the network printed between
// the steps (as root; otherwise its disk writer's records, read from its serial log).
// Stays up until Ctrl-C (or --once), then stops what it started.
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainInfo, DomainOperation, DomainOperationResult } from '../src/common/domain-types.js';
import { cancelSignal } from '../src/common/job-messages.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import { startDevServer } from '../src/local/dev-server.js';
import { loadLocalConfig } from '../src/local/local-config.js';
import { findLinuxGuest } from '../src/local/linux-guest.js';
import { findTemporalCli } from '../src/local/temporal-cli.js';
import { startWorkerProcess, type WorkerProcess } from '../src/local/worker-process.js';
import { CounterStream } from './demo-counter.js';
import { runDetached } from './demo-detach.js';
import { recordPids, stopLeftovers, terminateLeftoverWorkflows } from './demo-leftovers.js';
import { COUNTER_PORT, demoGuestXml, lastDiskAck, waitForSerial } from './demo-guest.js';
import { runDemoMigration } from './demo-migration.js';
import { setUpDemoNetwork, type DemoNetwork } from './demo-network.js';
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
const linux = findLinuxGuest();
if (!linux) {
  console.error('[demo] the Linux test guest is not built for these sources; run `npm run setup`');
  process.exit(2);
}

let network: DemoNetwork | undefined;
try {
  network = setUpDemoNetwork(port);
} catch (err) {
  console.error(`[demo] cannot set up the demo bridge: ${(err as Error).message}`);
  process.exit(1);
}
if (network) say(`network: bridge ${network.bridge} with ${network.hostAddr}/${network.prefixLen}; the guest gets ${network.guestAddr}`);
else say('not root: no bridge, so the guest has no NIC; the demo follows its disk writer on the serial log instead of the TCP counter');
const demoDir = join(stateDir, 'demo');
const files = { disk: join(demoDir, `${GUEST}-disk.raw`), serialLog: join(demoDir, `${GUEST}-serial.log`) };
let counter: CounterStream | undefined;
let lastAck = 0;

const pidFile = join(stateDir, 'demo.pids');
await stopLeftovers(pidFile, join(stateDir, 'temporal', 'temporal.sqlite'), `127.0.0.1:${port}`, say);
const server = await startDevServer({ cliPath: cli, stateDir: join(stateDir, 'temporal'), port, uiPort, headless }).catch((err: unknown) => {
  network?.teardown();
  throw err;
});
recordPids(pidFile, [server.pid]);
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
  counter?.close();
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
  rmSync(pidFile, { force: true });
  try {
    network?.teardown();
    if (network) say(`removed bridge ${network.bridge}`);
  } catch (err) {
    say(String(err));
    code ||= 1;
  }
  rmSync(files.disk, { force: true });
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

const hostEnv = (name: string): Record<string, string> => ({
  VMFERRY_HOST_NAME: name,
  VMFERRY_HOST_BASE_DIR: join(stateDir, 'hosts', name),
  TEMPORAL_ADDRESS: server.address,
  // Both simulated hosts open the guest's one disk file: storage they share, so migrating it copies nothing.
  VMFERRY_SHARED_STORAGE_PATHS: demoDir,
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
  await terminateLeftoverWorkflows(client, say);
  workers.push(
    ...(await Promise.all([
      startWorkerProcess('host', hostEnv('host-a'), 'host worker ready', { logFile: join(logDir, 'host-a.log') }),
      startWorkerProcess('host', hostEnv('host-b'), 'host worker ready', { logFile: join(logDir, 'host-b.log') }),
      startWorkerProcess('control', { TEMPORAL_ADDRESS: server.address }, 'control worker ready', { logFile: join(logDir, 'control.log') }),
    ])),
  );
  recordPids(pidFile, [server.pid, ...workers.map((w) => w.pid)]);
  say(`worker logs (pino JSON lines) in ${logDir}`);
  say(`workers up: host-a (pid ${workers[0]!.pid}), host-b (pid ${workers[1]!.pid}), control (pid ${workers[2]!.pid})`);

  // Whatever an earlier run left (a guest running after a crash, an old definition, a
  // definition on host-b after a cut-short migration) goes: the demo starts from a clean slate.
  for (const host of ['host-a', 'host-b']) {
    await op(host, { op: 'destroy', name: GUEST }).catch(() => undefined);
    await op(host, { op: 'undefine', name: GUEST }).catch(() => undefined);
  }
  mkdirSync(demoDir, { recursive: true });
  writeFileSync(files.serialLog, '');
  writeFileSync(files.disk, '');
  truncateSync(files.disk, 16 * 1024 * 1024);
  await op('host-a', { op: 'define', xml: demoGuestXml(GUEST, linux, files, network) });
  say(
    `defined ${GUEST} on host-a: Linux ${linux.kernelRelease}, 256 MiB, direct kernel boot, ${network ? `a virtio NIC on ${network.bridge}, ` : ''}a virtio disk`,
  );
  const bootStarted = Date.now();
  const started = await op('host-a', { op: 'start', name: GUEST });
  if ('domain' in started) say(`started ${GUEST} on host-a: QEMU pid ${(started.domain as { pid?: number }).pid}, state ${started.domain.state}`);
  await waitForSerial(files.serialLog, (t) => /^VMFERRY-GUEST-READY/m.test(t), 'VMFERRY-GUEST-READY', 180_000);
  say(`the guest's workload is up ${((Date.now() - bootStarted) / 1000).toFixed(1)} s after start (serial log ${files.serialLog})`);
  if (network) {
    counter = new CounterStream(network.guestAddr, COUNTER_PORT, say);
    await counter.open();
  }
  const info = await op('host-a', { op: 'info', name: GUEST });
  const dom = (info as { domain: DomainInfo }).domain;
  guestUuid = dom.uuid;
  say(`dominfo: ${JSON.stringify(dom)}`);
  await report('before save');
  await runDemoSaveRestore(client, { host: 'host-a', name: GUEST, uuid: dom.uuid, dir: demoDir, log: say });
  await report('after save/restore');
  await runDemoMigration(client, GUEST, { from: 'host-a', to: 'host-b', log: say, after: (r) => report(`after migration to ${r.destinationHost}`) });
  const vmferry = `npx vmferry --address ${server.address}`;
  say(`try the CLI: ${vmferry} --host host-a list --all`);
  say(`             ${vmferry} --host host-a dominfo ${GUEST}`);
  say(`             ${vmferry} --host host-a migrate ${GUEST} host-b --live --persistent --undefinesource`);
  say(`             ${vmferry} --host host-b domjobinfo ${GUEST} --completed`);
  if (network) say(`the guest's counter: TCP ${network.guestAddr}:${COUNTER_PORT}, a "<seq> <guest ms>" line every 100 ms`);
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

/** One line showing the guest's workload carrying on: the counter over the network, or the disk writer on the serial log. */
async function report(when: string): Promise<void> {
  if (counter) {
    const seq = await counter.current(90_000);
    const conn = counter.connections === 1 ? 'the connection opened at boot' : `connection ${counter.connections}`;
    say(`counter ${seq} via ${counter.address} ${when} (${conn}; longest pause so far ${counter.longestPauseMs.toFixed(0)} ms)`);
    return;
  }
  const text = await waitForSerial(files.serialLog, (t) => lastDiskAck(t) > lastAck, 'new VMFERRY-DISK-ACK', 60_000);
  lastAck = lastDiskAck(text);
  say(`disk record ${lastAck} (serial log, no network counter) ${when}`);
}
