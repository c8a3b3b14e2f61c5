// Test-only fault injection at named steps of a job, so a test can fail a component
// at an exact phase instead of guessing with timing. Off unless the host worker arms
// points at start (from VMFERRY_FAULTS, through its config; never set in production).
// Format: comma-separated `point=action`, where action is
//   crash  the host worker process dies at once (SIGKILL to itself: no cleanup runs)
//   fail   the step throws OperationFailed
//   hold   the step waits until the test removes the marker file
//          <fault dir>/<point>.held (VMFERRY_FAULT_DIR), which it creates when it gets there
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorType, vmError } from '../common/errors.js';
import { waitFor } from './wait.js';

export type FaultAction = 'crash' | 'fail' | 'hold';

export function parseFaults(spec: string | undefined): Map<string, FaultAction> {
  const faults = new Map<string, FaultAction>();
  for (const item of (spec ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [point, action] = item.split('=');
    if (!point || (action !== 'crash' && action !== 'fail' && action !== 'hold')) throw new Error(`bad VMFERRY_FAULTS entry ${JSON.stringify(item)}`);
    faults.set(point, action);
  }
  return faults;
}

// Process-wide on purpose: the points sit deep in job steps, and only the worker's entry point arms them.
let faults: ReadonlyMap<string, FaultAction> = new Map();
let faultDir = '/tmp';

/** Arms the points for this process (the host worker, once, from its config). */
export function armFaults(config: { points: ReadonlyMap<string, FaultAction>; dir: string }): void {
  faults = config.points;
  faultDir = config.dir;
}

export function heldMarker(point: string, dir = faultDir): string {
  return join(dir, `${point}.held`);
}

/** Whether a test armed this point (lets a step skip work that only serves the point). */
export function faultArmed(point: string): boolean {
  return faults.has(point);
}

/** A named step of a job; does nothing unless a test armed this point. */
export async function faultPoint(point: string): Promise<void> {
  const action = faults.get(point);
  if (!action) return;
  switch (action) {
    case 'crash':
      process.kill(process.pid, 'SIGKILL');
      // SIGKILL to ourselves is not instantaneous; never run the step meanwhile.
      await new Promise(() => undefined);
      return;
    case 'fail':
      throw vmError(ErrorType.OperationFailed, `test fault injected at ${point}`);
    case 'hold': {
      const marker = heldMarker(point);
      mkdirSync(join(marker, '..'), { recursive: true });
      writeFileSync(marker, String(process.pid));
      await waitFor(`release of fault point ${point}`, () => !existsSync(marker), { timeoutMs: 10 * 60_000, intervalMs: 50 });
      return;
    }
  }
}
