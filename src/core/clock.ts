/**
 * Time for everything in Sluice that waits: idle expiry, probes, drains, holds.
 * Milliseconds on a monotonic scale. The real clock (src/time/system-clock.ts) may run
 * `scale` times faster than real time, which is how `--time-scale` shortens Azure's minutes
 * without changing the configuration's units; the manual clock here moves only when told.
 */
export interface TimerHandle {
  readonly id: number;
}

export interface Clock {
  /** Milliseconds of load-balancer time, monotonic. */
  now(): number;
  /** Calls `fn` once after `ms` of load-balancer time. */
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

interface ManualTimer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/** A clock that moves only when told to: for tests. */
export class ManualClock implements Clock {
  private t: number;
  private timers: ManualTimer[] = [];
  private nextId = 1;

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer = { id: this.nextId++, at: this.t + Math.max(0, ms), fn };
    this.timers.push(timer);
    return { id: timer.id };
  }

  clearTimer(handle: TimerHandle): void {
    this.timers = this.timers.filter((x) => x.id !== handle.id);
  }

  /** Moves time forward by `ms`, firing due timers in order of their deadline. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const x of this.timers) if (x.at <= end && (next === undefined || x.at < next.at)) next = x;
      if (next === undefined) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }

  /** Number of timers still pending. */
  pending(): number {
    return this.timers.length;
  }
}
