/**
 * Time in the flow engine: the timing wheel's due records, each ended as its state calls for.
 * A live flow at its idle timeout gets its action (B3 drop, B4 reset for ESTABLISHED only, B5)
 * and becomes a tombstone that tells later packets as its own while it lasts (B6 answers them
 * without it too: engine-classifier.ts); lingering closed flows and
 * tombstones go quietly. Tombstones are bounded in number by a ring, the oldest evicted first.
 */
import type { EngineState } from './engine-state.js';
import type { ExpiryAction, Views } from './engine-views.js';
import { ExpiryAction as ExpiryActionRecord } from './engine-views.js';
import type { Records } from './engine-records.js';
import type { NoResetReason } from './events.js';
import { KEY_WORDS } from './flow-key.js';
import { POOL_ASKING } from './engine-pool.js';
import { NUM, N_LAST_SEEN } from './flow-table.js';
import {
  META_FLOATING_IP,
  META_OUTBOUND,
  META_RESET,
  ST_CLOSED,
  ST_ESTABLISHED,
  ST_TIME_WAIT,
  ST_TOMBSTONE,
  ST_UDP,
  idleResetFields,
} from './tcp-state.js';

export class Expiry {
  private readonly expiry = new ExpiryActionRecord();
  private readonly tombRing: Float64Array;
  private tombHead = 0;
  private tombLen = 0;
  private now = 0;
  private onAction: ((a: ExpiryAction) => void) | undefined;
  private readonly fire = (slot: number): void => this.fireSlot(slot);

  constructor(
    private readonly s: EngineState,
    private readonly records: Records,
    private readonly views: Views,
  ) {
    this.tombRing = new Float64Array(Math.max(1, s.maxTombstones));
  }

  /**
   * Expires every flow whose time has come, calling `onAction` for each idle expiry. Returns
   * the number of entries the timing wheel examined.
   */
  advance(onAction: ((a: ExpiryAction) => void) | undefined, now: number): number {
    this.now = now;
    this.onAction = onAction;
    try {
      return this.s.wheel.advance(now, this.fire);
    } finally {
      this.onAction = undefined;
    }
  }

  /** Ends a live flow now as if its idle timeout had passed, with a reset or a drop. */
  terminate(slot: number, reset: boolean, onAction: ((a: ExpiryAction) => void) | undefined): void {
    this.now = this.s.clock.now();
    this.onAction = onAction;
    try {
      this.expireSlot(slot, reset && this.s.table.state(slot) !== ST_UDP);
    } finally {
      this.onAction = undefined;
    }
  }

  /** Ends a live flow now as its idle timeout would: a RST only for an ESTABLISHED flow of a path with reset. */
  expireNow(slot: number, onAction: ((a: ExpiryAction) => void) | undefined): void {
    this.now = this.s.clock.now();
    this.onAction = onAction;
    try {
      this.expireSlot(slot, this.s.table.state(slot) === ST_ESTABLISHED && this.s.pathOf(slot).resetAtIdle);
    } finally {
      this.onAction = undefined;
    }
  }

  private fireSlot(slot: number): void {
    const s = this.s;
    const state = s.table.state(slot);
    if (state === 0) return;
    const deadline = s.deadlineOf(slot);
    if (deadline > this.now) {
      s.wheel.schedule(slot, deadline);
      return;
    }
    if (state === ST_TOMBSTONE) {
      this.records.removeSlot(slot);
      return;
    }
    if (state === ST_TIME_WAIT || state === ST_CLOSED) {
      this.records.endFlow(slot, state === ST_CLOSED ? 'rst' : 'fin', this.now);
      return;
    }
    const t = s.table;
    if (t.pool(slot) & POOL_ASKING) {
      // No instance said it carries the flow within the wait: it ends here, as its timeout says.
      this.records.doneAsking(slot);
    } else if (this.mayHaveMoved(slot)) {
      this.askPool(slot);
      return;
    }
    this.expireSlot(slot, state === ST_ESTABLISHED && s.pathOf(slot).resetAtIdle);
  }

  /** An inbound TCP flow whose last packet came around a change of the pool (engine-pool.ts). */
  private mayHaveMoved(slot: number): boolean {
    const s = this.s;
    const pool = s.pool;
    if (pool === undefined || s.table.state(slot) === ST_UDP) return false;
    const rule = s.pathOf(slot).rule;
    return rule !== null && pool.mayHaveMoved(rule.frontend.address, s.table.lastSeen(slot));
  }

  /** Holds the flow for `askMs` and asks the pool whether another instance carries it. */
  private askPool(slot: number): void {
    const s = this.s;
    const t = s.table;
    const id = t.idOf(slot);
    s.stats.asked++;
    s.pool!.beginAsk(id, this.now);
    t.setPool(slot, t.pool(slot) | POOL_ASKING);
    s.wheel.schedule(slot, s.deadlineOf(slot));
    s.pool!.ask(id, t.keys, slot * KEY_WORDS, this.now - t.lastSeen(slot));
  }

  /**
   * The pool's answer about a flow the engine asked it about: carried by another instance, it
   * is retired silently (no RST, no tombstone); otherwise it ends now as its idle timeout says.
   * False when the flow is not waiting for an answer (a packet came meanwhile, or it ended).
   */
  settleAsk(slot: number, carried: boolean, onAction: ((a: ExpiryAction) => void) | undefined): boolean {
    const s = this.s;
    const t = s.table;
    if (!(t.pool(slot) & POOL_ASKING)) return false;
    this.records.doneAsking(slot);
    this.now = s.clock.now();
    if (carried) {
      this.records.endFlow(slot, 'moved', this.now);
      return true;
    }
    this.onAction = onAction;
    try {
      this.expireSlot(slot, t.state(slot) === ST_ESTABLISHED && s.pathOf(slot).resetAtIdle);
    } finally {
      this.onAction = undefined;
    }
    return true;
  }

  /** Idle end of a live flow: action out, event, then a tombstone (TCP) or nothing (UDP). */
  private expireSlot(slot: number, reset: boolean): void {
    const s = this.s;
    const t = s.table;
    const now = this.now;
    const isUdp = t.state(slot) === ST_UDP;
    if (t.pool(slot) & POOL_ASKING) this.records.doneAsking(slot);
    if (reset) s.stats.expiredReset++;
    else s.stats.expiredDrop++;
    if (this.onAction !== undefined) {
      const a = this.expiry;
      this.views.place(a, slot);
      a.action = reset ? 'reset' : 'drop';
      a.protocol = isUdp ? 'Udp' : 'Tcp';
      a.key.copyFrom(t.keys, slot * KEY_WORDS);
      idleResetFields(t, slot, a.toClient, a.toBackend);
      this.onAction(a);
    }
    if (s.sink !== undefined) {
      s.sink({
        type: 'expired',
        at: now,
        action: reset ? 'reset' : 'drop',
        ...(reset ? {} : { noReset: this.noResetReason(slot) }),
        flow: this.views.info(slot, now),
      });
    }
    s.live--;
    if (isUdp || s.maxTombstones === 0) {
      s.wheel.cancel(slot);
      this.records.freeSlot(slot);
      return;
    }
    this.toTombstone(slot, s.pathOf(slot).resetAfterExpiry, now);
  }

  /** Why the flow in `slot`, ending now, gets no RST. */
  private noResetReason(slot: number): NoResetReason {
    const state = this.s.table.state(slot);
    if (state === ST_UDP) return 'udp';
    if (!this.s.pathOf(slot).resetAtIdle) return 'reset-disabled';
    if (state !== ST_ESTABLISHED) return 'not-established';
    return 'terminated';
  }

  private toTombstone(slot: number, resetEnabled: boolean, now: number): void {
    const s = this.s;
    const t = s.table;
    if (s.tombstones >= s.maxTombstones) this.evictTombstone();
    t.setState(slot, ST_TOMBSTONE);
    t.setMeta(slot, (t.meta(slot) & (META_FLOATING_IP | META_OUTBOUND)) | (resetEnabled ? META_RESET : 0));
    if (t.meta(slot) & META_OUTBOUND) s.snat.retire(t.backendPortOf(slot), now);
    t.num[slot * NUM + N_LAST_SEEN] = now;
    s.tombstones++;
    if (this.tombLen === this.tombRing.length) this.popTombRing();
    this.tombRing[(this.tombHead + this.tombLen) % this.tombRing.length] = t.idOf(slot);
    this.tombLen++;
    s.wheel.schedule(slot, now + s.tombstoneTtlMs);
  }

  /** Pops the oldest ring entry, removing it if it is still a tombstone. */
  private popTombRing(): boolean {
    const id = this.tombRing[this.tombHead]!;
    this.tombHead = (this.tombHead + 1) % this.tombRing.length;
    this.tombLen--;
    const slot = this.s.table.slotOf(id);
    if (slot < 0 || this.s.table.state(slot) !== ST_TOMBSTONE) return false;
    this.records.removeSlot(slot);
    this.s.stats.tombstonesEvicted++;
    return true;
  }

  private evictTombstone(): void {
    while (this.tombLen > 0 && !this.popTombRing()) {
      /* stale entries: tombstones already gone */
    }
  }
}
