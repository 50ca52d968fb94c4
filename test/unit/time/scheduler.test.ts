import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine } from '../../../src/core/engine.js';
import type { ExpiryAction } from '../../../src/core/engine.js';
import { DeadlineScheduler } from '../../../src/time/scheduler.js';
import { lbRule, snapshot } from '../core/snapshot-helpers.js';

const MIN = 60_000;

/** An engine driven by a DeadlineScheduler on a manual clock, recording every idle action. */
function driven(idleMinutes = 4) {
  const clock = new ManualClock(0);
  const engine = new FlowEngine({
    clock,
    indexReplies: false,
    snapshot: snapshot([lbRule({ reset: true, idleMinutes })]),
  });
  const ended: { flowId: number; action: string; at: number }[] = [];
  const onExpiry = (a: ExpiryAction): void => {
    ended.push({ flowId: a.flowId, action: a.action, at: clock.now() });
  };
  const scheduler = new DeadlineScheduler(clock, {
    nextDeadline: () => engine.nextDeadline(),
    runDue: (now) => engine.advance(onExpiry, now),
    watch: (ms, sooner) => engine.watchDeadline(ms, sooner),
  });
  scheduler.start();
  return { clock, engine, scheduler, ended };
}

function open(engine: FlowEngine, port: number): number {
  const r = engine.open('Tcp', '192.0.2.7', port, '10.0.0.1', 80);
  assert.ok(r.ok);
  return r.flowId;
}

test('with no flow the scheduler arms no timer at all', () => {
  const { clock, scheduler } = driven();
  assert.equal(clock.pending(), 0);
  assert.equal(scheduler.nextWakeAt, Infinity);
  clock.advance(10 * MIN);
  assert.equal(scheduler.wakeUps, 0);
});

test('a new flow arms the timer; the flow lives through 239,999 ms and is reset at 240,000', () => {
  const { clock, engine, scheduler, ended } = driven();
  const id = open(engine, 40000);
  assert.equal(clock.pending(), 1, 'one timer, armed when the flow was created');
  assert.ok(scheduler.nextWakeAt <= 4 * MIN);
  clock.advance(4 * MIN - 1);
  assert.deepEqual(ended, []);
  assert.equal(engine.flowCount, 1);
  clock.advance(1);
  assert.deepEqual(ended, [{ flowId: id, action: 'reset', at: 4 * MIN }]);
  assert.equal(engine.flowCount, 0);
});

test('one timer for many flows, woken a bounded number of times, each flow ended at its own deadline', () => {
  const { clock, engine, scheduler, ended } = driven();
  const ids: number[] = [];
  for (let i = 0; i < 1000; i++) {
    ids.push(open(engine, 20000 + i));
    clock.advance(100);
  }
  assert.equal(clock.pending(), 1);
  clock.advance(10 * MIN);
  assert.equal(ended.length, 1000);
  for (let i = 0; i < 1000; i++) {
    assert.equal(ended[i]!.flowId, ids[i]);
    assert.equal(ended[i]!.at, i * 100 + 4 * MIN, `flow ${i} ended at its deadline`);
  }
  // Flows 100 ms apart: one wake-up per deadline at most, plus the wheel's level boundaries.
  assert.ok(scheduler.wakeUps <= 1000 + 100, `${scheduler.wakeUps} wake-ups`);
  assert.equal(engine.tombstoneCount, 1000, 'reset flows are remembered for B6');
  clock.advance(15 * MIN);
  assert.equal(engine.tombstoneCount, 0);
  assert.equal(clock.pending(), 0, 'nothing armed once every flow and tombstone is gone');
});

test('a flow due sooner than the armed wake-up re-arms it', () => {
  const { clock, engine, scheduler, ended } = driven(30);
  open(engine, 30000);
  const first = scheduler.nextWakeAt;
  // A shorter timeout (4 minutes) for flows created from now on.
  engine.setSnapshot(snapshot([lbRule({ reset: true, idleMinutes: 4 })]));
  const id = open(engine, 30001);
  assert.ok(scheduler.nextWakeAt < first, 'woken sooner');
  clock.advance(4 * MIN);
  assert.deepEqual(
    ended.map((e) => e.flowId),
    [id],
  );
  assert.equal(clock.pending(), 1, 'still armed for the 30-minute flow');
});

test('activity moves a deadline later without re-arming; the wake-up then finds nothing due and re-arms', () => {
  const { clock, engine, ended } = driven();
  const id = open(engine, 50000);
  clock.advance(3 * MIN);
  assert.ok(engine.activity(id, 'toBackend', 1));
  clock.advance(2 * MIN);
  assert.equal(ended.length, 0, 'kept alive by its activity at 3 minutes');
  clock.advance(2 * MIN);
  assert.deepEqual(
    ended.map((e) => [e.flowId, e.at]),
    [[id, 7 * MIN]],
  );
});

test('stop leaves nothing armed, and a stopped scheduler ignores pokes', () => {
  const { clock, engine, scheduler } = driven();
  open(engine, 60000);
  scheduler.stop();
  assert.equal(clock.pending(), 0);
  open(engine, 60001);
  scheduler.poke();
  assert.equal(clock.pending(), 0);
});
