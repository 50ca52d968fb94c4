/**
 * Flow records in typed arrays, no object per flow, so a million flows cost tens of
 * megabytes and nothing for the garbage collector to trace. A slot holds a live flow or a
 * tombstone (an expired flow remembered for a while, B6). The fields a packet touches are interleaved
 * per slot (one 64-byte record of 32-bit words, one record of doubles, the key) rather than
 * one array per field: with a million flows every array touched is a cache miss, and
 * docs/benchmarks.md shows the difference.
 *
 * Keys live in an open-addressing index (linear probing, backward-shift deletion, load at
 * most one half) keyed by the hash of the 5-tuple. A flow can be found by its original
 * tuple (client to frontend) and, when the owner supplies `replyKey`, by the tuple of its
 * replies (backend to client), which is derived from the flow and never stored.
 */
import { KEY_WORDS, hashKey, keysEqual } from './flow-key.js';

export const DIR_ORIG = 0;
export const DIR_REPLY = 1;
export type Dir = typeof DIR_ORIG | typeof DIR_REPLY;

const MIN_CAPACITY = 1024;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** 32-bit words per slot in `rec`. */
export const REC = 16;
export const R_KEYHASH = 0;
export const R_REPLYHASH = 1;
/** state (bits 0-7), meta (bits 8-15), index membership (bits 16-17), pool marks (bits 18-19). */
export const R_FLAGS = 2;
/** Window scale per direction plus one (0: no option), bits 0-7 and 8-15. */
export const R_WSCALE = 3;
export const R_GEN = 4;
export const R_RULE = 5;
export const R_MEMBER = 6;
export const R_BACKEND_PORT = 7;
/** Per direction (add the direction): highest sequence number + length sent (conntrack's td_end). */
export const R_END = 8;
/** Per direction: highest ACK sent (td_maxack), i.e. what this side has acknowledged. */
export const R_MAXACK = 10;
/** Per direction: largest window advertised, scaled (td_maxwin). */
export const R_MAXWIN = 12;
/** Per direction: sequence end of this side's FIN. */
export const R_FINEND = 14;

/** Doubles per slot in `num`. */
export const NUM = 7;
export const N_CREATED = 0;
export const N_LAST_SEEN = 1;
/** Per direction: payload bytes, packets. */
export const N_BYTES = 2;
export const N_PACKETS = 4;
/**
 * The idle timeout in force at the flow's last packet. Kept per flow because a changed rule
 * timeout reaches a flow only with its next packet; beside `N_LAST_SEEN`, since both are
 * written on every packet.
 */
export const N_IDLE_MS = 6;

export class FlowTable {
  /** Slots in use (live flows and tombstones). */
  used = 0;
  capacity = 0;
  /** Ids are `generation * idSpan + slot`: a stale id never reaches a reused slot. */
  readonly idSpan: number;

  keys = new Uint32Array(0);
  rec = new Uint32Array(0);
  num = new Float64Array(0);

  private free = new Int32Array(0);
  private freeCount = 0;
  private index = new Int32Array(0);
  private mask = 0;
  private indexed = 0;
  /** For find's comparisons; insert builds reply keys in its own buffer, which find must not clobber. */
  private readonly probeKey = new Uint32Array(KEY_WORDS);
  private readonly replyScratch = new Uint32Array(KEY_WORDS);

  constructor(
    readonly maxSlots: number,
    private readonly replyKey: ((slot: number, out: Uint32Array, off: number) => void) | null,
    private readonly onGrow: (capacity: number) => void = () => {},
    initialCapacity = MIN_CAPACITY,
  ) {
    if (!(maxSlots >= 1)) throw new RangeError(`maxSlots must be >= 1, got ${maxSlots}`);
    this.idSpan = nextPow2(maxSlots);
    this.grow(Math.min(maxSlots, Math.max(1, initialCapacity)));
  }

  /** The slot an id refers to, or -1 when the id is stale or unknown. */
  slotOf(id: number): number {
    if (!Number.isInteger(id) || id < 0) return -1;
    const slot = id % this.idSpan;
    if (slot >= this.capacity) return -1;
    const g = (id - slot) / this.idSpan;
    return this.rec[slot * REC + R_GEN] === g && this.state(slot) !== 0 ? slot : -1;
  }

  idOf(slot: number): number {
    return this.rec[slot * REC + R_GEN]! * this.idSpan + slot;
  }

  state(slot: number): number {
    return this.rec[slot * REC + R_FLAGS]! & 0xff;
  }

  setState(slot: number, state: number): void {
    const i = slot * REC + R_FLAGS;
    this.rec[i] = (this.rec[i]! & ~0xff) | state;
  }

  meta(slot: number): number {
    return (this.rec[slot * REC + R_FLAGS]! >>> 8) & 0xff;
  }

  setMeta(slot: number, meta: number): void {
    const i = slot * REC + R_FLAGS;
    this.rec[i] = (this.rec[i]! & ~0xff00) | (meta << 8);
  }

  /** The pool marks of a record (engine-pool.ts: adopted, asking the pool). */
  pool(slot: number): number {
    return (this.rec[slot * REC + R_FLAGS]! >>> 18) & 3;
  }

  setPool(slot: number, bits: number): void {
    const i = slot * REC + R_FLAGS;
    this.rec[i] = (this.rec[i]! & ~0xc0000) | (bits << 18);
  }

  private inIndex(slot: number): number {
    return (this.rec[slot * REC + R_FLAGS]! >>> 16) & 3;
  }

  private setInIndex(slot: number, bits: number): void {
    const i = slot * REC + R_FLAGS;
    this.rec[i] = (this.rec[i]! & ~0x30000) | (bits << 16);
  }

  /** The window scale a direction's SYN offered, -1 when none. */
  wscale(slot: number, dir: number): number {
    return ((this.rec[slot * REC + R_WSCALE]! >>> (dir * 8)) & 0xff) - 1;
  }

  setWscale(slot: number, dir: number, scale: number): void {
    const i = slot * REC + R_WSCALE;
    const shift = dir * 8;
    this.rec[i] = (this.rec[i]! & ~(0xff << shift)) | ((scale + 1) << shift);
  }

  ruleOf(slot: number): number {
    return this.rec[slot * REC + R_RULE]!;
  }

  memberOf(slot: number): number {
    return this.rec[slot * REC + R_MEMBER]!;
  }

  backendPortOf(slot: number): number {
    return this.rec[slot * REC + R_BACKEND_PORT]!;
  }

  lastSeen(slot: number): number {
    return this.num[slot * NUM + N_LAST_SEEN]!;
  }

  idleMs(slot: number): number {
    return this.num[slot * NUM + N_IDLE_MS]!;
  }

  /** Takes a free slot for a new record (state must then be set non-zero), or -1 when full. */
  alloc(): number {
    if (this.freeCount === 0) {
      if (this.capacity >= this.maxSlots) return -1;
      this.grow(Math.min(this.maxSlots, this.capacity * 2));
    }
    const slot = this.free[--this.freeCount]!;
    this.used++;
    return slot;
  }

  /** Returns a slot to the free list; the caller has already removed it from the index. */
  release(slot: number): void {
    const b = slot * REC;
    const gen = (this.rec[b + R_GEN]! + 1) >>> 0;
    this.rec.fill(0, b, b + REC);
    this.rec[b + R_GEN] = gen;
    this.free[this.freeCount++] = slot;
    this.used--;
  }

  /** Finds a key: `slot * 2 + dir`, or -1. */
  find(words: Uint32Array, off: number, hash = hashKey(words, off)): number {
    const index = this.index;
    const mask = this.mask;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const e = index[i]!;
      if (e === -1) return -1;
      const slot = e >> 1;
      if (e & 1) {
        if (this.rec[slot * REC + R_REPLYHASH] === hash && this.replyKey !== null) {
          this.replyKey(slot, this.probeKey, 0);
          if (keysEqual(this.probeKey, 0, words, off)) return e;
        }
      } else if (
        this.rec[slot * REC + R_KEYHASH] === hash &&
        keysEqual(this.keys, slot * KEY_WORDS, words, off)
      ) {
        return e;
      }
    }
  }

  /**
   * Indexes a slot whose key (and member/ports, for the reply tuple) are filled in.
   * Returns false, indexing nothing, when the original tuple is already present.
   */
  insert(slot: number): boolean {
    const h = hashKey(this.keys, slot * KEY_WORDS);
    if (this.find(this.keys, slot * KEY_WORDS, h) !== -1) return false;
    this.ensureIndexRoom(2);
    this.rec[slot * REC + R_KEYHASH] = h;
    this.put(slot * 2, h);
    this.setInIndex(slot, 1);
    if (this.replyKey !== null) {
      this.replyKey(slot, this.replyScratch, 0);
      const rh = hashKey(this.replyScratch, 0);
      // A reply tuple that clashes with another flow's is left out: that flow keeps it.
      if (this.find(this.replyScratch, 0, rh) === -1) {
        this.rec[slot * REC + R_REPLYHASH] = rh;
        this.put(slot * 2 + 1, rh);
        this.setInIndex(slot, 3);
      }
    }
    return true;
  }

  /** Removes a slot's entries from the index. */
  unindex(slot: number): void {
    const bits = this.inIndex(slot);
    if (bits & 1) this.remove(slot * 2, this.rec[slot * REC + R_KEYHASH]!);
    if (bits & 2) this.remove(slot * 2 + 1, this.rec[slot * REC + R_REPLYHASH]!);
    this.setInIndex(slot, 0);
  }

  /** Approximate bytes held by the table's arrays. */
  byteSize(): number {
    let n = this.index.byteLength + this.free.byteLength;
    for (const a of this.arrays()) n += a.byteLength;
    return n;
  }

  private arrays(): ArrayBufferView[] {
    return [this.keys, this.rec, this.num];
  }

  private put(e: number, hash: number): void {
    const index = this.index;
    const mask = this.mask;
    let i = hash & mask;
    while (index[i] !== -1) i = (i + 1) & mask;
    index[i] = e;
    this.indexed++;
  }

  private entryHash(e: number): number {
    return this.rec[(e >> 1) * REC + (e & 1 ? R_REPLYHASH : R_KEYHASH)]!;
  }

  private remove(e: number, hash: number): void {
    const index = this.index;
    const mask = this.mask;
    let i = hash & mask;
    while (index[i] !== e) {
      if (index[i] === -1) return;
      i = (i + 1) & mask;
    }
    // Backward-shift deletion keeps every probe chain unbroken without tombstone markers.
    for (let j = (i + 1) & mask; index[j] !== -1; j = (j + 1) & mask) {
      const home = this.entryHash(index[j]!) & mask;
      const between = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!between) {
        index[i] = index[j]!;
        i = j;
      }
    }
    index[i] = -1;
    this.indexed--;
  }

  private ensureIndexRoom(extra: number): void {
    if (this.index.length > 0 && (this.indexed + extra) * 2 <= this.index.length) return;
    const size = nextPow2(Math.max(16, (this.indexed + extra) * 4));
    this.index = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    this.indexed = 0;
    for (let s = 0; s < this.capacity; s++) {
      const bits = this.inIndex(s);
      if (bits & 1) this.put(s * 2, this.rec[s * REC + R_KEYHASH]!);
      if (bits & 2) this.put(s * 2 + 1, this.rec[s * REC + R_REPLYHASH]!);
    }
  }

  private grow(capacity: number): void {
    const old = this.capacity;
    const copy = <T extends { length: number; set(a: T): void }>(
      a: T,
      make: (n: number) => T,
      per = 1,
    ): T => {
      const b = make(capacity * per);
      b.set(a);
      return b;
    };
    this.keys = copy(this.keys, (n) => new Uint32Array(n), KEY_WORDS);
    this.rec = copy(this.rec, (n) => new Uint32Array(n), REC);
    this.num = copy(this.num, (n) => new Float64Array(n), NUM);
    const free = new Int32Array(capacity);
    free.set(this.free.subarray(0, this.freeCount));
    // Pushed highest first, so the lowest new slot is handed out first.
    for (let s = capacity - 1; s >= old; s--) free[this.freeCount++] = s;
    this.free = free;
    this.capacity = capacity;
    this.ensureIndexRoom(0);
    this.onGrow(capacity);
  }
}
