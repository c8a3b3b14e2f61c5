// The convergence policy, evaluated: fed the progress samples Perform reports,
// it says which downtime, bandwidth and throttle should be in force, when to
// switch to post-copy, and when a timeout has struck. Pure and deterministic
// (no clock, no I/O): it runs inside the workflow, and replaying a history
// must reach the same decisions. A change to what it decides for the same
// samples must be guarded with patched() where it is called.
import type { ConvergenceSample } from '../common/convergence-messages.js';
import type { ConvergencePolicy, DowntimeStep, PostcopySwitchRule, TimeoutAction } from '../common/convergence-policy.js';

export type { ConvergenceSample };

export interface ConvergenceDecision {
  /** Values to send QEMU now (only those that change). */
  maxDowntimeMs?: number;
  bandwidthMiBps?: number;
  startPostcopy?: boolean;
  timeout?: { kind: 'completion' | 'progress'; action: TimeoutAction; why: string };
}

export interface ConvergenceStatus {
  policy: string;
  /** e.g. "downtime step 2 of 3 (1000 ms, after 4 stalled iterations)", or "initial (300 ms)". */
  step: string;
  stalledIterations: number;
  maxDowntimeMs: number;
  bandwidthMiBps: number;
  postcopyRequested: boolean;
  timedOut?: string;
}

const GIB = 1024 ** 3;

export class ConvergenceEngine {
  private stepsApplied = 0;
  private lowestRemaining = Number.POSITIVE_INFINITY;
  private lastIteration = -1;
  private stalled = 0;
  private lastNewLowMs = 0;
  private downtimeMs: number;
  private bandwidth: number;
  private postcopy = false;
  private timedOut?: string;

  constructor(
    private policy: ConvergencePolicy,
    private readonly postcopyAllowed: boolean,
  ) {
    this.downtimeMs = policy.initialMaxDowntimeMs;
    this.bandwidth = policy.bandwidthMiBps;
  }

  /** The values to set before the stream starts. */
  initial(): { maxDowntimeMs: number; bandwidthMiBps: number } {
    return { maxDowntimeMs: this.downtimeMs, bandwidthMiBps: this.bandwidth };
  }

  /** One progress sample; returns what changes. Samples must come in order. */
  observe(s: ConvergenceSample): ConvergenceDecision {
    if (s.iteration > this.lastIteration) {
      // Judge an iteration at its boundary: within one, remaining only falls.
      if (this.lastIteration >= 0) {
        if (s.remainingBytes < this.lowestRemaining) this.stalled = 0;
        else this.stalled += 1;
      }
      this.lastIteration = s.iteration;
    }
    if (s.remainingBytes < this.lowestRemaining) {
      this.lowestRemaining = s.remainingBytes;
      this.lastNewLowMs = s.elapsedMs;
    }
    const out: ConvergenceDecision = {};
    const downtime = this.scheduledDowntime(s.elapsedMs);
    if (downtime !== this.downtimeMs) {
      this.downtimeMs = downtime;
      out.maxDowntimeMs = downtime;
    }
    if (this.postcopyAllowed && !this.postcopy && this.policy.postcopySwitch && reached(this.policy.postcopySwitch, this.stalled, s.elapsedMs)) {
      this.postcopy = true;
      out.startPostcopy = true;
    }
    if (!this.timedOut && !this.postcopy) {
      const timeout = this.timeout(s);
      if (timeout) {
        this.timedOut = timeout.why;
        out.timeout = timeout;
        if (timeout.action === 'postcopy') this.postcopy = true;
      }
    }
    return out;
  }

  /**
   * A policy changed mid-run: counters carry over, the new schedule applies from
   * where the migration stands, and what differs is returned to send QEMU.
   */
  replace(policy: ConvergencePolicy, at: ConvergenceSample | undefined): ConvergenceDecision {
    this.policy = policy;
    const out: ConvergenceDecision = {};
    const before = this.downtimeMs;
    this.stepsApplied = 0;
    this.downtimeMs = policy.initialMaxDowntimeMs;
    this.downtimeMs = this.scheduledDowntime(at?.elapsedMs ?? 0);
    if (this.downtimeMs !== before) out.maxDowntimeMs = this.downtimeMs;
    if (policy.bandwidthMiBps !== this.bandwidth) {
      this.bandwidth = policy.bandwidthMiBps;
      out.bandwidthMiBps = policy.bandwidthMiBps;
    }
    return out;
  }

  /** A user's setSpeed / setMaxDowntime wins over the policy until the next step. */
  overridden(change: { maxDowntimeMs?: number; bandwidthMiBps?: number }): void {
    if (change.maxDowntimeMs !== undefined) this.downtimeMs = change.maxDowntimeMs;
    if (change.bandwidthMiBps !== undefined) this.bandwidth = change.bandwidthMiBps;
  }

  /** The switch happened by request, not by policy: the policy does not ask again. */
  postcopyStarted(): void {
    this.postcopy = true;
  }

  status(): ConvergenceStatus {
    return {
      policy: this.policy.name,
      step: this.stepText(),
      stalledIterations: this.stalled,
      maxDowntimeMs: this.downtimeMs,
      bandwidthMiBps: this.bandwidth,
      postcopyRequested: this.postcopy,
      ...(this.timedOut ? { timedOut: this.timedOut } : {}),
    };
  }

  /** Advances the schedule; the downtime now due (unchanged when no step was reached, so a user's value stays). */
  private scheduledDowntime(elapsedMs: number): number {
    const steps = this.policy.downtimeSteps;
    let applied = this.stepsApplied;
    // Steps apply in order and never go back: a migration that made progress keeps the downtime it earned.
    while (applied < steps.length && reached(steps[applied]!, this.stalled, elapsedMs)) applied += 1;
    if (applied === this.stepsApplied) return this.downtimeMs;
    this.stepsApplied = applied;
    return steps[applied - 1]!.maxDowntimeMs;
  }

  private timeout(s: ConvergenceSample): ConvergenceDecision['timeout'] {
    const p = this.policy;
    const action: TimeoutAction = p.timeoutAction === 'postcopy' && !this.postcopyAllowed ? 'abort' : p.timeoutAction;
    if (p.completionTimeoutSecondsPerGiB > 0) {
      const limitMs = Math.max(1, Math.ceil((p.completionTimeoutSecondsPerGiB * 1000 * s.totalBytes) / GIB));
      if (s.elapsedMs >= limitMs) {
        return { kind: 'completion', action, why: `not complete after ${Math.round(s.elapsedMs / 1000)} s (${p.completionTimeoutSecondsPerGiB} s per GiB)` };
      }
    }
    if (p.progressTimeoutSeconds > 0 && s.elapsedMs - this.lastNewLowMs >= p.progressTimeoutSeconds * 1000) {
      return { kind: 'progress', action, why: `no progress for ${p.progressTimeoutSeconds} s (remaining never fell below ${this.lowestRemaining} bytes)` };
    }
    return undefined;
  }

  private stepText(): string {
    if (this.stepsApplied === 0) return `initial (${this.downtimeMs} ms)`;
    const s: DowntimeStep = this.policy.downtimeSteps[this.stepsApplied - 1]!;
    return `downtime step ${this.stepsApplied} of ${this.policy.downtimeSteps.length} (${s.maxDowntimeMs} ms, ${triggerText(s)})`;
  }
}

function reached(t: PostcopySwitchRule, stalled: number, elapsedMs: number): boolean {
  return (
    (t.afterStalledIterations !== undefined && stalled >= t.afterStalledIterations) || (t.afterSeconds !== undefined && elapsedMs >= t.afterSeconds * 1000)
  );
}

function triggerText(t: PostcopySwitchRule): string {
  const parts: string[] = [];
  if (t.afterStalledIterations !== undefined) parts.push(`after ${t.afterStalledIterations} stalled iterations`);
  if (t.afterSeconds !== undefined) parts.push(`after ${t.afterSeconds} s`);
  return parts.join(' or ');
}
