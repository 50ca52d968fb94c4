import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { DEFAULT_TOMBSTONE_TTL_MS, FlowEngine } from '../../../src/core/engine.js';
import { lbRule, snapshot } from './snapshot-helpers.js';
import { advance } from './tcp-driver.js';

/** The tombstones the live page lists: newest first, how late packets are answered, time left. */

const MIN = 60_000;

test('tombstones: listed newest first with what a late packet gets and the time left, then gone', () => {
  const clock = new ManualClock(0);
  const engine = new FlowEngine({
    clock,
    tickMs: 1,
    indexReplies: false,
    snapshot: snapshot([
      lbRule({ name: 'reset', frontendPort: 80, reset: true }),
      lbRule({ name: 'drop', frontendPort: 81, reset: false }),
    ]),
  });
  const open = (port: number, clientPort: number): number => {
    const r = engine.open('Tcp', '192.0.2.7', clientPort, '10.0.0.1', port);
    assert.ok(r.ok);
    return r.flowId;
  };
  const reset = open(80, 50000);
  clock.advance(MIN);
  const drop = open(81, 50001);
  const live = open(80, 50002);
  assert.deepEqual(engine.tombstones(), []);
  clock.advance(3 * MIN);
  engine.activity(live, 'toBackend', 1);
  assert.deepEqual(
    advance(engine).map((a) => [a.flowId, a.action]),
    [[reset, 'reset']],
  );
  clock.advance(MIN);
  assert.deepEqual(
    advance(engine).map((a) => [a.flowId, a.action]),
    [[drop, 'drop']],
  );
  const listed = engine.tombstones();
  assert.deepEqual(
    listed.map((t) => [t.id, t.state, t.lateReset, t.ruleName]),
    [
      [drop, 'TOMBSTONE', false, 'drop'],
      [reset, 'TOMBSTONE', true, 'reset'],
    ],
  );
  assert.equal(listed[0]!.msLeft, DEFAULT_TOMBSTONE_TTL_MS);
  assert.equal(listed[1]!.msLeft, DEFAULT_TOMBSTONE_TTL_MS - MIN);
  assert.equal(listed[1]!.timeoutMs, DEFAULT_TOMBSTONE_TTL_MS);
  assert.deepEqual(
    engine.tombstones(1).map((t) => t.id),
    [drop],
  );
  assert.deepEqual(
    engine.flows().map((f) => f.id),
    [live],
    'tombstones are not live flows',
  );
  clock.advance(DEFAULT_TOMBSTONE_TTL_MS);
  engine.activity(live, 'toBackend', 1);
  advance(engine);
  assert.deepEqual(engine.tombstones(), []);
});
