// A migration's convergence policy in the workflow: the progress samples the
// source's Perform signals feed the evaluator (convergence-engine.ts), whose
// decisions go to the source's QEMU through the job-control steps; the policy
// can be replaced while the stream runs (Update setPolicy, validated before
// anything enters history); and every sample moves the whole-job percentage.
//
// Versioning: what this file decides from the same signals must not change for
// a workflow already running. A later change to the evaluator or to how its
// decisions are applied goes behind patched('<name>') here, with a replay test
// over a history recorded before it (test/workflow-logic/replay.test.ts).
import { ApplicationFailure, log, setHandler } from '@temporalio/workflow';
import { migrationProgressSignal, setPolicyUpdate, type ConvergenceSample, type PolicyChange } from '../common/convergence-messages.js';
import { resolvePolicy, type ConvergencePolicy } from '../common/convergence-policy.js';
import { ErrorType, vmError } from '../common/errors.js';
import type { MigrateFlag, MigrationTuning } from '../common/migration-types.js';
import { ConvergenceEngine, type ConvergenceDecision } from './convergence-engine.js';
import { JobPercent } from './job-percent.js';
import type { JobTracker } from './job-tracker.js';
import type { SourceJobControl } from './migrate-control.js';

/** The phases in which a policy still has a stream to act on. */
const POLICY_PHASES = new Set(['begin', 'prepare', 'perform', 'storage-copy']);
const MIB = 1024 * 1024;

export interface ConvergenceHost {
  tracker: JobTracker;
  control: SourceJobControl;
  flags: readonly MigrateFlag[];
  /** Ends the migration with `err` as its first error (the stream is cancelled, both sides undone). */
  fail: (err: ApplicationFailure) => void;
}

export function tuningOf(p: ConvergencePolicy): MigrationTuning | undefined {
  const t: MigrationTuning = {};
  if (p.autoConverge) {
    t.throttleInitialPercent = p.autoConverge.initialPercent;
    t.throttleIncrementPercent = p.autoConverge.incrementPercent;
    t.maxThrottlePercent = p.autoConverge.maxPercent;
  }
  if (p.xbzrleCacheMiB) t.xbzrleCacheBytes = p.xbzrleCacheMiB * MIB;
  return Object.keys(t).length > 0 ? t : undefined;
}

export class MigrationConvergence {
  private engine?: ConvergenceEngine;
  private policy?: ConvergencePolicy;
  private readonly percent = new JobPercent();
  private last?: ConvergenceSample;
  private readonly postcopyAllowed: boolean;

  constructor(
    private readonly host: ConvergenceHost,
    spec: string | ConvergencePolicy | undefined,
  ) {
    this.postcopyAllowed = host.flags.includes('postcopy');
    if (spec !== undefined) {
      const p = resolvePolicy(spec, this.postcopyAllowed);
      // The start input was validated before the workflow ran; this only guards a hand-made one.
      if (typeof p === 'string') throw vmError(ErrorType.OperationInvalid, `policy: ${p}`);
      this.use(p);
      const init = this.engine!.initial();
      host.tracker.info.maxDowntimeMs ??= init.maxDowntimeMs;
      if (init.bandwidthMiBps > 0) host.tracker.info.speedLimitMiBps ??= init.bandwidthMiBps;
    }
    host.tracker.setHooks({ onPhase: (phase) => this.progressed(phase) });
    host.control.onUserChange = (c) => this.engine?.overridden(c);
    setHandler(migrationProgressSignal, (s) => this.sample(s));
    setHandler(setPolicyUpdate, (spec) => this.replace(spec), { validator: (spec) => this.refuse(spec) });
  }

  /** Started with a policy: Perform signals samples, and the policy can be replaced while it runs. */
  get active(): boolean {
    return this.engine !== undefined;
  }

  /** What Perform sets before the stream starts. */
  get tuning(): MigrationTuning | undefined {
    return this.policy ? tuningOf(this.policy) : undefined;
  }

  private use(p: ConvergencePolicy): void {
    this.policy = p;
    this.engine = new ConvergenceEngine(p, this.postcopyAllowed);
    this.report();
  }

  private sample(s: ConvergenceSample): void {
    const { tracker, control } = this.host;
    // Samples of an earlier Perform attempt can arrive late; QEMU's own clock orders them.
    if (this.last && s.elapsedMs < this.last.elapsedMs) return;
    this.last = s;
    tracker.progress({
      iterations: s.iteration,
      ...(s.throttlePercent !== undefined ? { throttlePercent: s.throttlePercent } : {}),
      ...(s.dirtyRatePagesPerSec !== undefined ? { dirtyRatePagesPerSec: s.dirtyRatePagesPerSec } : {}),
    });
    this.progressed(tracker.info.phase, s);
    if (!this.engine || !control.isLive || tracker.info.status !== 'running') return;
    this.apply(this.engine.observe(s));
  }

  private apply(d: ConvergenceDecision): void {
    const { tracker, control } = this.host;
    if (d.maxDowntimeMs !== undefined) {
      tracker.info.maxDowntimeMs = d.maxDowntimeMs;
      void control.policyMaxDowntime(d.maxDowntimeMs);
    }
    if (d.bandwidthMiBps !== undefined) {
      tracker.info.speedLimitMiBps = d.bandwidthMiBps;
      void control.policySpeed(d.bandwidthMiBps);
    }
    if (d.startPostcopy) this.startPostcopy('the policy switched to post-copy');
    if (d.timeout) {
      log.warn('convergence timeout', { kind: d.timeout.kind, action: d.timeout.action, why: d.timeout.why });
      switch (d.timeout.action) {
        case 'abort':
          this.host.fail(vmError(ErrorType.OperationTimeout, `migration did not converge: ${d.timeout.why}; aborted by policy '${this.policy!.name}'`));
          break;
        case 'suspend':
          void control.policySuspend();
          break;
        case 'postcopy':
          this.startPostcopy(`${d.timeout.why}: switching to post-copy`);
          break;
      }
    }
    this.report();
  }

  private startPostcopy(why: string): void {
    log.info('post-copy requested', { why });
    void this.host.control.policyPostcopy();
  }

  private refuse(spec: string | ConvergencePolicy): void {
    const { tracker, flags } = this.host;
    const bad = (message: string): never => {
      throw ApplicationFailure.create({ type: ErrorType.OperationInvalid, message, nonRetryable: true });
    };
    if (tracker.info.status !== 'running') bad(`the job is ${tracker.info.status}`);
    if (!POLICY_PHASES.has(tracker.info.phase)) bad(`the stream is over (phase ${tracker.info.phase}): a policy has nothing left to act on`);
    if (!flags.includes('live') || flags.includes('offline')) bad('a convergence policy needs a live migration');
    // Its source sends no progress samples: a policy would have nothing to act on.
    if (!this.engine) bad('this migration was started without a convergence policy; start one with --policy (none: no decisions) to change it while it runs');
    const p = resolvePolicy(spec, this.postcopyAllowed);
    if (typeof p === 'string') return bad(`policy: ${p}`);
    // Capabilities are QEMU's for the whole stream: a policy cannot turn one on once it runs.
    if (p.autoConverge && !flags.includes('auto-converge')) bad(`policy '${p.name}' uses auto-converge, which this migration was not started with`);
    if (p.xbzrleCacheMiB && !flags.includes('compressed')) bad(`policy '${p.name}' uses xbzrle, which this migration was not started with`);
  }

  /** Answers once the source's QEMU has what changed (the ordered job-control queue has sent it). */
  private async replace(spec: string | ConvergencePolicy): Promise<PolicyChange> {
    const p = resolvePolicy(spec, this.postcopyAllowed) as ConvergencePolicy;
    this.policy = p;
    this.apply(this.engine!.replace(p, this.last));
    const t = tuningOf(p);
    // The throttle and the xbzrle cache may change mid-stream (turning a capability on may not: the validator refused that).
    if (t && this.host.control.isLive) void this.host.control.policyTuning(t);
    await this.host.control.settled();
    const st = this.engine!.status();
    return { policy: st.policy, step: st.step, maxDowntimeMs: st.maxDowntimeMs, bandwidthMiBps: st.bandwidthMiBps };
  }

  private report(): void {
    if (!this.engine) return;
    const st = this.engine.status();
    this.host.tracker.info.policy = st.policy;
    this.host.tracker.info.policyStep = st.timedOut ? `${st.step}; timed out: ${st.timedOut}` : st.step;
  }

  private progressed(phase: string, s?: ConvergenceSample): void {
    const info = this.host.tracker.info;
    const figures = s
      ? { ...info, memTotalBytes: info.memTotalBytes ?? s.totalBytes, memRemainingBytes: s.remainingBytes, memProcessedBytes: s.processedBytes ?? 0 }
      : info;
    const o = this.percent.update(phase, figures, Date.now());
    info.jobPercent = o.percent;
    if (o.etaSeconds !== undefined) info.etaSeconds = o.etaSeconds;
    else delete info.etaSeconds;
  }
}
