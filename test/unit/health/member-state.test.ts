import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  INITIAL_COUNTERS,
  nextCounters,
  type Counters,
  type Verdict,
} from '../../../src/health/member-state.js';

function run(verdicts: readonly Verdict[], threshold: number, from: Counters = INITIAL_COUNTERS): string[] {
  const states: string[] = [];
  let c = from;
  for (const v of verdicts) {
    c = nextCounters(c, v, threshold);
    states.push(c.state);
  }
  return states;
}

const S: Verdict = 'success';
const F: Verdict = 'failure';
const X: Verdict = 'fastFailure';

test('a member with no result yet takes its first result as it is', () => {
  assert.deepEqual(run([S], 3), ['up']);
  assert.deepEqual(run([F], 3), ['down']);
  assert.deepEqual(run([X], 3), ['down']);
});

test('threshold consecutive failures take an up member down, and not one fewer', () => {
  assert.deepEqual(run([S, F, F, F], 3), ['up', 'up', 'up', 'down']);
  assert.deepEqual(run([S, F, F], 3), ['up', 'up', 'up']);
});

test('a success between failures starts the count again', () => {
  assert.deepEqual(run([S, F, F, S, F, F, F], 3), ['up', 'up', 'up', 'up', 'up', 'up', 'down']);
});

test('threshold consecutive successes bring a down member back, a failure restarts the count', () => {
  assert.deepEqual(run([F, S, S], 2), ['down', 'down', 'up']);
  assert.deepEqual(run([F, S, F, S, S], 2), ['down', 'down', 'down', 'down', 'up']);
});

test('a fast-down failure takes an up member out at once whatever the threshold', () => {
  assert.deepEqual(run([S, X], 5), ['up', 'down']);
  // ...and coming back still needs threshold successes.
  assert.deepEqual(run([S, X, S, S, S], 3), ['up', 'down', 'down', 'down', 'up']);
});

test('threshold 1 flips on every result', () => {
  assert.deepEqual(run([S, F, S, F], 1), ['up', 'down', 'up', 'down']);
});

test('counters count consecutive results of one kind only', () => {
  const c = [S, S, F, F, F].reduce((acc, v) => nextCounters(acc, v, 10), INITIAL_COUNTERS);
  assert.deepEqual(c, { state: 'up', successes: 0, failures: 3 });
});

test('a threshold below 1 behaves as 1 rather than never flipping', () => {
  assert.deepEqual(run([S, F], 0), ['up', 'down']);
});
