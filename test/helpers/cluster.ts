// A local cluster for one test file: host workers with their own short temp dirs
// (QMP socket paths must fit in 108 bytes) and one control worker, all on the run's
// shared dev server. Everything it made is removed by stop().
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { inject } from 'vitest';
import { CONTROL_TASK_QUEUE } from '../../src/common/constants.js';
import type { DomainOperation, DomainOperationResult } from '../../src/common/domain-types.js';
import { startWorkerProcess, type WorkerProcess } from '../../src/local/worker-process.js';
import { isOurProcess } from '../../src/support/proc.js';
import { listStatusNames, readStatus } from '../../src/host/status-file.js';

function killLeftoverQemus(runDir: string): void {
  let names: string[];
  try {
    names = listStatusNames(runDir);
  } catch {
    return;
  }
  for (const name of names) {
    try {
      const st = readStatus(runDir, name);
      if (isOurProcess(st.pid, st.qmpSocket)) process.kill(st.pid, 'SIGKILL');
    } catch {
      // unreadable or already gone
    }
  }
}

export interface HostHandle {
  name: string;
  env: Record<string, string>;
  baseDir: string;
  memoryDir: string;
  worker?: WorkerProcess;
}

export class TestCluster {
  readonly address = inject('temporalAddress');
  // Searchable by others (not listable): a DAC-confined QEMU runs as its own uid and must reach its run directory below.
  readonly root = ((dir: string) => (chmodSync(dir, 0o711), dir))(mkdtempSync(join(tmpdir(), 'vmf-')));
  readonly hosts = new Map<string, HostHandle>();
  control?: WorkerProcess;
  connection?: Connection;
  client!: Client;
  private seq = 0;

  /** `dataConverter`: e.g. the payload codec, when the workers were started with a payload key. */
  async connect(dataConverter?: DataConverter): Promise<Client> {
    this.connection = await Connection.connect({ address: this.address });
    this.client = new Client({ connection: this.connection, dataConverter });
    return this.client;
  }

  hostHandle(name: string, extraEnv: Record<string, string> = {}): HostHandle {
    let h = this.hosts.get(name);
    if (!h) {
      const baseDir = join(this.root, name);
      // Unique per cluster so parallel test files never share guest RAM files.
      const memoryDir = join('/dev/shm', `vmf-${process.pid}-${this.root.slice(-6)}-${name}`);
      h = {
        name,
        baseDir,
        memoryDir,
        env: { VMFERRY_HOST_NAME: name, VMFERRY_HOST_BASE_DIR: baseDir, VMFERRY_HOST_MEMORY_DIR: memoryDir, TEMPORAL_ADDRESS: this.address, ...extraEnv },
      };
      this.hosts.set(name, h);
    }
    return h;
  }

  /** `commandPrefix` runs the worker inside something, e.g. a network namespace (netns.ts prefix()). */
  async startHost(name: string, extraEnv: Record<string, string> = {}, opts: { commandPrefix?: string[]; build?: string } = {}): Promise<HostHandle> {
    const h = this.hostHandle(name, extraEnv);
    h.worker = await startWorkerProcess('host', h.env, 'host worker ready', opts);
    return h;
  }

  /** `build`: run the compiled worker of that build, with the workflow bundle the build made. */
  async startControl(extraEnv: Record<string, string> = {}, opts: { build?: string } = {}): Promise<WorkerProcess> {
    this.control = await startWorkerProcess(
      'control',
      { TEMPORAL_ADDRESS: this.address, ...(opts.build ? {} : { VMFERRY_WORKFLOW_BUNDLE: inject('workflowBundle') }), ...extraEnv },
      'control worker ready',
      opts,
    );
    return this.control;
  }

  /** Runs one domain operation through the control workflow and returns its result. */
  async op(host: string, operation: DomainOperation): Promise<DomainOperationResult> {
    return await this.client.workflow.execute('domainOperation', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: `test-op-${host}-${operation.op}-${process.pid}-${Date.now()}-${this.seq++}`,
      args: [{ host, operation }],
      workflowExecutionTimeout: '3 minutes',
    });
  }

  /** Teardown: destroys and undefines whatever each host still lists (errors ignored: best effort). */
  async removeAllDomains(hosts: string[]): Promise<void> {
    for (const host of hosts) {
      const list = await this.op(host, { op: 'list' }).catch(() => undefined);
      for (const d of list && 'domains' in list ? list.domains : []) {
        if (d.state !== 'shutoff') await this.op(host, { op: 'destroy', name: d.name }).catch(() => undefined);
        if (d.persistent) await this.op(host, { op: 'undefine', name: d.name }).catch(() => undefined);
      }
    }
  }

  /**
   * Stops the workers it started. Tests destroy their domains first; whatever a failed
   * test left behind is killed here, by the PIDs in this cluster's own status files.
   */
  async stop(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.worker?.stop()));
    await this.control?.stop();
    for (const h of this.hosts.values()) killLeftoverQemus(join(h.baseDir, 'run'));
    await this.connection?.close();
    for (const h of this.hosts.values()) rmSync(h.memoryDir, { recursive: true, force: true });
    rmSync(this.root, { recursive: true, force: true });
  }
}
