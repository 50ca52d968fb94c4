/**
 * A hierarchical timing wheel over small integer ids (flow slots): four levels of 256
 * buckets, intrusive circular lists in typed arrays, nothing allocated per entry.
 * Scheduling and cancelling are O(1); `advance` costs O(due entries + cascaded entries),
 * and skips empty stretches of time level by level, so a clock jump of hours is cheap.
 *
 * Entries move down a level when their bucket comes due ("cascade"); at that moment the
 * wheel asks `deadlineOf(id)` again instead of storing a deadline, so an owner whose
 * deadlines only move later (idle timers refreshed by traffic) never has to reschedule
 * on activity: the entry is simply re-filed further out when its old bucket comes due.
 */
const BITS = 8;
const SLOTS = 1 << BITS;
const LEVELS = 4;
const SENTINELS = SLOTS * LEVELS;
const SPAN = [1, SLOTS, SLOTS ** 2, SLOTS ** 3] as const;
const HORIZON = SLOTS ** 4 - 1;

export class TimerWheel {
  private next: Int32Array;
  private prev: Int32Array;
  /** 0: not scheduled; otherwise the level + 1. */
  private level: Uint8Array;
  private readonly counts = [0, 0, 0, 0];
  private cur: number;
  private total = 0;
  private watchMs = Infinity;
  private onEarlier: ((ms: number) => void) | undefined;

  constructor(
    readonly tickMs: number,
    capacity: number,
    private readonly deadlineOf: (id: number) => number,
    startMs = 0,
  ) {
    if (!(tickMs > 0)) throw new RangeError(`tickMs must be > 0, got ${tickMs}`);
    this.cur = Math.floor(startMs / tickMs);
    this.next = new Int32Array(SENTINELS + capacity);
    this.prev = new Int32Array(SENTINELS + capacity);
    this.level = new Uint8Array(capacity);
    for (let s = 0; s < SENTINELS; s++) {
      this.next[s] = s;
      this.prev[s] = s;
    }
  }

  get capacity(): number {
    return this.level.length;
  }

  /** Number of scheduled entries. */
  get size(): number {
    return this.total;
  }

  grow(capacity: number): void {
    if (capacity <= this.level.length) return;
    const next = new Int32Array(SENTINELS + capacity);
    const prev = new Int32Array(SENTINELS + capacity);
    const level = new Uint8Array(capacity);
    next.set(this.next);
    prev.set(this.prev);
    level.set(this.level);
    this.next = next;
    this.prev = prev;
    this.level = level;
  }

  isScheduled(id: number): boolean {
    return this.level[id] !== 0;
  }

  /** Files `id` to fire at the first tick at or after `deadlineMs` (never in the past). */
  schedule(id: number, deadlineMs: number): void {
    if (this.level[id] !== 0) this.unlink(id);
    let t = Math.ceil(deadlineMs / this.tickMs);
    if (!(t > this.cur)) t = this.cur + 1;
    this.place(id, t);
    if (this.onEarlier !== undefined && t * this.tickMs < this.watchMs) {
      this.watchMs = t * this.tickMs;
      this.onEarlier(this.watchMs);
    }
  }

  /**
   * Whoever will call `advance` at `ms` (a wake-up armed for then) is told, through
   * `onEarlier`, when an entry is filed to fire sooner, with that entry's time; from then on it
   * is told only of entries sooner still. One watcher at a time; a new call replaces it.
   */
  watch(ms: number, onEarlier: (ms: number) => void): void {
    this.watchMs = ms;
    this.onEarlier = onEarlier;
  }

  cancel(id: number): void {
    if (this.level[id] !== 0) this.unlink(id);
  }

  /**
   * Moves the wheel to `nowMs` and calls `fire` for every entry due by then, each once and
   * already unscheduled, so `fire` may schedule it again.
   */
  advance(nowMs: number, fire: (id: number) => void): number {
    const target = Math.floor(nowMs / this.tickMs);
    const next = this.next;
    let fired = 0;
    while (this.cur < target) {
      let k = 0;
      while (k < LEVELS && this.counts[k] === 0) k++;
      if (k === LEVELS) {
        this.cur = target;
        break;
      }
      if (k > 0) {
        // Nothing below level k: nothing can happen before level k's next boundary.
        const span = SPAN[k as 1 | 2 | 3];
        const boundary = (Math.floor(this.cur / span) + 1) * span;
        if (boundary > target) {
          this.cur = target;
          break;
        }
        this.cur = boundary - 1;
      }
      this.cur++;
      if (this.cur % SLOTS === 0) {
        let top = 1;
        while (top < LEVELS - 1 && this.cur % SPAN[(top + 1) as 2 | 3] === 0) top++;
        for (let l = top; l >= 1; l--) this.cascade(l);
      }
      const s = this.cur % SLOTS;
      // One at a time: `fire` may cancel or schedule other entries.
      while (next[s] !== s) {
        const id = next[s]! - SENTINELS;
        this.unlink(id);
        fired++;
        fire(id);
      }
    }
    return fired;
  }

  /**
   * A time at or before the earliest deadline (Infinity when empty): waking then is never
   * late, and at worst finds only entries to re-file.
   */
  nextWakeMs(): number {
    if (this.total === 0) return Infinity;
    let best = Infinity;
    if (this.counts[0]! > 0) {
      for (let d = 1; d < SLOTS; d++) {
        const s = (this.cur + d) % SLOTS;
        if (this.next[s] !== s) {
          best = this.cur + d;
          break;
        }
      }
    }
    for (let l = 1; l < LEVELS; l++) {
      if (this.counts[l] === 0) continue;
      const span = SPAN[l as 1 | 2 | 3];
      const boundary = (Math.floor(this.cur / span) + 1) * span;
      if (boundary < best) best = boundary;
    }
    return best * this.tickMs;
  }

  private place(id: number, t: number): void {
    let delta = t - this.cur;
    let l: number;
    if (delta < SPAN[1]) l = 0;
    else if (delta < SPAN[2]) l = 1;
    else if (delta < SPAN[3]) l = 2;
    else {
      l = 3;
      // Beyond the horizon the entry fires early and its owner re-files it.
      if (delta > HORIZON) {
        delta = HORIZON;
        t = this.cur + HORIZON;
      }
    }
    const s = l * SLOTS + (Math.floor(t / SPAN[l as 0 | 1 | 2 | 3]) % SLOTS);
    const n = id + SENTINELS;
    const p = this.prev[s]!;
    this.next[p] = n;
    this.prev[n] = p;
    this.next[n] = s;
    this.prev[s] = n;
    this.level[id] = l + 1;
    this.counts[l]!++;
    this.total++;
  }

  private unlink(id: number): void {
    const n = id + SENTINELS;
    const p = this.prev[n]!;
    const x = this.next[n]!;
    this.next[p] = x;
    this.prev[x] = p;
    this.counts[this.level[id]! - 1]!--;
    this.level[id] = 0;
    this.total--;
  }

  private cascade(l: number): void {
    const s = l * SLOTS + (Math.floor(this.cur / SPAN[l as 1 | 2 | 3]) % SLOTS);
    // Detach the whole bucket first; nothing outside the wheel runs while it is re-filed.
    let n = this.next[s]!;
    this.next[s] = s;
    this.prev[s] = s;
    while (n !== s) {
      const after = this.next[n]!;
      const id = n - SENTINELS;
      this.counts[l]!--;
      this.total--;
      this.level[id] = 0;
      let t = Math.ceil(this.deadlineOf(id) / this.tickMs);
      if (!(t >= this.cur)) t = this.cur;
      this.place(id, t);
      n = after;
    }
  }
}
