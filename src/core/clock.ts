/**
 * Time for everything in Sluice that waits: idle expiry, probes, drains, holds.
 * Milliseconds on a monotonic scale. A scaled clock runs `scale` times faster than
 * real time, which is how `--time-scale` shortens Azure's minutes without changing
 * the configuration's units.
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

type HostTimer = ReturnType<typeof globalThis.setTimeout>;

/** Real time, optionally sped up by `scale` (>= 1 shortens every wait). */
export class SystemClock implements Clock {
  private readonly origin = performance.now();
  private readonly timers = new Map<number, HostTimer>();
  private nextId = 1;

  constructor(readonly scale = 1) {
    if (!(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`time scale must be > 0, got ${scale}`);
  }

  now(): number {
    return (performance.now() - this.origin) * this.scale;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    const t = globalThis.setTimeout(
      () => {
        this.timers.delete(id);
        fn();
      },
      Math.max(0, ms / this.scale),
    );
    // Timers never keep the process alive on their own: listeners and sockets do.
    t.unref?.();
    this.timers.set(id, t);
    return { id };
  }

  clearTimer(handle: TimerHandle): void {
    const t = this.timers.get(handle.id);
    if (t !== undefined) {
      globalThis.clearTimeout(t);
      this.timers.delete(handle.id);
    }
  }
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
