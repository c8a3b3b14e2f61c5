// Undo as a stack: each step, once it has started, pushes what undoes it; a
// failure or cancel unwinds the stack. Unwinding never stops at a failed undo
// (the job tracker keeps its error) and is never cancelled itself.
import { CancellationScope } from '@temporalio/workflow';

export interface Compensation {
  /** Undoes one step; resolves false when it could not (having recorded why), never rejects. */
  run(): Promise<boolean>;
  /** In-order unwinding only: called instead of `run` when an undo unwound before this one failed. */
  skipped?(): void;
}

export class Compensations {
  private stack: Compensation[] = [];

  push(c: Compensation): Compensation {
    this.stack.push(c);
    return c;
  }

  /** A step learnt how its undo must go after it pushed one (the protocol was picked). */
  replace(old: Compensation, next: Compensation): void {
    const i = this.stack.indexOf(old);
    if (i < 0) throw new Error('compensation to replace is not on the stack');
    this.stack[i] = next;
  }

  /** Past this point what was done cannot be undone: a failure leaves it as it is. */
  clear(): void {
    this.stack = [];
  }

  /**
   * All undos at once, started last-pushed first: for a failure while no undo can
   * make another unsafe (before Finish, nothing runs on the destination).
   */
  async unwindTogether(): Promise<void> {
    const undos = this.take();
    await CancellationScope.nonCancellable(() => Promise.all(undos.map((c) => c.run())));
  }

  /**
   * Last-pushed first, each one only after every undo before it succeeded; the
   * rest are skipped (for a failure once the destination may have run the guest).
   */
  async unwindInOrder(): Promise<void> {
    const undos = this.take();
    await CancellationScope.nonCancellable(async () => {
      let undone = true;
      for (const c of undos) {
        if (undone) undone = await c.run();
        else c.skipped?.();
      }
    });
  }

  private take(): Compensation[] {
    const undos = this.stack.reverse();
    this.stack = [];
    return undos;
  }
}
