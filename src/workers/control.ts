// Control worker: runs the workflows on task queue vmferry-control. It holds no
// host state; everything it learns comes back from host activities.
import { NativeConnection, Worker } from '@temporalio/worker';
import { CONTROL_TASK_QUEUE } from '../common/constants.js';
import { connectTemporal } from '../connection/temporal-connect.js';
import { dataConverterFor } from '../codec/key-file.js';
import { loadControlConfig } from './control-config.js';
import { createLogger, installTemporalLogging } from './logging.js';
import { prebuiltWorkflowBundle, workflowInterceptorModules, workflowsPath } from './workflows-path.js';

async function main(): Promise<void> {
  const config = loadControlConfig();
  const log = createLogger({ role: 'control-worker' }, config.logLevel);
  installTemporalLogging(log, config.metricsAddress);
  const { address, namespace, summary } = config.temporal;
  const dataConverter = dataConverterFor(config.payloadKeyFiles);
  const workflowBundle = config.workflowBundle ?? prebuiltWorkflowBundle();
  const connection = await connectTemporal(config.temporal, (o) => NativeConnection.connect(o)).catch((err: unknown) => {
    log.fatal({ err: (err as Error).message }, 'cannot connect to Temporal');
    throw err;
  });
  const worker = await Worker.create({
    connection,
    namespace,
    dataConverter,
    taskQueue: CONTROL_TASK_QUEUE,
    // A prebuilt bundle (tests, `npm run build`) skips webpack at start-up.
    ...(workflowBundle
      ? { workflowBundle: { codePath: workflowBundle } }
      : { workflowsPath: workflowsPath(), interceptors: { workflowModules: workflowInterceptorModules() } }),
    identity: `control-worker@${process.pid}`,
    // After a control worker dies, its workflows' next tasks wait this long on its sticky queue before
    // any other worker gets them (SDK default 10 s); a supervisor that restarts it fast may want less.
    ...(config.stickyQueueTimeoutMs !== undefined ? { stickyQueueScheduleToStartTimeout: config.stickyQueueTimeoutMs } : {}),
  });
  const stop = (): void => worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  log.info(
    { taskQueue: CONTROL_TASK_QUEUE, address, namespace, temporal: summary, payloadEncryption: dataConverter !== undefined, workflowBundle },
    'control worker ready',
  );
  try {
    await worker.run();
  } finally {
    await connection.close();
  }
}

await main();
