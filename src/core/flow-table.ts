/**
 * Flow records as struct-of-arrays: one typed-array element per field per slot, no object
 * per flow, so a million flows cost tens of megabytes and nothing for the garbage collector
 * to trace. A slot holds a live flow or a tombstone (an expired flow remembered for B6).
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

export class FlowTable {
  /** Slots in use (live flows and tombstones). */
  used = 0;
  capacity = 0;
  /** Ids are `generation * idSpan + slot`: a stale id never reaches a reused slot. */
  readonly idSpan: number;

  keys = new Uint32Array(0);
  keyHash = new Uint32Array(0);
  replyHash = new Uint32Array(0);
  /** Bit 0: the original tuple is in the index; bit 1: the reply tuple is (it is not when it
   * would clash with another flow's). */
  inIndex = new Uint8Array(0);
  state = new Uint8Array(0);
  meta = new Uint8Array(0);
  /** Per direction (index slot * 2 + dir): window scale from the SYN, -1 when absent. */
  wscale = new Int8Array(0);
  /** Per direction: highest sequence number + length sent (conntrack's td_end). */
  end = new Uint32Array(0);
  /** Per direction: highest ACK sent (td_maxack), i.e. what this side has acknowledged. */
  maxAck = new Uint32Array(0);
  /** Per direction: largest window advertised, scaled (td_maxwin). */
  maxWin = new Uint32Array(0);
  /** Per direction: sequence end of this side's FIN. */
  finEnd = new Uint32Array(0);
  created = new Float64Array(0);
  lastSeen = new Float64Array(0);
  bytes = new Float64Array(0);
  packets = new Float64Array(0);
  rule = new Int32Array(0);
  member = new Int32Array(0);
  backendPort = new Uint16Array(0);
  gen = new Uint32Array(0);

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
    return this.gen[slot] === g && this.state[slot] !== 0 ? slot : -1;
  }

  idOf(slot: number): number {
    return this.gen[slot]! * this.idSpan + slot;
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
    this.state[slot] = 0;
    this.meta[slot] = 0;
    this.gen[slot] = (this.gen[slot]! + 1) >>> 0;
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
        if (this.replyHash[slot] === hash && this.replyKey !== null) {
          this.replyKey(slot, this.probeKey, 0);
          if (keysEqual(this.probeKey, 0, words, off)) return e;
        }
      } else if (this.keyHash[slot] === hash && keysEqual(this.keys, slot * KEY_WORDS, words, off)) return e;
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
    this.keyHash[slot] = h;
    this.put(slot * 2, h);
    this.inIndex[slot] = 1;
    if (this.replyKey !== null) {
      this.replyKey(slot, this.replyScratch, 0);
      const rh = hashKey(this.replyScratch, 0);
      // A reply tuple that clashes with another flow's is left out: that flow keeps it.
      if (this.find(this.replyScratch, 0, rh) === -1) {
        this.replyHash[slot] = rh;
        this.put(slot * 2 + 1, rh);
        this.inIndex[slot] = 3;
      }
    }
    return true;
  }

  /** Removes a slot's entries from the index. */
  unindex(slot: number): void {
    const bits = this.inIndex[slot]!;
    if (bits & 1) this.remove(slot * 2, this.keyHash[slot]!);
    if (bits & 2) this.remove(slot * 2 + 1, this.replyHash[slot]!);
    this.inIndex[slot] = 0;
  }

  /** Approximate bytes held by the table's arrays. */
  byteSize(): number {
    let n = this.index.byteLength + this.free.byteLength;
    for (const a of this.arrays()) n += a.byteLength;
    return n;
  }

  private arrays(): ArrayBufferView[] {
    return [
      this.keys,
      this.keyHash,
      this.replyHash,
      this.inIndex,
      this.state,
      this.meta,
      this.wscale,
      this.end,
      this.maxAck,
      this.maxWin,
      this.finEnd,
      this.created,
      this.lastSeen,
      this.bytes,
      this.packets,
      this.rule,
      this.member,
      this.backendPort,
      this.gen,
    ];
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
    return e & 1 ? this.replyHash[e >> 1]! : this.keyHash[e >> 1]!;
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
      const bits = this.inIndex[s]!;
      if (bits & 1) this.put(s * 2, this.keyHash[s]!);
      if (bits & 2) this.put(s * 2 + 1, this.replyHash[s]!);
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
    this.keyHash = copy(this.keyHash, (n) => new Uint32Array(n));
    this.replyHash = copy(this.replyHash, (n) => new Uint32Array(n));
    this.inIndex = copy(this.inIndex, (n) => new Uint8Array(n));
    this.state = copy(this.state, (n) => new Uint8Array(n));
    this.meta = copy(this.meta, (n) => new Uint8Array(n));
    this.wscale = copy(this.wscale, (n) => new Int8Array(n), 2);
    this.end = copy(this.end, (n) => new Uint32Array(n), 2);
    this.maxAck = copy(this.maxAck, (n) => new Uint32Array(n), 2);
    this.maxWin = copy(this.maxWin, (n) => new Uint32Array(n), 2);
    this.finEnd = copy(this.finEnd, (n) => new Uint32Array(n), 2);
    this.created = copy(this.created, (n) => new Float64Array(n));
    this.lastSeen = copy(this.lastSeen, (n) => new Float64Array(n));
    this.bytes = copy(this.bytes, (n) => new Float64Array(n), 2);
    this.packets = copy(this.packets, (n) => new Float64Array(n), 2);
    this.rule = copy(this.rule, (n) => new Int32Array(n));
    this.member = copy(this.member, (n) => new Int32Array(n));
    this.backendPort = copy(this.backendPort, (n) => new Uint16Array(n));
    this.gen = copy(this.gen, (n) => new Uint32Array(n));
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
