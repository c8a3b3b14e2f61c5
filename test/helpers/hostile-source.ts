// A fake source host (named so: it is the adversary, not a model of vmferry): a
// real Temporal activity worker in the test process, polling host/<name>, that
// answers the migrate workflow's source-side steps with whatever cookie the
// test sets, so a hostile cookie reaches the real destination's Prepare or
// Finish by the same path a compromised source worker would use.
import { randomUUID } from 'node:crypto';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { hostTaskQueue } from '../../src/common/constants.js';
import type { BeginArgs, BeginResult, ConfirmResult, PerformResult } from '../../src/common/migration-types.js';
import { guestXml } from './guest-xml.js';

export interface HostileScript {
  uuid: string;
  /** Begin's cookie, which Prepare parses. */
  beginCookie: string;
  /** Perform's cookie, which Finish parses. */
  performCookie?: string;
  /** Begin's domain XML (default: the test guest's). */
  xml?: string;
}

export interface HostileSource {
  name: string;
  hostUuid: string;
  /** What the fake says for each domain name. */
  scripts: Map<string, HostileScript>;
  stop(): Promise<void>;
}

let runtimeInstalled = false;

export async function startHostileSource(address: string, name: string): Promise<HostileSource> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  const hostUuid = randomUUID();
  const scripts = new Map<string, HostileScript>();
  const scriptOf = (domain: string): HostileScript => {
    const s = scripts.get(domain);
    if (!s) throw new Error(`fake source has no script for ${domain}`);
    return s;
  };
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    taskQueue: hostTaskQueue(name),
    activities: {
      async migrateBegin(a: BeginArgs): Promise<BeginResult> {
        const s = scriptOf(a.domain);
        return {
          xml: s.xml ?? guestXml({ name: a.domain, uuid: s.uuid }),
          cookie: s.beginCookie,
          uuid: s.uuid,
          wasRunning: true,
          persistent: false,
          hostUuid,
          hostname: name,
          protocolVersions: [3],
          persistentDiffers: false,
          bandwidthMiBps: 0,
        };
      },
      async migratePerform(a: { domain: string }): Promise<PerformResult> {
        return { stats: {}, cookie: scriptOf(a.domain).performCookie };
      },
      async migrateConfirm(): Promise<ConfirmResult> {
        return { sourceUndefined: false, resumed: false };
      },
      async migrateAbortSource(): Promise<ConfirmResult> {
        return { sourceUndefined: false, resumed: false };
      },
      async abortJob(): Promise<void> {},
      async setJobSpeed(): Promise<void> {},
      async setJobMaxDowntime(): Promise<void> {},
    },
  });
  const running = worker.run();
  return {
    name,
    hostUuid,
    scripts,
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
