/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016) with weights. Each member walks its
 * own permutation of the table and claims free entries in turn; a member takes a turn each
 * time its accumulated weight reaches the largest weight, so entries are shared in
 * proportion to weight. When a member leaves, the others keep nearly all of their entries,
 * which is what lets a pool change without moving the flows of members that stayed.
 */
import { hashString } from './flow-key.js';

/** A prime: every skip value is then coprime with the size and each permutation is complete. */
export const MAGLEV_TABLE_SIZE = 65537;

export interface MaglevMember {
  /** Stable identity: a member keeps its permutation across rebuilds because of it. */
  readonly key: string;
  /** Relative share; 0 takes no entries. */
  readonly weight: number;
}

const OFFSET_SEED = 0x2f0b3a1d;
const SKIP_SEED = 0x61c88647;

/**
 * Builds the lookup table: entry i holds the index (into `members`) of the member that owns
 * hash values equal to i modulo the size; every entry is -1 when no member has weight.
 * The result depends only on the set of members and weights, not on their order.
 */
export function buildMaglevTable(members: readonly MaglevMember[], size = MAGLEV_TABLE_SIZE): Int32Array {
  const table = new Int32Array(size).fill(-1);
  // Order by key so that the input order cannot change who wins a contested entry.
  const order = members
    .map((m, i) => ({ m, i }))
    .filter((x) => x.m.weight > 0 && Number.isFinite(x.m.weight))
    .sort((a, b) => (a.m.key < b.m.key ? -1 : a.m.key > b.m.key ? 1 : a.i - b.i));
  const n = order.length;
  if (n === 0) return table;
  const pos = new Float64Array(n);
  const skip = new Float64Array(n);
  const credit = new Float64Array(n);
  const weight = new Float64Array(n);
  let maxWeight = 0;
  for (let j = 0; j < n; j++) {
    const key = order[j]!.m.key;
    pos[j] = hashString(key, OFFSET_SEED) % size;
    skip[j] = (hashString(key, SKIP_SEED) % (size - 1)) + 1;
    weight[j] = order[j]!.m.weight;
    if (weight[j]! > maxWeight) maxWeight = weight[j]!;
  }
  let filled = 0;
  for (;;) {
    for (let j = 0; j < n; j++) {
      credit[j] = credit[j]! + weight[j]!;
      if (credit[j]! < maxWeight) continue;
      credit[j] = credit[j]! - maxWeight;
      let c = pos[j]!;
      while (table[c] !== -1) c = (c + skip[j]!) % size;
      table[c] = order[j]!.i;
      pos[j] = (c + skip[j]!) % size;
      if (++filled === size) return table;
    }
  }
}

/** The member index for a 32-bit hash. */
export function maglevLookup(table: Int32Array, hash: number): number {
  return table[(hash >>> 0) % table.length]!;
}
