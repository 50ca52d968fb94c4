import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAGLEV_TABLE_SIZE, buildMaglevTable, maglevLookup } from '../../../src/core/maglev.js';
import { distributionMode } from '../../../src/core/distribution.js';
import { FlowKey, PROTO_TCP } from '../../../src/core/flow-key.js';

const M = MAGLEV_TABLE_SIZE;
const names = (n: number, prefix = 'm') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const owners = (keys: string[], table: Int32Array) => Array.from(table, (i) => keys[i]!);

function shares(table: Int32Array, n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const i of table) c[i]!++;
  return c;
}

test('Maglev is deterministic and independent of member order', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 12 }),
      (keys) => {
        const a = buildMaglevTable(keys.map((key) => ({ key, weight: 1 })));
        const reversed = [...keys].reverse();
        const b = buildMaglevTable(reversed.map((key) => ({ key, weight: 1 })));
        assert.deepEqual(owners(keys, a), owners(reversed, b));
        assert.ok(a.every((x) => x >= 0 && x < keys.length));
      },
    ),
    { numRuns: 20 },
  );
});

test('Maglev balances equal weights within 1%', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 40 }), fc.string({ maxLength: 6 }), (n, prefix) => {
      const keys = names(n, `/pool/${prefix}/`);
      const c = shares(buildMaglevTable(keys.map((key) => ({ key, weight: 1 }))), n);
      const ideal = M / n;
      for (const x of c) assert.ok(Math.abs(x - ideal) <= ideal * 0.01, `${x} vs ${ideal}`);
    }),
    { numRuns: 25 },
  );
});

test('Maglev moves only about 1/N of the table when one of N members leaves, and only to the others', () => {
  fc.assert(
    fc.property(fc.integer({ min: 3, max: 30 }), fc.nat(), (n, pick) => {
      const keys = names(n, 'backend-');
      const gone = keys[pick % n]!;
      const before = owners(keys, buildMaglevTable(keys.map((key) => ({ key, weight: 1 }))));
      const rest = keys.filter((k) => k !== gone);
      const after = owners(rest, buildMaglevTable(rest.map((key) => ({ key, weight: 1 }))));
      let moved = 0;
      let movedFromStayers = 0;
      for (let i = 0; i < M; i++) {
        if (before[i] !== after[i]) {
          moved++;
          if (before[i] !== gone) movedFromStayers++;
        }
      }
      // The leaver's share must move; the others keep nearly all of theirs.
      assert.ok(moved >= M / n - M * 0.01);
      assert.ok(moved / M <= (1 / n) * 1.6 + 0.005, `moved ${(moved / M).toFixed(4)} with n=${n}`);
      assert.ok(
        movedFromStayers / M <= 0.6 / n + 0.005,
        `stayers moved ${(movedFromStayers / M).toFixed(4)}`,
      );
    }),
    { numRuns: 20 },
  );
});

test('Maglev honours weights', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 2, maxLength: 8 }), (weights) => {
      const keys = names(weights.length, 'w');
      const c = shares(
        buildMaglevTable(keys.map((key, i) => ({ key, weight: weights[i]! }))),
        weights.length,
      );
      const total = weights.reduce((a, b) => a + b, 0);
      for (let i = 0; i < weights.length; i++) {
        const ideal = (M * weights[i]!) / total;
        assert.ok(Math.abs(c[i]! - ideal) <= M * 0.01, `member ${i}: ${c[i]} vs ${ideal.toFixed(0)}`);
      }
    }),
    { numRuns: 30 },
  );
});

test('Maglev: zero weight takes nothing; no members leaves every entry empty', () => {
  const t = buildMaglevTable([
    { key: 'a', weight: 1 },
    { key: 'b', weight: 0 },
  ]);
  assert.ok(t.every((x) => x === 0));
  assert.equal(maglevLookup(buildMaglevTable([], 7), 12345), -1);
});

test('5-tuple hashing spreads flows evenly over a Maglev table', () => {
  const keys = names(3, 'k');
  const table = buildMaglevTable(keys.map((key) => ({ key, weight: 1 })));
  const hash = distributionMode('Default')!;
  const counts = [0, 0, 0];
  const k = new FlowKey();
  const n = 60_000;
  for (let i = 0; i < n; i++) {
    k.setV4(PROTO_TCP, 0xc0000200 + (i % 251), 1024 + i, 0x0a000001, 80);
    counts[maglevLookup(table, hash(k.words, 0, 7))]!++;
  }
  for (const c of counts) assert.ok(Math.abs(c - n / 3) < (n / 3) * 0.03, `${c}`);
});
