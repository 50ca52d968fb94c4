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

/** What a SystemClock reads and arms: the host's, unless a test hands it others. */
export interface HostTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): HostTimer;
  clearTimeout(t: HostTimer): void;
}

const HOST: HostTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (t) => globalThis.clearTimeout(t),
};

/** The longest timeout Node's timers take (a signed 32-bit millisecond count). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Real time, optionally sped up by `scale` (>= 1 shortens every wait). */
export class SystemClock implements Clock {
  private readonly origin: number;
  private readonly timers = new Map<number, HostTimer>();
  private nextId = 1;

  constructor(
    readonly scale = 1,
    private readonly host: HostTimers = HOST,
  ) {
    if (!(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`time scale must be > 0, got ${scale}`);
    this.origin = host.now();
  }

  now(): number {
    return (this.host.now() - this.origin) * this.scale;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.arm(id, fn, this.now() + Math.max(0, ms));
    return { id };
  }

  /**
   * Node runs a timeout longer than 2^31-1 ms after 1 ms: a wait longer than that is armed in
   * pieces, each re-armed for what is left, so no timer ever fires early.
   */
  private arm(id: number, fn: () => void, deadline: number): void {
    const realMs = Math.max(0, (deadline - this.now()) / this.scale);
    const t = this.host.setTimeout(
      () => {
        if (realMs > MAX_TIMEOUT_MS) {
          this.arm(id, fn, deadline);
          return;
        }
        this.timers.delete(id);
        fn();
      },
      Math.min(realMs, MAX_TIMEOUT_MS),
    );
    // Timers never keep the process alive on their own: listeners and sockets do.
    t.unref?.();
    this.timers.set(id, t);
  }

  clearTimer(handle: TimerHandle): void {
    const t = this.timers.get(handle.id);
    if (t !== undefined) {
      this.host.clearTimeout(t);
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
