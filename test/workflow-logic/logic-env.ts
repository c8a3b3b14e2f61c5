// One time-skipping Temporal test server (Temporal's Java test server, which the
// setup step installs) per test file, the real workflow bundle on the control
// task queue, and stub activities on each host's task queue. Timers, timeouts
// and retries pass in skipped time, so a test takes about as long as its
// workflow needs to run its steps.
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { CONTROL_TASK_QUEUE, hostTaskQueue } from '../../src/common/constants.js';
import type { MigrateInput, MigrateResult } from '../../src/common/migration-types.js';
import { ALL_SEARCH_ATTRIBUTES } from '../../src/common/search-attributes.js';
import { findTestServer } from '../../src/local/test-server.js';
import { StubHosts } from './stub-hosts.js';

/** What the workflow sees as the keyword type of a search attribute (temporal.api.enums.v1.IndexedValueType). */
const INDEXED_VALUE_TYPE_KEYWORD = 2;

export interface LogicEnv {
  env: TestWorkflowEnvironment;
  stubs: StubHosts;
  /** Starts a migration on the control task queue. */
  start(input: Partial<MigrateInput>): Promise<WorkflowHandle<(i: MigrateInput) => Promise<MigrateResult>>>;
  stop(): Promise<void>;
}

let runtimeInstalled = false;

export async function startLogicEnv(hosts: string[] = ['src', 'dst']): Promise<LogicEnv> {
  if (!runtimeInstalled) {
    // Workflow warnings (a workflow ID that is not the domain's, ...) are expected here.
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    runtimeInstalled = true;
  }
  const exe = findTestServer();
  if (!exe) throw new Error('no time-skipping test server: run `npm run setup -- --for-tests` (npm test does)');
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: exe } } });
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(ALL_SEARCH_ATTRIBUTES.map((k) => [k.name, INDEXED_VALUE_TYPE_KEYWORD])),
  });
  const stubs = new StubHosts();
  const workers = await Promise.all([
    Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: CONTROL_TASK_QUEUE,
      workflowBundle: { codePath: inject('workflowBundle') },
    }),
    ...hosts.map((h) =>
      Worker.create({
        connection: env.nativeConnection,
        namespace: env.namespace ?? 'default',
        taskQueue: hostTaskQueue(h),
        activities: stubs.activitiesFor(h),
        // As the real host worker (src/workers/host.ts). The SDK's default sends a heartbeat every
        // 0.8 x the timeout (4 s of the steps' 5 s): on a loaded machine a late one timed the step out,
        // and the time-skipping server's lock count did not survive that timeout (the test hung).
        maxHeartbeatThrottleInterval: '1 second',
        defaultHeartbeatThrottleInterval: '1 second',
      }),
    ),
  ]);
  const running = workers.map((w) => w.run());
  return {
    env,
    stubs,
    async start(input) {
      return await env.client.workflow.start('migrate', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: `logic-${randomUUID()}`,
        args: [{ domain: 'vm1', sourceHost: 'src', destinationHost: 'dst', flags: ['live'], ...input }],
      });
    },
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.allSettled(running);
      await env.teardown();
    },
  };
}
