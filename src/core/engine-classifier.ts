/**
 * The packet-level entry of the flow engine (the packet plane's): every parsed TCP segment or
 * UDP datagram, as seen on the wire in either direction, gets a verdict. A packet of a known
 * flow is tracked and forwarded; a client SYN for a rule (or a member's first packet on an
 * outbound path) creates the flow; a later segment of an expired or unknown flow is answered
 * per B6; anything else is dropped with its reason.
 */
import type { EngineState } from './engine-state.js';
import { PacketVerdict, type Views } from './engine-views.js';
import type { Records } from './engine-records.js';
import { refused, type SlotOrRefusal } from './engine-records.js';
import type { RuleMatch } from './rule-table.js';
import type { OutboundPath } from './snapshot.js';
import { inboundResetsLate, outboundResetsLate } from './engine-paths.js';
import type { FlowKey } from './flow-key.js';
import { PROTO_TCP, PROTO_UDP } from './flow-key.js';
import { DIR_ORIG, type Dir } from './flow-table.js';
import { POOL_ADOPTED } from './engine-pool.js';
import {
  META_RESET,
  ST_CLOSED,
  ST_TIME_WAIT,
  ST_TOMBSTONE,
  ST_UDP,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
  TRACK_OK,
  resetForSegment,
  trackAdopted,
  trackSegment,
  trackSyn,
  type TcpSegment,
} from './tcp-state.js';

export class Classifier {
  private readonly verdict = new PacketVerdict();
  private readonly rstScratch = { seq: 0, ack: 0, flags: 0 };
  /** What `route` found for the packet at hand. */
  private match: RuleMatch | undefined;
  private outbound: OutboundPath | undefined;

  constructor(
    private readonly s: EngineState,
    private readonly records: Records,
    private readonly views: Views,
  ) {}

  /**
   * One TCP segment, with `key` as on the wire: client to frontend, or backend to client
   * (the reply tuple). The returned verdict is reused by the next call.
   */
  tcp(key: FlowKey, seg: TcpSegment): PacketVerdict {
    const s = this.s;
    const now = s.clock.now();
    const v = this.verdict.clear();
    const t = s.table;
    const e = t.find(key.words, 0);
    const isSyn = (seg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN;
    if (e !== -1) {
      const slot = e >> 1;
      const dir = (e & 1) as Dir;
      const state = t.state(slot);
      const reuse =
        isSyn &&
        dir === DIR_ORIG &&
        (state === ST_TOMBSTONE || state === ST_TIME_WAIT || state === ST_CLOSED);
      if (!reuse) {
        if (state === ST_TOMBSTONE) return this.tombstoneVerdict(slot, dir, seg);
        this.views.verdict(v, slot, dir);
        v.action = 'forward';
        s.count(slot, dir, seg.len);
        if (trackSegment(t, slot, dir, seg) === TRACK_OK || this.resync(slot, dir, seg, now)) {
          this.records.touch(slot, now);
          const after = t.state(slot);
          // Deadlines only move later on activity, except into a linger state.
          if (after !== state && (after === ST_TIME_WAIT || after === ST_CLOSED)) {
            s.wheel.schedule(slot, s.deadlineOf(slot));
          }
        } else {
          v.trusted = false;
          s.stats.untrustedSegments++;
        }
        return v;
      }
      // A new connection on the 5-tuple of a finished one: the old record gives way.
      if (state === ST_TOMBSTONE) this.records.removeSlot(slot);
      else this.records.endFlow(slot, state === ST_CLOSED ? 'rst' : 'fin', now);
    }
    if (!this.route(PROTO_TCP, key)) {
      v.reason = 'no-rule';
      return v;
    }
    if (!isSyn) return this.stray(key, seg, v, now);
    s.pool?.forget(key.words);
    s.stats.syns++;
    const slot = this.create(key, now);
    if (refused(slot)) {
      v.reason = slot;
      return v;
    }
    trackSyn(t, slot, seg);
    s.count(slot, DIR_ORIG, seg.len);
    return this.created(v, slot, now);
  }

  /** One UDP datagram, `key` as on the wire. A datagram to a rule with no flow starts one. */
  udp(key: FlowKey, payloadLength: number): PacketVerdict {
    const s = this.s;
    const now = s.clock.now();
    const v = this.verdict.clear();
    const t = s.table;
    const e = t.find(key.words, 0);
    if (e !== -1) {
      const slot = e >> 1;
      const dir = (e & 1) as Dir;
      this.records.touch(slot, now);
      s.count(slot, dir, payloadLength);
      this.views.verdict(v, slot, dir);
      v.action = 'forward';
      return v;
    }
    if (!this.route(PROTO_UDP, key)) {
      v.reason = 'no-rule';
      return v;
    }
    const slot = this.create(key, now);
    if (refused(slot)) {
      v.reason = slot;
      return v;
    }
    t.setState(slot, ST_UDP);
    s.count(slot, DIR_ORIG, payloadLength);
    return this.created(v, slot, now);
  }

  /**
   * Finds what a packet of no flow is for: an inbound rule on its destination or, failing one,
   * the outbound path of its source (a member reaching out). False when neither.
   */
  private route(proto: number, key: FlowKey): boolean {
    const paths = this.s.paths;
    this.match = paths.rules.lookup(proto, key.words, 4, key.family, key.dstPort);
    this.outbound =
      this.match === undefined ? paths.outboundTable.lookup(proto, key.words, 0, key.family) : undefined;
    return this.match !== undefined || this.outbound !== undefined;
  }

  /** Creates the flow of what `route` found. */
  private create(key: FlowKey, now: number): SlotOrRefusal {
    return this.match !== undefined
      ? this.records.createInbound(this.match, key.words, now)
      : this.records.createOutbound(this.outbound!, key.words, now);
  }

  private created(v: PacketVerdict, slot: number, now: number): PacketVerdict {
    this.views.verdict(v, slot, DIR_ORIG);
    v.action = 'forward';
    v.created = true;
    this.records.emitCreated(slot, now);
    return v;
  }

  /**
   * A non-SYN segment of no flow, for what `route` found: on a path with TCP reset a RST made
   * from the segment alone (B6), so a client that missed its idle RST learns it however late
   * it writes; otherwise dropped silently (B3). A member's segment from a port an inbound rule
   * forwards to is a backend's reply to a client, whose rule the packet does not tell: dropped.
   * In a pool, a client's segment in a change window is adopted instead, and outside one a RST
   * waits for the grace of late news (engine-pool.ts).
   */
  private stray(key: FlowKey, seg: TcpSegment, v: PacketVerdict, now: number): PacketVerdict {
    const s = this.s;
    v.reason = 'no-flow';
    const pool = s.pool;
    const match = this.match;
    const resets =
      match !== undefined
        ? inboundResetsLate(match.rule)
        : outboundResetsLate(this.outbound!) &&
          !s.paths.outboundTable.servesInbound(PROTO_TCP, key.words, 0, key.family, key.srcPort);
    // Never answer a RST with a RST (RFC 9293).
    if (seg.flags & TCP_RST) {
      s.stats.noFlowDrops++;
      return v;
    }
    if (pool !== undefined && match !== undefined && seg.flags & TCP_ACK) {
      const path = s.paths.at(s.paths.indexOfRule(match.rule));
      if (pool.windowOpen(match.rule.frontend.address, path.idleMs, now)) return this.adopt(key, seg, v, now);
      if (resets && !pool.strayResetDue(key.words, now)) {
        s.stats.strayHeld++;
        return v;
      }
    }
    if (!resets) {
      s.stats.noFlowDrops++;
      return v;
    }
    this.reset(v, seg);
    s.stats.noFlowResets++;
    return v;
  }

  /**
   * A client's mid-flow segment in a change of the pool: the flow another instance carried until
   * the router moved it here goes on, ESTABLISHED from this segment, to the member Maglev picks
   * (the one the other instance picked, from the same snapshot and health), its idle timer
   * starting now.
   */
  private adopt(key: FlowKey, seg: TcpSegment, v: PacketVerdict, now: number): PacketVerdict {
    const s = this.s;
    const t = s.table;
    s.pool!.forget(key.words);
    const slot = this.create(key, now);
    if (refused(slot)) {
      v.reason = slot;
      return v;
    }
    t.setPool(slot, POOL_ADOPTED);
    s.count(slot, DIR_ORIG, seg.len);
    if (trackAdopted(t, slot, seg) !== TRACK_OK) {
      v.trusted = false;
      s.stats.untrustedSegments++;
    }
    s.stats.adopted++;
    return this.created(v, slot, now);
  }

  /**
   * A client's segment beyond what this record tracked, in a change window: the flow went to
   * another instance and came back (an instance restarted, then returned), and its sequence
   * numbers moved on meanwhile. It is tracked again from this segment, as an adopted flow is,
   * keeping its member. False when the segment stays untrusted.
   */
  private resync(slot: number, dir: Dir, seg: TcpSegment, now: number): boolean {
    const s = this.s;
    const pool = s.pool;
    if (pool === undefined || dir !== DIR_ORIG || !(seg.flags & TCP_ACK) || seg.flags & (TCP_SYN | TCP_RST))
      return false;
    const t = s.table;
    const state = t.state(slot);
    if (state === ST_TIME_WAIT || state === ST_CLOSED) return false;
    const path = s.pathOf(slot);
    if (path.rule === null || path.removed) return false;
    if (!pool.windowOpen(path.rule.frontend.address, path.idleMs, now)) return false;
    if (trackAdopted(t, slot, seg) !== TRACK_OK) return false;
    t.setPool(slot, t.pool(slot) | POOL_ADOPTED);
    s.stats.resynced++;
    return true;
  }

  /** Fills `v` with the RST answering `seg` to its sender (RFC 9293 section 3.10.7.1). */
  private reset(v: PacketVerdict, seg: TcpSegment): void {
    v.action = 'reset';
    const r = this.rstScratch;
    resetForSegment(seg, r);
    v.rstSeq = r.seq;
    v.rstAck = r.ack;
    v.rstFlags = r.flags;
  }

  /**
   * A packet of an expired flow, while its tombstone lasts: a RST when its path has reset on
   * (B6; a backend's late reply too, which `stray` cannot tell), else dropped (B3).
   */
  private tombstoneVerdict(slot: number, dir: Dir, seg: TcpSegment): PacketVerdict {
    const v = this.verdict;
    const s = this.s;
    this.views.verdict(v, slot, dir);
    v.reason = 'expired';
    // Never answer a RST with a RST (RFC 9293).
    if (s.table.meta(slot) & META_RESET && !(seg.flags & TCP_RST)) {
      this.reset(v, seg);
      s.stats.tombstoneResets++;
    } else {
      v.action = 'drop';
      s.stats.tombstoneDrops++;
    }
    return v;
  }
}
