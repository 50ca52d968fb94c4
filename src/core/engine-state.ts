/**
 * The flow engine's shared state: the flow table and its timing wheel, the path and member
 * runtimes, the SNAT allocator, the counters, and the few facts about a record that every part
 * of the engine reads (its timeout in its state, its deadline, its reply tuple). The parts of
 * the engine (records, expiry, classifier, connections, views) each take this and own no state
 * of their own beyond scratch objects.
 */
import type { Clock } from './clock.js';
import { Members } from './engine-members.js';
import { PathRuntimes, type PathRuntime } from './engine-paths.js';
import { POOL_ASKING, PoolRuntime, type PoolOptions } from './engine-pool.js';
import { emptyStats, type EngineStats, type FlowEventSink } from './events.js';
import type { RuntimeSnapshot } from './snapshot.js';
import { KEY_WORDS } from './flow-key.js';
import { FlowTable, NUM, N_BYTES, N_PACKETS } from './flow-table.js';
import { SnatAllocator, snatPortOf, snatSpaceOf } from './snat-alloc.js';
import {
  META_FLOATING_IP,
  META_OUTBOUND,
  ST_CLOSED,
  ST_TIME_WAIT,
  ST_TOMBSTONE,
  ST_UDP,
} from './tcp-state.js';
import { TimerWheel } from './timer-wheel.js';

export const DEFAULT_UDP_TIMEOUT_MS = 4 * 60_000;
export const DEFAULT_TOMBSTONE_TTL_MS = 15 * 60_000;
export const DEFAULT_LINGER_MS = 10_000;

export interface FlowEngineOptions {
  readonly clock: Clock;
  readonly snapshot?: RuntimeSnapshot;
  /** Live flows at most; beyond, new flows are refused (`capacity`). Default 1,000,000. */
  readonly maxFlows?: number;
  /** Tombstones at most; the oldest goes first. Default 100,000. 0 keeps none. */
  readonly maxTombstones?: number;
  /** How long an expired TCP flow is remembered (its late segments told as its own, the
   * backend's answered, its SNAT port held). B6 does not depend on it. Default 15 minutes. */
  readonly tombstoneTtlMs?: number;
  /** UDP flow timeout (B8). Default 4 minutes. */
  readonly udpTimeoutMs?: number;
  /** How long a flow stays after both FINs or a RST, for stray retransmissions. Default 10 s. */
  readonly lingerMs?: number;
  /** Timing-wheel resolution: expiry is at most this late. Default 10 ms. */
  readonly tickMs?: number;
  /** Index reply tuples (backend to client) so `tcp`/`udp` find flows from either side.
   * Default true; the proxy plane, which never feeds packets, can save the memory. */
  readonly indexReplies?: boolean;
  /** Health assumed for a probed member before any probe result. Default `up`. */
  readonly initialHealth?: 'up' | 'down';
  /** Seed of the distribution hash. Fixed by default so a restart picks the same backends. */
  readonly hashSeed?: number;
  readonly maglevTableSize?: number;
  readonly events?: FlowEventSink;
  /** How long a freed SNAT port rests before an outbound flow may take it again. Default 60 s. */
  readonly snatHoldMs?: number;
  /** Where each member's SNAT range starts handing out ports; Math.random by default. */
  readonly random?: () => number;
  /**
   * This instance is one of a pool behind ECMP: flows moved here by a change of the pool are
   * adopted, and a flow that may have moved away is not ended before the pool is asked
   * (engine-pool.ts). Without it, a single instance: B3/B6 for every unknown segment.
   */
  readonly pool?: PoolOptions;
}

export class EngineState {
  readonly clock: Clock;
  readonly table: FlowTable;
  readonly wheel: TimerWheel;
  readonly paths = new PathRuntimes();
  readonly members: Members;
  readonly snat: SnatAllocator;
  readonly stats: EngineStats = emptyStats();
  readonly sink: FlowEventSink | undefined;
  readonly maxFlows: number;
  readonly maxTombstones: number;
  readonly tombstoneTtlMs: number;
  readonly udpTimeoutMs: number;
  readonly lingerMs: number;
  readonly pool: PoolRuntime | undefined;
  /** Live flows (tombstones not counted). */
  live = 0;
  tombstones = 0;

  constructor(options: FlowEngineOptions) {
    this.clock = options.clock;
    this.maxFlows = options.maxFlows ?? 1_000_000;
    this.maxTombstones = options.maxTombstones ?? 100_000;
    this.tombstoneTtlMs = options.tombstoneTtlMs ?? DEFAULT_TOMBSTONE_TTL_MS;
    this.udpTimeoutMs = options.udpTimeoutMs ?? DEFAULT_UDP_TIMEOUT_MS;
    this.lingerMs = options.lingerMs ?? DEFAULT_LINGER_MS;
    this.sink = options.events;
    this.pool = options.pool !== undefined ? new PoolRuntime(options.pool) : undefined;
    if (!(this.maxFlows >= 1)) throw new RangeError(`maxFlows must be >= 1, got ${this.maxFlows}`);
    if (!(this.maxTombstones >= 0)) throw new RangeError(`maxTombstones must be >= 0`);
    this.members = new Members({
      initialHealthy: (options.initialHealth ?? 'up') === 'up',
      seed: options.hashSeed ?? 0x51c3,
      ...(options.maglevTableSize !== undefined ? { maglevSize: options.maglevTableSize } : {}),
    });
    this.snat = new SnatAllocator({
      ...(options.snatHoldMs !== undefined ? { holdMs: options.snatHoldMs } : {}),
      ...(options.random !== undefined ? { random: options.random } : {}),
    });
    const replyKey = options.indexReplies === false ? null : this.replyKey.bind(this);
    // The table grows before the wheel exists only at construction, when there is nothing to grow.
    const grown = { wheel: undefined as TimerWheel | undefined };
    this.table = new FlowTable(this.maxFlows + this.maxTombstones, replyKey, (cap) => grown.wheel?.grow(cap));
    this.wheel = new TimerWheel(
      options.tickMs ?? 10,
      this.table.capacity,
      (slot) => this.deadlineOf(slot),
      this.clock.now(),
    );
    grown.wheel = this.wheel;
  }

  /** The path runtime of a record (its rule or outbound path, removed or not). */
  pathOf(slot: number): PathRuntime {
    return this.paths.at(this.table.ruleOf(slot));
  }

  timeoutOf(slot: number, state: number): number {
    switch (state) {
      case ST_TOMBSTONE:
        return this.tombstoneTtlMs;
      case ST_TIME_WAIT:
      case ST_CLOSED:
        return this.lingerMs;
      case ST_UDP:
        return this.udpTimeoutMs;
      default:
        // A flow the pool is asked about waits for the answer beyond its idle timeout.
        return this.table.pool(slot) & POOL_ASKING
          ? this.pool!.askDeadline(this.table.idOf(slot)) - this.table.lastSeen(slot)
          : this.table.idleMs(slot);
    }
  }

  deadlineOf(slot: number): number {
    return this.table.lastSeen(slot) + this.timeoutOf(slot, this.table.state(slot));
  }

  /** Counts a packet (or a relayed chunk) of `bytes` in direction `dir`. */
  count(slot: number, dir: number, bytes: number): void {
    const n = this.table.num;
    const b = slot * NUM;
    n[b + N_BYTES + dir] = n[b + N_BYTES + dir]! + bytes;
    n[b + N_PACKETS + dir] = n[b + N_PACKETS + dir]! + 1;
  }

  /** The tuple of a flow's replies, as they arrive: backend (or remote) to client (or SNAT). */
  private replyKey(slot: number, out: Uint32Array, off: number): void {
    const t = this.table;
    const k = slot * KEY_WORDS;
    const keys = t.keys;
    let sport: number;
    let family = keys[k + 9]! >>> 8;
    if (t.meta(slot) & META_OUTBOUND) {
      // The remote answers the SNAT address and port: remote -> snatAddress:snatPort.
      const packed = t.backendPortOf(slot);
      const space = this.snat.space(snatSpaceOf(packed));
      for (let i = 0; i < 4; i++) out[off + i] = keys[k + 4 + i]!;
      for (let i = 0; i < 4; i++) out[off + 4 + i] = space.words[i]!;
      out[off + 8] = (((keys[k + 8]! & 0xffff) << 16) | snatPortOf(packed)) >>> 0;
      out[off + 9] = keys[k + 9]!;
      return;
    }
    if (t.meta(slot) & META_FLOATING_IP) {
      // The backend owns the frontend address itself and answers from it (direct return).
      for (let i = 0; i < 4; i++) out[off + i] = keys[k + 4 + i]!;
      sport = t.backendPortOf(slot);
    } else {
      const m = t.memberOf(slot);
      const words = this.members.words;
      for (let i = 0; i < 4; i++) out[off + i] = words[m * 4 + i]!;
      sport = t.backendPortOf(slot);
      family = this.members.family(m);
    }
    for (let i = 0; i < 4; i++) out[off + 4 + i] = keys[k + i]!;
    out[off + 8] = ((sport << 16) | (keys[k + 8]! >>> 16)) >>> 0;
    out[off + 9] = (family << 8) | (keys[k + 9]! & 0xff);
  }
}
