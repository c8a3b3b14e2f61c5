// Stub host activities for the workflow-logic tests: every activity the migrate
// workflow may call, on each host's task queue, recording each call (host,
// activity, arguments, how it ended, in what order) and doing what the test
// scripted: answer, fail with a typed error, wait for cancellation, or wait for
// the test to release it.
import { CancelledFailure, Context } from '@temporalio/activity';
import { vmError, type ErrorType } from '../../src/common/errors.js';
import type { BeginArgs, BeginResult, FinishResult, PerformResult, PrepareArgs, PrepareResult } from '../../src/common/migration-types.js';

export interface Call {
  host: string;
  act: string;
  args: unknown[];
  /** Order among every start and end the stubs saw. */
  started: number;
  ended?: number;
  /** Wall-clock ms of the start and end, for timing questions. */
  startedAtMs: number;
  endedAtMs?: number;
  outcome?: 'ok' | 'failed' | 'cancelled';
}

export type Behaviour =
  /** Answer with this value instead of the default. */
  | { answer: unknown }
  /** Throw a typed error as a host does (retryable only if the type is), after `afterMs` if given. */
  | { fail: ErrorType; message?: string; afterMs?: number }
  /** Heartbeat until cancelled, then report the cancellation; or answer anyway (a step that finished as the cancel came). */
  | { block: 'until-cancelled'; thenAnswer?: unknown }
  /** Heartbeat until the test calls release(host, act), then answer the default (or `thenAnswer`). */
  | { block: 'until-released'; thenAnswer?: unknown };

/** What a host answers when the test scripted nothing. */
export interface HostProfile {
  hostUuid: string;
  protocolVersions: number[];
}

/** The destination watch lasts as long as Perform: it ends only when the workflow cancels it. */
const BY_DEFAULT: Record<string, Behaviour> = { migrateWatchIncoming: { block: 'until-cancelled' } };

export const DOMAIN_UUID = '6a1f1c55-7c4f-4e77-9d6e-2f9bd0b2a001';

export class StubHosts {
  readonly calls: Call[] = [];
  private seq = 0;
  private script: { host: string; act: string; when: (args: unknown[]) => boolean; b: Behaviour }[] = [];
  private readonly released = new Set<string>();
  private readonly profiles = new Map<string, HostProfile>();

  /** Forget every call and script: each test starts from the defaults. */
  reset(): void {
    this.calls.length = 0;
    this.seq = 0;
    this.script = [];
    this.released.clear();
    this.profiles.clear();
  }

  /** Scripts `act` on `host` (only the calls `when` picks, if given); the latest matching script wins. */
  on(host: string, act: string, b: Behaviour, when: (args: unknown[]) => boolean = () => true): this {
    this.script.unshift({ host, act, when, b });
    return this;
  }

  profile(host: string, p: Partial<HostProfile>): this {
    this.profiles.set(host, { ...this.profileOf(host), ...p });
    return this;
  }

  release(host: string, act: string): void {
    this.released.add(`${host}/${act}`);
  }

  /** Calls as `host:act`, in the order they started. */
  sequence(filter: (c: Call) => boolean = () => true): string[] {
    return this.calls.filter(filter).map((c) => `${c.host}:${c.act}`);
  }

  find(host: string, act: string): Call[] {
    return this.calls.filter((c) => c.host === host && c.act === act);
  }

  /** Resolves once `host` has started `act` (a call `when` picks, if given). */
  async started(host: string, act: string, when: (c: Call) => boolean = () => true, timeoutMs = 20_000): Promise<Call> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const c = this.find(host, act).find(when);
      if (c) return c;
      if (Date.now() > until) throw new Error(`${host} never started ${act}; calls: ${this.sequence().join(', ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private profileOf(host: string): HostProfile {
    return this.profiles.get(host) ?? { hostUuid: `host-uuid-of-${host}`, protocolVersions: [2, 3] };
  }

  /** The activities one host's worker registers. */
  activitiesFor(host: string): Record<string, (...args: unknown[]) => Promise<unknown>> {
    const defaults = this.defaults(host);
    return Object.fromEntries(Object.entries(defaults).map(([act, answer]) => [act, (...args: unknown[]) => this.run(host, act, args, answer)]));
  }

  private async run(host: string, act: string, args: unknown[], answer: (args: unknown[]) => unknown): Promise<unknown> {
    const call: Call = { host, act, args, started: ++this.seq, startedAtMs: Date.now() };
    this.calls.push(call);
    const end = (outcome: Call['outcome']): void => {
      call.outcome = outcome;
      call.ended = ++this.seq;
      call.endedAtMs = Date.now();
    };
    const b = this.script.find((r) => r.host === host && r.act === act && r.when(args))?.b ?? BY_DEFAULT[act];
    try {
      if (b && 'fail' in b) {
        if (b.afterMs) await Context.current().sleep(b.afterMs);
        throw vmError(b.fail, b.message ?? `stub ${act} on ${host} failed`);
      }
      if (b && 'block' in b) {
        const ctx = Context.current();
        for (;;) {
          if (b.block === 'until-released' && this.released.has(`${host}/${act}`)) {
            this.released.delete(`${host}/${act}`);
            if (b.thenAnswer !== undefined) {
              end('ok');
              return b.thenAnswer;
            }
            break;
          }
          ctx.heartbeat();
          try {
            await ctx.sleep(100);
          } catch (err) {
            if (err instanceof CancelledFailure && b.block === 'until-cancelled' && b.thenAnswer !== undefined) {
              end('ok');
              return b.thenAnswer;
            }
            throw err;
          }
        }
      }
      const value = b && 'answer' in b ? b.answer : answer(args);
      end('ok');
      return value;
    } catch (err) {
      end(err instanceof CancelledFailure ? 'cancelled' : 'failed');
      throw err;
    }
  }

  private defaults(host: string): Record<string, (args: unknown[]) => unknown> {
    const p = (): HostProfile => this.profileOf(host);
    const ok = (): unknown => undefined;
    return {
      migrateTunnelSupport: () => ({ host, configured: true, endpoint: `${host}:7777`, identity: `CN=${host}` }),
      hostInfo: () => ({ name: host, hostUuid: p().hostUuid, hostname: host, protocolVersions: p().protocolVersions }),
      migrateBegin: ([a]) => {
        const args = a as BeginArgs;
        return {
          xml: `<domain><name>${args.domain}</name></domain>`,
          cookie: 'begin-cookie',
          uuid: DOMAIN_UUID,
          wasRunning: true,
          persistent: true,
          hostUuid: p().hostUuid,
          hostname: host,
          protocolVersions: p().protocolVersions,
          persistentDiffers: false,
          bandwidthMiBps: args.bandwidthMiBps ?? 0,
          ...(args.maxDowntimeMs !== undefined ? { maxDowntimeMs: args.maxDowntimeMs } : {}),
        } satisfies BeginResult;
      },
      migratePrepare: ([a]) => prepared(a as PrepareArgs, host),
      migratePrepare2: ([a]) => prepared(a as PrepareArgs, host),
      migratePerform: () => ({ stats: { sourceStoppedAtMs: 1_000, transferredBytes: 4096 }, cookie: 'perform-cookie' }) satisfies PerformResult,
      migratePerform2: () => ({ stats: { sourceStoppedAtMs: 1_000, transferredBytes: 4096 } }) satisfies PerformResult,
      migrateFinish: ([a]) => finished(a as { name: string; success: boolean }, host),
      migrateFinish2: ([a]) => finished(a as { name: string; success: boolean }, host),
      migrateConfirm: ([a]) => ({ sourceUndefined: (a as { success: boolean }).success, resumed: !(a as { success: boolean }).success }),
      migrateAbortSource: () => ({ sourceUndefined: false, resumed: true }),
      migrateForgetSource: ok,
      migrateWatchIncoming: ok,
      abortJob: () => ({ aborted: true }),
      setJobSpeed: ok,
      setJobMaxDowntime: ok,
      setJobTuning: ok,
      suspendJobGuest: () => ({ suspended: true }),
      migrateStartPostcopy: () => ({ status: 'active' }),
      migratePostcopyWait: () => ({ status: 'completed', stats: { postcopy: true, transferredBytes: 8192 } }),
      migratePostcopyResume: () => ({ status: 'postcopy-recover' }),
      migratePostcopyPauseIncoming: () => ({ status: 'postcopy-paused' }),
      migratePostcopyListen: () => ({ uri: `tcp:${host}:49200` }),
      migratePostcopyKeepPaused: () => ({ kept: true }),
      migratePostcopyEnded: ok,
    };
  }
}

function prepared(a: PrepareArgs, host: string): PrepareResult {
  return { name: a.dname ?? a.domain, uri: `tcp:${host}:49152`, port: 49152, cookie: a.protocol === 3 ? 'prepare-cookie' : undefined };
}

function finished(a: { name: string; success: boolean }, host: string): FinishResult {
  if (!a.success) return { persistent: false };
  return {
    domain: {
      name: a.name,
      uuid: DOMAIN_UUID,
      state: 'running',
      persistent: true,
      reason: 'migrated',
      memoryKiB: 1024,
      currentMemoryKiB: 1024,
      vcpus: 1,
      host,
    },
    cookie: 'finish-cookie',
    resumedAtMs: 1_040,
    persistent: true,
  };
}
