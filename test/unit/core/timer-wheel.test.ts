import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TimerWheel } from '../../../src/core/timer-wheel.js';

test('timing wheel: each entry fires once, in the first advance past its deadline tick, never before', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      fc.array(fc.integer({ min: 0, max: 5_000_000_000 }), { minLength: 1, maxLength: 60 }),
      fc.array(fc.integer({ min: 1, max: 400_000_000 }), { minLength: 1, maxLength: 80 }),
      (tick, deadlines, steps) => {
        const start = 1000;
        const wheel = new TimerWheel(tick, deadlines.length, (id) => start + deadlines[id]!, start);
        deadlines.forEach((d, id) => wheel.schedule(id, start + d));
        const fired = new Map<number, number>();
        let now = start;
        let prev = start;
        const check = (at: number, before: number) => (id: number) => {
          assert.ok(!fired.has(id), `fired twice: ${id}`);
          fired.set(id, at);
          const due = Math.max(Math.ceil((start + deadlines[id]!) / tick), Math.floor(start / tick) + 1);
          assert.ok(due <= Math.floor(at / tick), 'early');
          assert.ok(due > Math.floor(before / tick), 'late: should have fired in an earlier advance');
        };
        for (const s of steps) {
          now += s;
          wheel.advance(now, check(now, prev));
          prev = now;
        }
        const end = start + 5_000_000_001 + tick;
        wheel.advance(end, check(end, prev));
        assert.equal(fired.size, deadlines.length);
        assert.equal(wheel.size, 0);
        assert.equal(wheel.nextWakeMs(), Infinity);
      },
    ),
    { numRuns: 60 },
  );
});

test('timing wheel: nextWakeMs is never after the earliest deadline', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 100_000_000 }), { minLength: 1, maxLength: 40 }), (ds) => {
      const wheel = new TimerWheel(10, ds.length, (id) => ds[id]!, 0);
      ds.forEach((d, id) => wheel.schedule(id, d));
      const earliest = Math.ceil(Math.min(...ds) / 10) * 10;
      let wake = wheel.nextWakeMs();
      assert.ok(wake <= earliest);
      // Following the wake-ups reaches the earliest deadline without skipping it.
      let firstFire = Infinity;
      while (firstFire === Infinity) {
        wheel.advance(wake, () => (firstFire = Math.min(firstFire, wake)));
        if (firstFire === Infinity) {
          const next = wheel.nextWakeMs();
          assert.ok(next > wake);
          wake = next;
        }
      }
      assert.equal(firstFire, earliest);
    }),
    { numRuns: 60 },
  );
});

test('timing wheel: an entry whose deadline moved later is re-filed at cascade, not fired', () => {
  const deadlines = [100_000];
  const wheel = new TimerWheel(10, 1, (id) => deadlines[id]!, 0);
  wheel.schedule(0, deadlines[0]!);
  deadlines[0] = 900_000; // activity moved it; the owner does not reschedule
  const fired: number[] = [];
  wheel.advance(899_990, (id) => fired.push(id));
  assert.equal(fired.length, 0);
  wheel.advance(900_000, (id) => fired.push(id));
  assert.deepEqual(fired, [0]);
});

test('timing wheel: cancel and reschedule', () => {
  const wheel = new TimerWheel(1, 4, () => 0, 0);
  wheel.schedule(1, 50);
  wheel.schedule(2, 60);
  wheel.cancel(1);
  wheel.schedule(2, 30);
  assert.equal(wheel.isScheduled(1), false);
  const fired: [number, number][] = [];
  for (let t = 1; t <= 100; t++) wheel.advance(t, (id) => fired.push([id, t]));
  assert.deepEqual(fired, [[2, 30]]);
  wheel.grow(10);
  wheel.schedule(9, 200);
  wheel.advance(200, (id) => fired.push([id, 200]));
  assert.deepEqual(fired.at(-1), [9, 200]);
});
