// Host worker: one per hypervisor, on task queue host/<name>. QEMU processes
// outlive it; on start it reattaches to them, on stop it leaves them running.
import { NativeConnection, Worker } from '@temporalio/worker';
import { hostTaskQueue } from '../common/constants.js';
import { connectTemporal } from '../connection/temporal-connect.js';
import { createDomainActivities } from '../activities/domain-activities.js';
import { createJobControlActivities } from '../activities/job-control.js';
import { createMigrationActivities } from '../activities/migration-activities.js';
import { startAutoDestroyReaper } from '../host/auto-destroy.js';
import { reportingAfterEach, startInventoryPublisher } from '../host/inventory-publisher.js';
import { createDumpActivities } from '../activities/dump-activities.js';
import { createSaveActivities } from '../activities/save-activities.js';
import { loadHostConfig } from '../host/host-config.js';
import { HostRuntime } from '../host/host-runtime.js';
import { createJobDeps } from '../host/jobs/deps.js';
import { recoverJobs } from '../host/jobs/recovery.js';
import { createLogger, installTemporalLogging } from './logging.js';
import { startTunnelServer } from '../host/migration/host-tunnel.js';
import { auditInterceptor, createAuditLogger } from './audit.js';
import { dataConverterFor } from '../codec/key-file.js';
import { armFaults } from '../support/fault-points.js';

async function main(): Promise<void> {
  // Everything this worker and its QEMUs create (sockets, images, logs) is private to the service user.
  process.umask(0o077);
  const config = loadHostConfig();
  armFaults(config.faults);
  const log = createLogger({ host: config.name, role: 'host-worker' }, config.worker.logLevel);
  installTemporalLogging(log, config.worker.metricsAddress);
  // First, so a server that refuses this worker (no client certificate, wrong CA) stops it before it touches a guest.
  const connection = await connectTemporal(config.temporal, (o) => NativeConnection.connect(o)).catch((err: unknown) => {
    log.fatal({ err: (err as Error).message }, 'cannot connect to Temporal');
    throw err;
  });
  const rt = new HostRuntime(config, log);
  const auditPath = config.worker.auditLog;
  const audit = createAuditLogger(auditPath);
  await rt.reconnectAll();
  // Once per worker (and per QEMU upgrade): what this host's QEMU offers, for hostInfo and the CPU checks.
  await rt.probeQemu().then(
    (p) => log.info({ qemu: p.binary, version: p.version, accels: Object.keys(p.accels), durationMs: p.durationMs }, 'QEMU probed'),
    (err: unknown) => log.error({ err }, 'probing QEMU failed; CPU checks will probe again when needed'),
  );
  const jobs = createJobDeps(rt);
  // Jobs a killed worker left are recovered now; the save family's activities wait for it before new work.
  const recovered = recoverJobs(jobs).catch((err: unknown) => jobs.log.error({ err }, 'recovering jobs left by a previous worker failed'));
  // Tunnelled migration's listener, when certificates are configured (before the worker takes tasks).
  const tunnel = await startTunnelServer(rt);
  const reaper = startAutoDestroyReaper(jobs, connection, { intervalMs: config.worker.autoDestroyIntervalMs });
  const inventory = startInventoryPublisher(rt, connection, { intervalMs: config.worker.inventoryIntervalMs });
  const dataConverter = dataConverterFor(config.worker.payloadKeyFiles);
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    dataConverter,
    taskQueue: hostTaskQueue(config.name),
    activities: {
      ...reportingAfterEach(
        {
          ...createDomainActivities(rt),
          ...createJobControlActivities(rt),
          ...createDumpActivities(jobs),
          ...createSaveActivities(jobs, recovered),
        },
        inventory,
        rt,
        { wait: true },
      ),
      ...reportingAfterEach(createMigrationActivities(rt, jobs.ports), inventory, rt, { wait: false }),
    },
    // Long activities (saves, migrations) get time to reach a safe point on shutdown.
    shutdownGraceTime: '10 seconds',
    // Cancellation reaches an activity with a heartbeat response: keep that under a second or two.
    maxHeartbeatThrottleInterval: '1 second',
    defaultHeartbeatThrottleInterval: '1 second',
    identity: `host-worker/${config.name}@${process.pid}`,
    interceptors: { activity: [auditInterceptor(audit, config.name)] },
  });
  // The first report before the worker takes tasks: readers know the host as soon as it is up.
  await inventory.publish().catch((err: unknown) => log.warn({ err: String(err) }, 'first inventory report failed; the poll will send it'));
  const stop = (): void => worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  log.info(
    {
      taskQueue: hostTaskQueue(config.name),
      stateDir: config.stateDir,
      runDir: config.runDir,
      auditLog: auditPath,
      temporal: { address: config.temporal.address, namespace: config.temporal.namespace, ...config.temporal.summary },
      domains: rt.list().length,
      payloadEncryption: dataConverter !== undefined,
    },
    'host worker ready',
  );
  try {
    await worker.run();
  } finally {
    reaper.stop();
    inventory.stop();
    await tunnel?.close();
    await rt.detachAll();
    await connection.close();
    log.info('host worker stopped; QEMU processes left running');
  }
}

await main();
