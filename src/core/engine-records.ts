/**
 * A flow record's life in the table: created for an inbound rule or an outbound path (or
 * refused, with its reason), refreshed by activity, ended (closed, or removed as a tombstone),
 * and freed with its SNAT port. Expiry at idle is engine-expiry.ts; this is everything else
 * that puts a record into the table or takes it out.
 */
import type { EngineState } from './engine-state.js';
import type { Views } from './engine-views.js';
import type { CloseReason, RefuseReason } from './events.js';
import { KEY_WORDS, PROTO_UDP, formatIp } from './flow-key.js';
import {
  NUM,
  N_BYTES,
  N_CREATED,
  N_IDLE_MS,
  N_LAST_SEEN,
  N_PACKETS,
  REC,
  R_BACKEND_PORT,
  R_MEMBER,
  R_RULE,
} from './flow-table.js';
import type { RuleMatch } from './rule-table.js';
import { protocolName } from './rule-table.js';
import type { OutboundPath } from './snapshot.js';
import { outboundPathKey } from './snat-alloc.js';
import { POOL_ASKING } from './engine-pool.js';
import { META_FLOATING_IP, META_OUTBOUND, ST_SYN_SENT, ST_TOMBSTONE, ST_UDP } from './tcp-state.js';

/** A new record's slot, or why there is none. */
export type SlotOrRefusal = number | RefuseReason;

export function refused(r: SlotOrRefusal): r is RefuseReason {
  return typeof r === 'string';
}

export class Records {
  constructor(
    private readonly s: EngineState,
    private readonly views: Views,
  ) {}

  /** Creates and indexes a flow of an inbound rule, choosing its member. */
  createInbound(match: RuleMatch, words: Uint32Array, now: number): SlotOrRefusal {
    const s = this.s;
    const proto = words[9]! & 0xff;
    const rule = match.rule;
    const pathIdx = s.paths.indexOfRule(rule);
    const dport = words[8]! & 0xffff;
    if (s.live >= s.maxFlows) return this.refuse('capacity', proto, words, now, rule.id);
    let memberIdx: number;
    let backendPort: number;
    if (match.nat !== null) {
      if (s.members.adminState(match.nat.member) === 'Down')
        return this.refuse('member-down', proto, words, now, rule.id);
      memberIdx = s.members.indexOf(match.nat.member);
      backendPort = match.nat.backendPort;
    } else if (rule.kind === 'loadBalancingRule') {
      memberIdx = s.members.pick(s.paths.at(pathIdx), rule.pool, rule.probe, words);
      if (memberIdx < 0) return this.refuse('no-backend', proto, words, now, rule.id);
      backendPort = rule.haPorts || rule.backendPort === 0 ? dport : rule.backendPort;
    } else return this.refuse('no-backend', proto, words, now, rule.id);
    const t = s.table;
    const slot = t.alloc();
    if (slot < 0) return this.refuse('capacity', proto, words, now, rule.id);
    this.fill(
      slot,
      words,
      now,
      rule.enableFloatingIP ? META_FLOATING_IP : 0,
      pathIdx,
      memberIdx,
      backendPort,
    );
    if (!t.insert(slot)) {
      t.release(slot);
      return this.refuse('tuple-in-use', proto, words, now, rule.id);
    }
    this.admitted(slot, proto, now);
    return slot;
  }

  /**
   * An outbound flow from a member: its own tuple as the original, a SNAT port from the
   * member's range for the reply tuple.
   */
  createOutbound(path: OutboundPath, words: Uint32Array, now: number): SlotOrRefusal {
    const s = this.s;
    const proto = words[9]! & 0xff;
    const key = outboundPathKey(path);
    const pathIdx = s.paths.indexOfOutboundKey(key);
    const ruleId = s.paths.at(pathIdx).id;
    if (s.live >= s.maxFlows) return this.refuse('capacity', proto, words, now, ruleId);
    const t = s.table;
    const slot = t.alloc();
    if (slot < 0) return this.refuse('capacity', proto, words, now, ruleId);
    const packed = s.snat.allocate(key, t.idOf(slot), now, (owner) => this.reclaimTombstone(owner));
    if (packed < 0) {
      t.release(slot);
      return this.refuse('snat-ports', proto, words, now, ruleId);
    }
    this.fill(slot, words, now, META_OUTBOUND, pathIdx, s.members.indexOf(path.member), packed);
    if (!t.insert(slot)) {
      s.snat.release(packed, t.idOf(slot), now);
      t.release(slot);
      return this.refuse('tuple-in-use', proto, words, now, ruleId);
    }
    this.admitted(slot, proto, now);
    return slot;
  }

  private fill(
    slot: number,
    words: Uint32Array,
    now: number,
    meta: number,
    pathIdx: number,
    memberIdx: number,
    backendPort: number,
  ): void {
    const t = this.s.table;
    t.keys.set(words.subarray(0, KEY_WORDS), slot * KEY_WORDS);
    t.setState(slot, ST_SYN_SENT);
    t.setMeta(slot, meta);
    t.rec[slot * REC + R_RULE] = pathIdx;
    t.rec[slot * REC + R_MEMBER] = memberIdx;
    t.rec[slot * REC + R_BACKEND_PORT] = backendPort;
    t.num[slot * NUM + N_CREATED] = now;
    t.num[slot * NUM + N_LAST_SEEN] = now;
    t.num[slot * NUM + N_IDLE_MS] = this.s.paths.at(pathIdx).idleMs;
    t.num.fill(0, slot * NUM + N_BYTES, slot * NUM + N_PACKETS + 2);
  }

  private admitted(slot: number, proto: number, now: number): void {
    const s = this.s;
    s.live++;
    s.stats.flowsCreated++;
    s.wheel.schedule(slot, now + s.timeoutOf(slot, proto === PROTO_UDP ? ST_UDP : ST_SYN_SENT));
  }

  /** A tombstone gives up its SNAT port to a new flow of a member with no other port free. */
  private reclaimTombstone(flowId: number): boolean {
    const slot = this.s.table.slotOf(flowId);
    if (slot < 0 || this.s.table.state(slot) !== ST_TOMBSTONE) return false;
    this.removeSlot(slot);
    return true;
  }

  /**
   * A packet (or relayed bytes) on a live flow: its idle time starts again, now under its
   * rule's current timeout, which may have changed since the flow's last packet.
   */
  touch(slot: number, now: number): void {
    const t = this.s.table;
    const b = slot * NUM;
    t.num[b + N_LAST_SEEN] = now;
    // A packet while the pool is asked about the flow: it is here after all.
    if (t.pool(slot) & POOL_ASKING) this.doneAsking(slot);
    const ms = this.s.pathOf(slot).idleMs;
    const before = t.num[b + N_IDLE_MS]!;
    if (ms === before) return;
    t.num[b + N_IDLE_MS] = ms;
    // The wheel re-files entries whose deadline moved later by itself; an earlier one needs a reschedule.
    if (ms < before) this.s.wheel.schedule(slot, this.s.deadlineOf(slot));
  }

  /** The flow in `slot` waits for the pool's answer no more. */
  doneAsking(slot: number): void {
    const t = this.s.table;
    t.setPool(slot, t.pool(slot) & ~POOL_ASKING);
    this.s.pool?.doneAsking(t.idOf(slot));
  }

  /** Unindexes and frees a slot, and the SNAT port of an outbound flow with it. */
  freeSlot(slot: number): void {
    const t = this.s.table;
    if (t.pool(slot) & POOL_ASKING) this.doneAsking(slot);
    if (t.meta(slot) & META_OUTBOUND)
      this.s.snat.release(t.backendPortOf(slot), t.idOf(slot), this.s.clock.now());
    t.unindex(slot);
    t.release(slot);
  }

  /** Removes a record that is no live flow (a tombstone) or whose end was already told. */
  removeSlot(slot: number): void {
    if (this.s.table.state(slot) === ST_TOMBSTONE) this.s.tombstones--;
    this.s.wheel.cancel(slot);
    this.freeSlot(slot);
  }

  /** Removes a live flow that ended by itself or was closed by its data plane. */
  endFlow(slot: number, reason: CloseReason, now: number): void {
    const s = this.s;
    s.stats.closed[reason]++;
    if (s.sink !== undefined) s.sink({ type: 'closed', at: now, reason, flow: this.views.info(slot, now) });
    s.live--;
    s.wheel.cancel(slot);
    this.freeSlot(slot);
  }

  emitCreated(slot: number, now: number): void {
    if (this.s.sink !== undefined)
      this.s.sink({ type: 'created', at: now, flow: this.views.info(slot, now) });
  }

  /** Counts and tells a refused new flow; returns the reason for the caller to pass on. */
  refuse(
    reason: RefuseReason,
    proto: number,
    words: Uint32Array,
    now: number,
    ruleId: string | undefined,
  ): RefuseReason {
    const s = this.s;
    s.stats.refused[reason]++;
    if (s.sink === undefined) return reason;
    const family = words[9]! >>> 8;
    s.sink({
      type: 'refused',
      at: now,
      reason,
      protocol: protocolName(proto),
      client: { address: formatIp(words, 0, family), port: words[8]! >>> 16 },
      frontend: { address: formatIp(words, 4, family), port: words[8]! & 0xffff },
      ...(ruleId !== undefined ? { ruleId } : {}),
    });
    return reason;
  }
}
