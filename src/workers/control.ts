// Control worker: runs the workflows on task queue vmferry-control. It holds no
// host state; everything it learns comes back from host activities.
import { NativeConnection, Worker } from '@temporalio/worker';
import { CONTROL_TASK_QUEUE, DEFAULT_NAMESPACE, DEFAULT_TEMPORAL_ADDRESS } from '../common/constants.js';
import { dataConverterFromEnv } from '../codec/key-file.js';
import { createLogger, installTemporalLogging } from './logging.js';
import { workflowInterceptorModules, workflowsPath } from './workflows-path.js';

async function main(): Promise<void> {
  const log = createLogger({ role: 'control-worker' });
  installTemporalLogging(log);
  const address = process.env.TEMPORAL_ADDRESS ?? DEFAULT_TEMPORAL_ADDRESS;
  const namespace = process.env.TEMPORAL_NAMESPACE ?? DEFAULT_NAMESPACE;
  const dataConverter = dataConverterFromEnv();
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    namespace,
    dataConverter,
    taskQueue: CONTROL_TASK_QUEUE,
    // A prebuilt bundle (tests, deployments) skips webpack at start-up.
    ...(process.env.VMFERRY_WORKFLOW_BUNDLE
      ? { workflowBundle: { codePath: process.env.VMFERRY_WORKFLOW_BUNDLE } }
      : { workflowsPath: workflowsPath(), interceptors: { workflowModules: workflowInterceptorModules() } }),
    identity: `control-worker@${process.pid}`,
    // After a control worker dies, its workflows' next tasks wait this long on its sticky queue before
    // any other worker gets them (SDK default 10 s); a supervisor that restarts it fast may want less.
    ...(process.env.VMFERRY_STICKY_QUEUE_TIMEOUT_MS ? { stickyQueueScheduleToStartTimeout: Number(process.env.VMFERRY_STICKY_QUEUE_TIMEOUT_MS) } : {}),
  });
  const stop = (): void => worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  log.info({ taskQueue: CONTROL_TASK_QUEUE, address, namespace, payloadEncryption: dataConverter !== undefined }, 'control worker ready');
  try {
    await worker.run();
  } finally {
    await connection.close();
  }
}

await main();
