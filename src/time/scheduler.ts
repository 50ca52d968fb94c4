/**
 * One timer for all of a load balancer's timed work, armed for the moment the next piece of it
 * is due and never sooner: the flow engine's idle expiries and the data plane's own deadlines
 * (held sockets of dropped flows, read buffers to take back). No fixed tick: a Sluice with no
 * flows does not wake up for them at all, and on a manual clock nothing is due until the clock
 * is moved.
 */
import type { Clock, TimerHandle } from '../core/clock.js';

export interface TimedWork {
  /** When work is next due, in load-balancer milliseconds (a lower bound; Infinity: none). */
  nextDeadline(): number;
  /** Does what is due at `now`. */
  runDue(now: number): void;
  /** Tells `sooner` when work is added that is due before `ms` (optional). */
  watch?(ms: number, sooner: (ms: number) => void): void;
}

export class DeadlineScheduler {
  private timer: TimerHandle | undefined;
  private armedAt = Infinity;
  private stopped = false;
  /** How many times the timer fired (for tests and the idle-wake-up measurement). */
  wakeUps = 0;

  constructor(
    private readonly clock: Clock,
    private readonly work: TimedWork,
  ) {}

  /** Arms for the work's next deadline. */
  start(): void {
    this.stopped = false;
    this.arm(this.work.nextDeadline());
  }

  /** Work may be due sooner than the armed wake-up: re-arm if so. */
  poke(): void {
    if (this.stopped) return;
    const next = this.work.nextDeadline();
    if (next < this.armedAt) this.arm(next);
  }

  /** When the timer is armed for (Infinity: not armed). */
  get nextWakeAt(): number {
    return this.armedAt;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
  }

  private arm(at: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.armedAt = at;
    if (Number.isFinite(at)) {
      this.timer = this.clock.setTimer(() => this.fire(), Math.max(0, at - this.clock.now()));
    }
    this.work.watch?.(at, (sooner) => {
      if (sooner < this.armedAt) this.arm(sooner);
    });
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    this.wakeUps++;
    this.work.runDue(this.clock.now());
    this.arm(this.work.nextDeadline());
  }
}
