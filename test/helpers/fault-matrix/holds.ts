// Drives the test-only "hold" fault points of every host in a matrix: each host
// worker runs with all migration points armed as hold, each in its own marker
// directory. A step that reaches a point writes <dir>/<point>.held and waits;
// this releases every such marker at once, except the one a cell aims at, which
// it reports (and keeps held) so the cell can inject its fault at that exact
// phase. After that, later arrivals at the same point (a retried step) pass.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export interface HoldTarget {
  host: string;
  point: string;
}

export interface Reached {
  host: string;
  point: string;
  /** The PID of the process that holds (the host worker). */
  pid: number;
}

export class Holds {
  private timer?: NodeJS.Timeout;
  private target?: HoldTarget;
  private onReached?: (r: Reached) => void;
  /** Every point a step reached during the current cell, in order: what the job went through. */
  readonly passed: string[] = [];

  constructor(readonly dirs: Map<string, string>) {
    for (const d of dirs.values()) mkdirSync(d, { recursive: true });
  }

  start(): void {
    this.timer = setInterval(() => this.scan(), 20);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.releaseAll();
  }

  /** The next arrival at `target` is kept held and resolves the promise; everything else passes. */
  aim(target: HoldTarget): Promise<Reached> {
    this.passed.length = 0;
    this.target = target;
    return new Promise((resolve) => (this.onReached = resolve));
  }

  /** Lets the held step go on (or removes the marker a killed worker left) and stops aiming. */
  release(): void {
    this.target = undefined;
    this.onReached = undefined;
    this.releaseAll();
  }

  private releaseAll(): void {
    for (const d of this.dirs.values()) for (const f of this.markers(d)) rmSync(join(d, f), { force: true });
  }

  private markers(dir: string): string[] {
    try {
      return readdirSync(dir).filter((f) => f.endsWith('.held'));
    } catch {
      return [];
    }
  }

  private scan(): void {
    for (const [host, dir] of this.dirs) {
      for (const f of this.markers(dir)) {
        const point = f.slice(0, -'.held'.length);
        const aimed = this.target && this.target.host === host && this.target.point === point;
        if (aimed && this.onReached) {
          const pid = Number(readFileSync(join(dir, f), 'utf8'));
          const done = this.onReached;
          this.onReached = undefined;
          this.passed.push(`${host}:${point}*`);
          done({ host, point, pid });
          continue;
        }
        if (aimed) continue; // still held for the cell
        if (existsSync(join(dir, f))) {
          this.passed.push(`${host}:${point}`);
          rmSync(join(dir, f), { force: true });
        }
      }
    }
  }
}
