// What every benchmark shares: its arguments and medians, a private dev server
// and directories, the workflow bundle, the workers, raw QEMUs spawned from the
// same command line vmferry builds (so raw and vmferry run identical guests),
// and a history timeline for BENCH_PROFILE=1. Each bench measures raw QEMU and
// vmferry interleaved in one run and quotes the ratio of medians.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { parseDomainXml } from '../src/domain/index.js';
import { isProcessAlive, terminate } from '../src/support/proc.js';
import { buildQemuArgs } from '../src/qemu/command-line.js';
import { launchQemu } from '../src/qemu/launch.js';
import type { QmpClient } from '../src/qemu/qmp-client.js';
import { CONTROL_TASK_QUEUE } from '../src/common/constants.js';
import type { DomainOperationResult } from '../src/common/domain-types.js';
import { jobWorkflowId } from '../src/common/job-types.js';
import type { MigrateInput, MigrateResult } from '../src/common/migration-types.js';
import { startDevServer } from '../src/local/dev-server.js';
import { freePort } from '../src/local/free-port.js';
import { findTemporalCli } from '../src/local/temporal-cli.js';
import { startWorkerProcess, type WorkerProcess } from '../src/local/worker-process.js';
import { workflowsPath } from '../src/workers/workflows-path.js';
import { guestXml } from '../test/helpers/guest-xml.js';

/** `--name N` from the command line, or the default. */
export function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(process.argv[i + 1]);
}

export const say = (s: string): void => console.log(`[bench] ${s}`);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface RawQemu {
  pid: number;
  qmp: QmpClient;
  /** Its RAM file, removed with it; empty for anonymous RAM. */
  ram: string;
}

export class BenchEnv {
  readonly workers: WorkerProcess[] = [];
  private readonly raws = new Set<RawQemu>();
  private rawSeq = 0;
  client!: Client;
  bundlePath = '';

  private constructor(
    readonly root: string,
    readonly shm: string,
    readonly server: Awaited<ReturnType<typeof startDevServer>>,
  ) {}

  /** Temp and /dev/shm directories named after `prefix`, a dev server, the bundle, a client. */
  static async create(prefix: string): Promise<BenchEnv> {
    const root = mkdtempSync(join(tmpdir(), `${prefix}-`));
    const shm = join('/dev/shm', `${prefix}-${process.pid}`);
    mkdirSync(shm, { recursive: true });
    const cli = findTemporalCli();
    if (!cli) throw new Error('no temporal CLI: run npm run setup');
    const env = new BenchEnv(root, shm, await startDevServer({ cliPath: cli, stateDir: join(root, 'temporal'), port: await freePort(), headless: true }));
    const { code } = await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: new DefaultLogger('WARN') });
    env.bundlePath = join(root, 'bundle.js');
    writeFileSync(env.bundlePath, code);
    env.client = new Client({ connection: await Connection.connect({ address: env.server.address }) });
    return env;
  }

  hostEnv(name: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      VMFERRY_HOST_NAME: name,
      VMFERRY_HOST_BASE_DIR: join(this.root, name),
      VMFERRY_HOST_MEMORY_DIR: join(this.shm, name),
      TEMPORAL_ADDRESS: this.server.address,
      VMFERRY_LOG_LEVEL: 'warn',
      ...extra,
    };
  }

  async startHost(name: string, extra: Record<string, string> = {}): Promise<WorkerProcess> {
    const w = await startWorkerProcess('host', this.hostEnv(name, extra), 'host worker ready');
    this.workers.push(w);
    return w;
  }

  async startControl(): Promise<WorkerProcess> {
    const w = await startWorkerProcess('control', { TEMPORAL_ADDRESS: this.server.address, VMFERRY_WORKFLOW_BUNDLE: this.bundlePath }, 'control worker ready');
    this.workers.push(w);
    return w;
  }

  async op(host: string, operation: Record<string, unknown>): Promise<DomainOperationResult> {
    return await this.client.workflow.execute('domainOperation', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: `bench-op-${randomUUID()}`,
      args: [{ host, operation }],
    });
  }

  /**
   * A QEMU for `memoryMiB` of file-backed RAM, started from vmferry's own command line, no orchestration.
   * `uuid`: the guest's (multifd channels carry it, and a destination refuses another one's).
   */
  async rawSpawn(memoryMiB: number, incoming: boolean, uuid?: string): Promise<RawQemu> {
    const n = this.rawSeq++;
    const ram = join(this.shm, `raw-${n}.ram`);
    const qmpSocket = join(this.root, `raw-${n}.qmp`);
    const def = parseDomainXml(guestXml({ name: 'rawguest', memoryMiB, ...(uuid !== undefined ? { uuid } : {}) }));
    const args = buildQemuArgs(def, { qmpSocket, memoryBackingFile: ram, extra: incoming ? ['-incoming', 'defer'] : [] });
    const { pid, qmp } = await launchQemu({ binary: 'qemu-system-x86_64', args, qmpSocket, logFile: join(this.root, `raw-${n}.log`) });
    const q = { pid, qmp, ram };
    this.raws.add(q);
    return q;
  }

  /**
   * A QEMU from a command line the caller built (e.g. from a domain definition), stopped with the others by stop().
   * `prefix` runs it under a program that execs it (`ip netns exec NAME`), so the PID stays QEMU's.
   */
  async rawLaunch(args: string[], qmpSocket: string, prefix: string[] = []): Promise<RawQemu> {
    const n = this.rawSeq++;
    const [binary, ...rest] = [...prefix, 'qemu-system-x86_64', ...args] as [string, ...string[]];
    const { pid, qmp } = await launchQemu({ binary, args: rest, qmpSocket, logFile: join(this.root, `raw-${n}.log`) });
    const q = { pid, qmp, ram: '' };
    this.raws.add(q);
    return q;
  }

  async rawKill(q: RawQemu): Promise<void> {
    await terminate(q.pid);
    await q.qmp.close();
    if (q.ram) rmSync(q.ram, { force: true });
    this.raws.delete(q);
  }

  /** Stops what it started (raw QEMUs, workers, dev server) and removes its directories. */
  async stop(): Promise<void> {
    for (const q of [...this.raws]) await this.rawKill(q).catch(() => (isProcessAlive(q.pid) ? process.kill(q.pid, 'SIGKILL') : undefined));
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.client?.connection.close();
    await this.server.stop();
    rmSync(this.root, { recursive: true, force: true });
    rmSync(this.shm, { recursive: true, force: true });
  }
}

const ACTIVITY_EVENTS: Record<number, string> = {
  10: 'scheduled',
  11: 'started',
  12: 'completed',
  13: 'failed',
  14: 'timed out',
  15: 'cancel requested',
  16: 'cancelled',
};

/** BENCH_PROFILE=1: when each activity was scheduled, started and closed, ms from the workflow's first event. */
/** Starts a migration as clients must (the domain's job ID, a second job refused). */
export async function startMigration(client: Client, uuid: string, input: MigrateInput): Promise<WorkflowHandle<(i: MigrateInput) => Promise<MigrateResult>>> {
  return await client.workflow.start<(i: MigrateInput) => Promise<MigrateResult>>('migrate', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: jobWorkflowId(uuid),
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [input],
  });
}

export async function printTimeline(handle: WorkflowHandle): Promise<void> {
  if (!process.env.BENCH_PROFILE) return;
  const history = (await handle.fetchHistory()).events ?? [];
  type HistoryEvent = (typeof history)[number];
  const at = (e: HistoryEvent): number => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
  const t0 = at(history[0]!);
  const names = new Map<string, string>();
  for (const e of history) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) names.set(String(e.eventId), scheduled.activityType?.name ?? '?');
    const ref =
      e.activityTaskStartedEventAttributes?.scheduledEventId ??
      e.activityTaskCompletedEventAttributes?.scheduledEventId ??
      e.activityTaskFailedEventAttributes?.scheduledEventId ??
      e.activityTaskCanceledEventAttributes?.scheduledEventId;
    const signal = e.workflowExecutionSignaledEventAttributes?.signalName;
    if (signal) console.log(`  ${String(Math.round(at(e) - t0)).padStart(5)} ms  ${'signal'.padEnd(16)} ${signal}`);
    const name = scheduled ? scheduled.activityType?.name : ref ? names.get(String(ref)) : undefined;
    if (name)
      console.log(`  ${String(Math.round(at(e) - t0)).padStart(5)} ms  ${(ACTIVITY_EVENTS[Number(e.eventType)] ?? String(e.eventType)).padEnd(16)} ${name}`);
  }
}
