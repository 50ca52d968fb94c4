/**
 * The real clock: host timers and a monotonic time source, optionally sped up by
 * `--time-scale`. Kept out of src/core, which only knows the Clock interface.
 */
import type { Clock, TimerHandle } from '../core/clock.js';

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
