import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_TIMEOUT_MS, SystemClock, type HostTimers } from '../../../src/time/system-clock.js';

/**
 * Host timers on a virtual time line: what SystemClock arms is recorded, and time moves only
 * when the test says. Like Node, a timeout it is handed must fit in a signed 32-bit count.
 */
class VirtualHost implements HostTimers {
  t = 1_000;
  private pending: { at: number; fn: () => void; id: number }[] = [];
  readonly armed: number[] = [];
  private nextId = 1;

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
    assert.ok(ms <= MAX_TIMEOUT_MS, `a host timeout of ${ms} ms would fire after 1 ms in Node`);
    this.armed.push(ms);
    const id = this.nextId++;
    this.pending.push({ at: this.t + ms, fn, id });
    return { id, unref: () => undefined } as unknown as ReturnType<typeof setTimeout>;
  }

  clearTimeout(t: ReturnType<typeof setTimeout>): void {
    const id = (t as unknown as { id: number }).id;
    this.pending = this.pending.filter((p) => p.id !== id);
  }

  /** Moves time to `to`, firing due host timers in order. */
  runUntil(to: number): void {
    for (;;) {
      const due = this.pending.filter((p) => p.at <= to).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.pending = this.pending.filter((p) => p !== due);
      this.t = due.at;
      due.fn();
    }
    this.t = to;
  }

  get waiting(): number {
    return this.pending.length;
  }
}

test('a wait longer than 2^31-1 ms is armed in pieces and fires at its deadline, not early', () => {
  const host = new VirtualHost();
  const clock = new SystemClock(1, host);
  let firedAt: number | undefined;
  const wait = 3_000_000 * 1000; // drainPeriodInSeconds 3,000,000, as a probe of Sluice tried
  clock.setTimer(() => (firedAt = clock.now()), wait);
  host.runUntil(host.t + 1);
  assert.equal(firedAt, undefined, 'fired after 1 ms');
  host.runUntil(host.t + wait - 2);
  assert.equal(firedAt, undefined, 'fired before its deadline');
  host.runUntil(host.t + 2);
  assert.equal(firedAt, wait);
  assert.ok(host.armed.length >= Math.ceil(wait / MAX_TIMEOUT_MS));
  assert.ok(host.armed.every((ms) => ms <= MAX_TIMEOUT_MS));
  assert.equal(host.waiting, 0);
});

test('a scaled clock divides the wait before clamping: 10 days at time scale 60 is one host timeout', () => {
  const host = new VirtualHost();
  const clock = new SystemClock(60, host);
  let fired = false;
  clock.setTimer(() => (fired = true), 10 * 86_400_000);
  assert.deepEqual(host.armed, [(10 * 86_400_000) / 60]);
  host.runUntil(host.t + (10 * 86_400_000) / 60);
  assert.ok(fired);
});

test('clearing a long timer between its pieces stops it', () => {
  const host = new VirtualHost();
  const clock = new SystemClock(1, host);
  let fired = false;
  const h = clock.setTimer(() => (fired = true), 3 * MAX_TIMEOUT_MS);
  host.runUntil(host.t + MAX_TIMEOUT_MS + 5);
  assert.equal(host.waiting, 1, 're-armed for the rest');
  clock.clearTimer(h);
  assert.equal(host.waiting, 0);
  host.runUntil(host.t + 3 * MAX_TIMEOUT_MS);
  assert.equal(fired, false);
});
