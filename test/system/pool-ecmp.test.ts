import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { EcmpBench, compareMoves, movedFraction, tuples, type GroupType } from '../../src/lab/ecmp-moves.js';
import { poolTest, poolUnavailable } from '../helpers/pool-lab.js';

/**
 * How the kernel's ECMP moves flows when a next hop goes or comes, on a router namespace of this
 * test's own (routes only, nothing sent): hash-threshold, the next-hop group FRR installs, moves
 * flows of surviving next hops; a resilient group moves none of them. The figures are those of
 * docs/scale-out.md (bench/pool/ecmp-moves.ts measures more).
 */

const FLOWS = 3000;
const HASH: GroupType = { kind: 'hash-threshold' };
const RESILIENT: GroupType = { kind: 'resilient', buckets: 256, idleTimerS: 0, unbalancedTimerS: 0 };
let bench: EcmpBench;
const flows = tuples(FLOWS, '198.18.1');

before(() => {
  if (poolUnavailable() !== undefined) return;
  bench = new EcmpBench(`slpool${process.pid}e`, 4);
  bench.build();
});

after(() => bench?.destroy());

/** Survivors' moved fraction when each of 1..n is removed in turn. */
function removals(n: number, type: GroupType): number[] {
  const all = Array.from({ length: n }, (_, i) => i + 1);
  return all.map((gone) => {
    const id = bench.route(all, type);
    const before = bench.picks(flows);
    bench.change(
      id,
      all.filter((k) => k !== gone),
      type,
    );
    const m = compareMoves(before, bench.picks(flows));
    bench.reset();
    assert.equal(m.orphaned + m.survivorFlows, FLOWS);
    return m.survivorMoved / m.survivorFlows;
  });
}

const pct = (v: number[]): string => v.map((x) => `${(100 * x).toFixed(1)}%`).join(', ');

poolTest('hash-threshold ECMP: removing one of three next hops moves flows of the survivors', async (t) => {
  const moved = removals(3, HASH);
  t.diagnostic(`3 -> 2, survivors' flows moved when next hop 1, 2, 3 goes: ${pct(moved)}`);
  // Hash ranges [0,1/3) [1/3,2/3) [2/3,1) become halves: the first or last going moves a quarter.
  assert.ok(Math.abs(moved[0]! - 0.25) < 0.04, `first: ${moved[0]}`);
  assert.ok(moved[1]! < 0.01, `middle: ${moved[1]}`);
  assert.ok(Math.abs(moved[2]! - 0.25) < 0.04, `last: ${moved[2]}`);
  const four = removals(4, HASH);
  t.diagnostic(`4 -> 3: ${pct(four)}`);
  assert.ok(Math.max(...four) > 0.1);
});

poolTest('resilient next-hop groups: removing a next hop moves no flow of a survivor', async (t) => {
  for (const n of [3, 4]) {
    const moved = removals(n, RESILIENT);
    t.diagnostic(`${n} -> ${n - 1}, survivors' flows moved: ${pct(moved)}`);
    assert.deepEqual(
      moved.map((m) => m === 0),
      moved.map(() => true),
    );
  }
  // The orphans spread over every survivor.
  const id = bench.route([1, 2, 3], RESILIENT);
  const before = bench.picks(flows);
  bench.change(id, [1, 3], RESILIENT);
  const m = compareMoves(before, bench.picks(flows));
  bench.reset();
  const to = Object.values(m.movedTo);
  assert.equal(to.length, 2);
  for (const n of to) assert.ok(n > m.orphaned * 0.25, `orphans split ${JSON.stringify(m.movedTo)}`);
});

poolTest(
  'adding a next hop: hash-threshold moves half the flows, a resilient group only those the new one takes',
  async (t) => {
    const rows: string[] = [];
    for (const [name, type] of [
      ['hash-threshold', HASH],
      ['resilient', RESILIENT],
    ] as const) {
      const id = bench.route([1, 2], type);
      const before = bench.picks(flows);
      bench.change(id, [1, 2, 3], type);
      const after = bench.picks(flows);
      bench.reset();
      const moved = movedFraction(before, after);
      const toNew = after.filter((a) => a === '198.18.13.2').length / FLOWS;
      rows.push(`${name}: ${(100 * moved).toFixed(1)}% moved, ${(100 * toNew).toFixed(1)}% onto the new one`);
      if (name === 'hash-threshold') assert.ok(moved > 0.4, `${moved}`);
      else assert.ok(Math.abs(moved - toNew) < 1e-9 && Math.abs(toNew - 1 / 3) < 0.05, `${moved} ${toNew}`);
    }
    t.diagnostic(`2 -> 3: ${rows.join('; ')}`);
  },
);
