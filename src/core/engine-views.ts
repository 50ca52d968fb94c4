/**
 * What the engine tells about a flow: where it goes (the place a verdict and an expiry both
 * carry, filled by one function) and the FlowInfo that events and the API show. One builder for
 * inbound and outbound flows alike, driven by the flow's PathRuntime.
 */
import type { EngineState } from './engine-state.js';
import type { Endpoint, FlowInfo, IdleAction } from './events.js';
import { FlowKey, KEY_WORDS, formatIp } from './flow-key.js';
import { DIR_ORIG, NUM, N_BYTES, N_CREATED, N_PACKETS, type Dir } from './flow-table.js';
import { protocolName } from './rule-table.js';
import type { BackendMember, InboundRule, OutboundPath, Protocol } from './snapshot.js';
import { snatPortOf, snatSpaceOf } from './snat-alloc.js';
import { POOL_ADOPTED } from './engine-pool.js';
import { META_FLOATING_IP, META_RESET, ST_TOMBSTONE, stateName, type RstFields } from './tcp-state.js';

export type Direction = 'toBackend' | 'toClient';

/**
 * Where a flow goes, as a data plane needs it to rewrite or answer a packet. For an inbound
 * flow, `rule` is set, `frontendPort` is the port the client reached and `backendPort` the
 * member's. For an outbound flow (a member to a remote peer), `outbound` is set and `rule` is
 * null: the source becomes `snatAddress:snatPort` (also `frontendPort`), and `backendPort` is
 * the member's own source port.
 */
export class FlowPlace {
  flowId = -1;
  member: BackendMember | null = null;
  rule: InboundRule | null = null;
  outbound: OutboundPath | null = null;
  snatAddress = '';
  snatPort = 0;
  frontendPort = 0;
  backendPort = 0;
  /**
   * Floating IP: the flow reaches its backend still addressed to the frontend IP (only the port
   * is mapped), and the backend answers from, and is reset at, the frontend IP.
   */
  floatingIP = false;
}

/**
 * The verdict on one packet. The engine reuses one instance: read it before the next call.
 * For `reset`, answer the packet's sender with a RST carrying `rstSeq`, `rstAck`, `rstFlags`.
 */
export class PacketVerdict extends FlowPlace {
  action: 'forward' | 'drop' | 'reset' = 'drop';
  direction: Direction = 'toBackend';
  /** A flow was created by this packet. */
  created = false;
  /** False when the segment was forwarded but not trusted (outside the window). */
  trusted = true;
  /** Why a packet is dropped or reset: a RefuseReason, `no-flow`, `expired`, `rst`. */
  reason = '';
  rstSeq = 0;
  rstAck = 0;
  rstFlags = 0;

  /** Back to a dropped packet of no flow. */
  clear(): this {
    this.action = 'drop';
    this.direction = 'toBackend';
    this.flowId = -1;
    this.created = false;
    this.trusted = true;
    this.reason = '';
    this.member = null;
    this.rule = null;
    this.outbound = null;
    this.snatAddress = '';
    this.snatPort = 0;
    this.frontendPort = 0;
    this.backendPort = 0;
    this.floatingIP = false;
    this.rstSeq = 0;
    this.rstAck = 0;
    this.rstFlags = 0;
    return this;
  }
}

/**
 * One flow's end at idle, passed to the `advance` callback. The engine reuses one instance:
 * copy what you keep. `key` is the original tuple (client to frontend; for an outbound flow,
 * member to remote). `member` is always set.
 */
export class ExpiryAction extends FlowPlace {
  declare member: BackendMember;
  action: IdleAction = 'drop';
  protocol: Protocol = 'Tcp';
  readonly key = new FlowKey();
  /** For `reset`: the RST towards the client, or the member of an outbound flow. */
  readonly toClient: RstFields = { seq: 0, ack: 0 };
  /** For `reset`: the RST towards the backend (as it sees the flow), or the remote peer. */
  readonly toBackend: RstFields = { seq: 0, ack: 0 };
}

/**
 * An expired TCP flow still remembered (B6): `msLeft` is what is left of its tombstone's
 * lifetime, and `lateReset` whether a later packet of it is answered with a RST (its path has
 * TCP reset) or discarded (B3).
 */
export interface TombstoneInfo extends FlowInfo {
  readonly lateReset: boolean;
}

export class Views {
  constructor(private readonly s: EngineState) {}

  /** Fills where the flow in `slot` goes. */
  place(p: FlowPlace, slot: number): void {
    const t = this.s.table;
    const path = this.s.pathOf(slot);
    const ports = t.keys[slot * KEY_WORDS + 8]!;
    p.flowId = t.idOf(slot);
    p.member = this.s.members.member(t.memberOf(slot));
    p.floatingIP = (t.meta(slot) & META_FLOATING_IP) !== 0;
    p.rule = path.rule;
    p.outbound = path.outbound;
    if (path.outbound !== null) {
      const packed = t.backendPortOf(slot);
      p.snatAddress = this.s.snat.space(snatSpaceOf(packed)).address;
      p.snatPort = snatPortOf(packed);
      p.frontendPort = p.snatPort;
      p.backendPort = ports >>> 16;
    } else {
      p.snatAddress = '';
      p.snatPort = 0;
      p.frontendPort = ports & 0xffff;
      p.backendPort = t.backendPortOf(slot);
    }
  }

  /** The verdict's place and direction for a packet of the flow in `slot`. */
  verdict(v: PacketVerdict, slot: number, dir: Dir): PacketVerdict {
    this.place(v, slot);
    v.direction = dir === DIR_ORIG ? 'toBackend' : 'toClient';
    return v;
  }

  private readonly scratch = new FlowPlace();

  /** A flow as events and the API show it. */
  info(slot: number, now: number): FlowInfo {
    const t = this.s.table;
    const k = slot * KEY_WORDS;
    const family = t.keys[k + 9]! >>> 8;
    const proto = t.keys[k + 9]! & 0xff;
    const state = t.state(slot);
    const timeoutMs = this.s.timeoutOf(slot, state);
    const path = this.s.pathOf(slot);
    const p = this.scratch;
    this.place(p, slot);
    const endpoint = (address: string, port: number): Endpoint => ({ address, port });
    const ports = t.keys[k + 8]!;
    const client = endpoint(formatIp(t.keys, k, family), ports >>> 16);
    const wire = endpoint(formatIp(t.keys, k + 4, family), ports & 0xffff);
    const b = slot * NUM;
    return {
      id: p.flowId,
      protocol: protocolName(proto),
      state: stateName(state),
      // An outbound flow was opened by the member: it is the client, the remote peer the
      // backend, and the SNAT address and port the frontend the remote sees.
      client,
      frontend: path.outbound !== null ? endpoint(p.snatAddress, p.snatPort) : wire,
      backend: path.outbound !== null ? wire : endpoint(p.member!.address, p.backendPort),
      memberId: p.member!.id,
      ruleId: path.id,
      ruleName: path.name,
      ruleRemoved: path.removed,
      ...(path.outbound !== null ? { outbound: path.outbound.via.kind } : {}),
      createdAt: t.num[b + N_CREATED]!,
      lastSeenAt: t.lastSeen(slot),
      ageMs: now - t.num[b + N_CREATED]!,
      idleMs: now - t.lastSeen(slot),
      msLeft: Math.max(0, t.lastSeen(slot) + timeoutMs - now),
      timeoutMs,
      bytesToBackend: t.num[b + N_BYTES]!,
      bytesToClient: t.num[b + N_BYTES + 1]!,
      packetsToBackend: t.num[b + N_PACKETS]!,
      packetsToClient: t.num[b + N_PACKETS + 1]!,
      ...(t.pool(slot) & POOL_ADOPTED ? { adopted: true as const } : {}),
    };
  }

  /** Ids of live flows (not tombstones) for which `pred` holds. */
  liveIds(pred: (slot: number) => boolean): number[] {
    const out: number[] = [];
    const t = this.s.table;
    for (let s = 0; s < t.capacity; s++) {
      const st = t.state(s);
      if (st !== 0 && st !== ST_TOMBSTONE && pred(s)) out.push(t.idOf(s));
    }
    return out;
  }

  /** Live flows (not tombstones). */
  flows(now: number): FlowInfo[] {
    const out: FlowInfo[] = [];
    const t = this.s.table;
    for (let s = 0; s < t.capacity; s++) {
      const st = t.state(s);
      if (st !== 0 && st !== ST_TOMBSTONE) out.push(this.info(s, now));
    }
    return out;
  }

  /** Tombstones, the most recently expired first, at most `limit` of them. */
  tombstones(now: number, limit: number): TombstoneInfo[] {
    const t = this.s.table;
    const slots: number[] = [];
    for (let s = 0; s < t.capacity; s++) if (t.state(s) === ST_TOMBSTONE) slots.push(s);
    // A tombstone's last-seen time is when it expired.
    slots.sort((a, b) => t.lastSeen(b) - t.lastSeen(a) || t.idOf(b) - t.idOf(a));
    return slots
      .slice(0, Math.max(0, limit))
      .map((s) => ({ ...this.info(s, now), lateReset: (t.meta(s) & META_RESET) !== 0 }));
  }
}
