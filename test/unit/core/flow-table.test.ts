import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FlowKey, KEY_WORDS, PROTO_TCP, hashKey } from '../../../src/core/flow-key.js';
import { FlowTable } from '../../../src/core/flow-table.js';

function keyOf(i: number): FlowKey {
  return new FlowKey().setV4(PROTO_TCP, 0x64400000 + (i >>> 16), i & 0xffff, 0x0a000001, 80);
}

function add(table: FlowTable, key: FlowKey): number {
  const s = table.alloc();
  table.keys.set(key.words, s * KEY_WORDS);
  table.setState(s, 1);
  assert.ok(table.insert(s));
  return s;
}

test('flow table: inserts, finds and removes keys in any order without losing others', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 300 }),
      fc.array(fc.nat(), { maxLength: 300 }),
      (ids, removals) => {
        const table = new FlowTable(400, null, undefined, 4);
        const slotOf = new Map<number, number>();
        for (const i of ids) slotOf.set(i, add(table, keyOf(i)));
        const removed = new Set<number>();
        for (const r of removals) {
          const i = ids[r % ids.length]!;
          if (removed.has(i)) continue;
          removed.add(i);
          const s = slotOf.get(i)!;
          table.unindex(s);
          table.release(s);
        }
        for (const i of ids) {
          const k = keyOf(i);
          const found = table.find(k.words, 0);
          if (removed.has(i)) assert.equal(found, -1);
          else assert.equal(found, slotOf.get(i)! * 2);
        }
        assert.equal(table.used, ids.length - removed.size);
      },
    ),
    { numRuns: 100 },
  );
});

test('flow table: a duplicate original tuple is refused; a stale id resolves to nothing', () => {
  const table = new FlowTable(10, null);
  const s = add(table, keyOf(1));
  const id = table.idOf(s);
  assert.equal(table.slotOf(id), s);
  const dup = table.alloc();
  table.keys.set(keyOf(1).words, dup * KEY_WORDS);
  table.setState(dup, 1);
  assert.equal(table.insert(dup), false);
  table.unindex(s);
  table.release(s);
  assert.equal(table.slotOf(id), -1);
  const again = add(table, keyOf(2));
  assert.notEqual(table.idOf(again), id);
});

test('flow table: reply tuples whose hashes collide are both indexed and found', () => {
  // Find two different keys with the same 32-bit hash (a birthday search).
  const seen = new Map<number, number>();
  let pair: [number, number] | undefined;
  for (let i = 0; pair === undefined; i++) {
    const h = hashKey(keyOf(i).words, 0);
    const j = seen.get(h);
    if (j !== undefined) pair = [j, i];
    else seen.set(h, i);
  }
  const replies = [keyOf(pair[0]), keyOf(pair[1])];
  const table = new FlowTable(10, (slot, out, off) => out.set(replies[slot]!.words, off));
  const a = add(table, new FlowKey().setV4(PROTO_TCP, 1, 1, 2, 2));
  const b = add(table, new FlowKey().setV4(PROTO_TCP, 1, 2, 2, 2));
  assert.equal(table.find(replies[0]!.words, 0), a * 2 + 1);
  assert.equal(table.find(replies[1]!.words, 0), b * 2 + 1);
});
