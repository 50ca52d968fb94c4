/**
 * The flow engine both data planes share, so idle timeout, reset and drop (B1-B8) behave the
 * same in each. Two entry points over one flow table:
 *
 * - packet level (`tcp`, `udp`): the packet plane feeds every parsed segment or datagram, as
 *   seen on the wire in either direction, and gets a verdict (forward, drop, answer with a
 *   RST). A client SYN for a rule creates the flow and chooses its backend.
 * - connection level (`open`, `activity`, `halfClose`, `close`): the proxy plane, which sees
 *   sockets and bytes rather than segments, reports what happens on a connection.
 *
 * Either way, one periodic call to `advance` returns the flows whose idle timeout passed,
 * each with its action: `reset` (with the sequence numbers for both RSTs) or `drop`.
 * Nothing here owns a timer: `nextDeadline()` tells the caller when to call again.
 */
import type { Clock } from './clock.js';
import { distributionMode, type DistributionHash } from './distribution.js';
import type {
  CloseReason,
  EngineStats,
  FlowEventSink,
  FlowInfo,
  IdleAction,
  RefuseReason,
  Endpoint,
} from './events.js';
import { emptyStats } from './events.js';
import { FlowKey, KEY_WORDS, PROTO_TCP, PROTO_UDP, formatIp, parseIp } from './flow-key.js';
import {
  DIR_ORIG,
  DIR_REPLY,
  FlowTable,
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
  type Dir,
} from './flow-table.js';
import { MAGLEV_TABLE_SIZE, buildMaglevTable, maglevLookup } from './maglev.js';
import { OutboundTable } from './outbound-table.js';
import { RuleTable, protocolName, protocolNumber, type RuleMatch } from './rule-table.js';
import type {
  AdminState,
  BackendMember,
  BackendPool,
  InboundRule,
  OutboundPath,
  Probe,
  Protocol,
  RuntimeSnapshot,
} from './snapshot.js';
import { SnatAllocator, outboundPathKey, snatPortOf, snatSpaceOf, type SnatUsage } from './snat-alloc.js';
import {
  META_FLOATING_IP,
  META_NO_SEQ,
  META_OUTBOUND,
  META_RESET,
  ST_CLOSED,
  ST_ESTABLISHED,
  ST_SYN_SENT,
  ST_TIME_WAIT,
  ST_TOMBSTONE,
  ST_UDP,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
  TRACK_OK,
  halfCloseAccepted,
  idleResetFields,
  resetForSegment,
  stateName,
  trackAccepted,
  trackSegment,
  trackSyn,
  type RstFields,
  type TcpSegment,
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
  /** How long an expired TCP flow is remembered for B6. Default 15 minutes, about when a
   * peer's retransmissions give up. */
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
}

export type Direction = 'toBackend' | 'toClient';

/**
 * The verdict on one packet. The engine reuses one instance: read it before the next call.
 * For `reset`, answer the packet's sender with a RST carrying `rstSeq`, `rstAck`, `rstFlags`.
 */
export class PacketVerdict {
  action: 'forward' | 'drop' | 'reset' = 'drop';
  direction: Direction = 'toBackend';
  flowId = -1;
  /** A flow was created by this packet. */
  created = false;
  /** False when the segment was forwarded but not trusted (outside the window). */
  trusted = true;
  /** Why a packet is dropped or reset: a RefuseReason, `no-flow`, `expired`, `rst`. */
  reason = '';
  rule: InboundRule | null = null;
  member: BackendMember | null = null;
  frontendPort = 0;
  backendPort = 0;
  /**
   * An outbound flow (a member to a remote peer): `toBackend` is towards the remote, with the
   * source to become `snatAddress:snatPort`; `toClient` is a reply, towards the member's own
   * address and `backendPort` (its source port). `rule` is null.
   */
  outbound: OutboundPath | null = null;
  snatAddress = '';
  snatPort = 0;
  /**
   * Floating IP: the flow reaches its backend still addressed to the frontend IP (only the port
   * is mapped), and the backend answers from the frontend IP.
   */
  floatingIP = false;
  rstSeq = 0;
  rstAck = 0;
  rstFlags = 0;
}

/**
 * One flow's end at idle, passed to the `advance` callback. The engine reuses one instance:
 * copy what you keep. `key` is the original tuple (client to frontend).
 */
export class ExpiryAction {
  flowId = -1;
  action: IdleAction = 'drop';
  protocol: Protocol = 'Tcp';
  rule!: InboundRule;
  member!: BackendMember;
  frontendPort = 0;
  backendPort = 0;
  /**
   * For an outbound flow: its path, and `key` is member to remote; `toClient` is the RST to the
   * member (from the remote), `toBackend` the RST to the remote (from `snatAddress:snatPort`).
   * `rule` is then left as it was: read `outbound` first.
   */
  outbound: OutboundPath | null = null;
  snatAddress = '';
  snatPort = 0;
  /** The backend owns the frontend IP: its RST is addressed to the frontend IP, not its own. */
  floatingIP = false;
  readonly key = new FlowKey();
  /** For `reset`: the RST towards the client (from the frontend address and port). */
  readonly toClient: RstFields = { seq: 0, ack: 0 };
  /** For `reset`: the RST towards the backend (as the backend sees the flow). */
  readonly toBackend: RstFields = { seq: 0, ack: 0 };
}

export type OpenResult =
  | {
      readonly ok: true;
      readonly flowId: number;
      readonly rule: InboundRule;
      readonly member: BackendMember;
      readonly backendAddress: string;
      readonly backendPort: number;
    }
  | { readonly ok: false; readonly reason: RefuseReason };

interface RuleRuntime {
  rule: InboundRule;
  removed: boolean;
  hash: DistributionHash;
}

interface OutboundRuntime {
  path: OutboundPath;
  readonly key: string;
  removed: boolean;
}

interface MemberRuntime {
  readonly member: BackendMember;
  readonly family: number;
}

interface PoolPick {
  version: number;
  table: Int32Array;
  /** Maglev positions to member indices. */
  members: number[];
}

const NO_PROBE = '';

export class FlowEngine {
  readonly clock: Clock;
  private readonly table: FlowTable;
  private readonly wheel: TimerWheel;
  private readonly maxFlows: number;
  private readonly maxTombstones: number;
  private readonly tombstoneTtlMs: number;
  private readonly udpTimeoutMs: number;
  private readonly lingerMs: number;
  private readonly initialHealthy: boolean;
  private readonly seed: number;
  private readonly maglevSize: number;
  private readonly sink: FlowEventSink | undefined;

  private rules: RuleTable;
  private readonly ruleRuntimes: RuleRuntime[] = [];
  private readonly ruleIndex = new Map<string, number>();
  private outboundTable: OutboundTable;
  /** Outbound flows hold an index into this in R_RULE (inbound flows: into ruleRuntimes). */
  private readonly outboundRuntimes: OutboundRuntime[] = [];
  private readonly outboundIndex = new Map<string, number>();
  private readonly snat: SnatAllocator;
  private readonly memberRuntimes: MemberRuntime[] = [];
  private readonly memberIndex = new Map<string, number>();
  private memberWords = new Uint32Array(64);
  private readonly health = new Map<string, boolean>();
  private readonly adminOverride = new Map<string, AdminState>();
  private readonly picks = new Map<string, PoolPick>();
  private healthVersion = 0;

  private live = 0;
  private tombstones = 0;
  private readonly tombRing: Float64Array;
  private tombHead = 0;
  private tombLen = 0;
  private readonly statsData: EngineStats = emptyStats();

  private readonly verdict = new PacketVerdict();
  private readonly expiry = new ExpiryAction();
  private readonly rstScratch = { seq: 0, ack: 0, flags: 0 };
  private readonly scratchKey = new FlowKey();
  private now = 0;
  private onAction: ((a: ExpiryAction) => void) | undefined;
  private readonly fire = (slot: number): void => this.fireSlot(slot);

  constructor(options: FlowEngineOptions) {
    this.clock = options.clock;
    this.maxFlows = options.maxFlows ?? 1_000_000;
    this.maxTombstones = options.maxTombstones ?? 100_000;
    this.tombstoneTtlMs = options.tombstoneTtlMs ?? DEFAULT_TOMBSTONE_TTL_MS;
    this.udpTimeoutMs = options.udpTimeoutMs ?? DEFAULT_UDP_TIMEOUT_MS;
    this.lingerMs = options.lingerMs ?? DEFAULT_LINGER_MS;
    this.initialHealthy = (options.initialHealth ?? 'up') === 'up';
    this.seed = options.hashSeed ?? 0x51c3;
    this.maglevSize = options.maglevTableSize ?? MAGLEV_TABLE_SIZE;
    this.sink = options.events;
    if (!(this.maxFlows >= 1)) throw new RangeError(`maxFlows must be >= 1, got ${this.maxFlows}`);
    if (!(this.maxTombstones >= 0)) throw new RangeError(`maxTombstones must be >= 0`);
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
    this.tombRing = new Float64Array(Math.max(1, this.maxTombstones));
    this.rules = new RuleTable({ loadBalancers: [], natGateways: [] });
    this.outboundTable = new OutboundTable({ loadBalancers: [], natGateways: [] });
    this.snat = new SnatAllocator({
      ...(options.snatHoldMs !== undefined ? { holdMs: options.snatHoldMs } : {}),
      ...(options.random !== undefined ? { random: options.random } : {}),
    });
    if (options.snapshot !== undefined) this.setSnapshot(options.snapshot);
  }

  // ---- configuration and health -------------------------------------------------------

  /**
   * Swaps in a new configuration at once. Flows of rules that still exist (same id) go on
   * under the rule's new settings, except the idle timeout: a flow keeps the one in force at
   * its last packet until its next packet (either direction), so a swap moves no deadline.
   * Flows of removed rules go on until they end, and `flowsOfRemovedRules()` lists them for
   * the caller to end as it sees fit.
   */
  setSnapshot(snapshot: RuntimeSnapshot): void {
    const next = new RuleTable(snapshot);
    const seen = new Set<number>();
    for (const rule of next.rules) {
      let idx = this.ruleIndex.get(rule.id);
      const hash = distributionMode(rule.kind === 'loadBalancingRule' ? rule.distribution : 'Default');
      const rt: RuleRuntime = { rule, removed: false, hash: hash ?? distributionMode('Default')! };
      if (idx === undefined) {
        idx = this.ruleRuntimes.length;
        this.ruleIndex.set(rule.id, idx);
        this.ruleRuntimes.push(rt);
      } else {
        this.ruleRuntimes[idx] = rt;
      }
      seen.add(idx);
      if (rule.kind === 'loadBalancingRule') for (const m of rule.pool.members) this.memberIdx(m);
      else for (const m of rule.mappings) this.memberIdx(m.member);
    }
    for (let i = 0; i < this.ruleRuntimes.length; i++) {
      if (!seen.has(i)) this.ruleRuntimes[i]!.removed = true;
    }
    this.rules = next;
    this.setOutbound(snapshot);
    this.healthVersion++;
  }

  get snapshot(): RuntimeSnapshot {
    return this.rules.snapshot;
  }

  /** Records a probe result for a member (per probe: rules with different probes differ). */
  setHealth(memberId: string, healthy: boolean, probeId?: string): void {
    const key = `${probeId ?? NO_PROBE}|${memberId}`;
    if (this.health.get(key) === healthy) return;
    this.health.set(key, healthy);
    this.healthVersion++;
  }

  /** Overrides a member's adminState at run time (`undefined` restores the configured one). */
  setAdminState(memberId: string, state: AdminState | undefined): void {
    if (state === undefined) this.adminOverride.delete(memberId);
    else this.adminOverride.set(memberId, state);
    this.healthVersion++;
  }

  // ---- packet level ----------------------------------------------------------------------

  /**
   * One TCP segment, with `key` as on the wire: client to frontend, or backend to client
   * (the reply tuple). The returned verdict is reused by the next call.
   */
  tcp(key: FlowKey, seg: TcpSegment): PacketVerdict {
    const now = this.clock.now();
    const v = this.resetVerdict();
    const t = this.table;
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
        this.fillFlowVerdict(v, slot, dir);
        v.action = 'forward';
        this.count(slot, dir, seg.len);
        if (trackSegment(t, slot, dir, seg) === TRACK_OK) {
          this.touch(slot, now);
          const after = t.state(slot);
          // Deadlines only move later on activity, except into a linger state.
          if (after !== state && (after === ST_TIME_WAIT || after === ST_CLOSED)) {
            this.wheel.schedule(slot, this.deadlineOf(slot));
          }
        } else {
          v.trusted = false;
          this.statsData.untrustedSegments++;
        }
        return v;
      }
      // A new connection on the 5-tuple of a finished one: the old record gives way.
      if (state === ST_TOMBSTONE) this.removeSlot(slot);
      else this.endFlow(slot, state === ST_CLOSED ? 'rst' : 'fin', now);
    }
    const match = this.rules.lookup(PROTO_TCP, key.words, 4, key.family, key.dstPort);
    if (match === undefined) {
      const ob = this.outboundTable.lookup(PROTO_TCP, key.words, 0, key.family);
      if (ob === undefined) {
        v.reason = 'no-rule';
        return v;
      }
      if (!isSyn) {
        this.statsData.noFlowDrops++;
        v.reason = 'no-flow';
        return v;
      }
      this.statsData.syns++;
      const os = this.createOutbound(ob, key.words, now);
      if (os < 0) {
        v.reason = REFUSE_REASONS[-os - 1]!;
        return v;
      }
      trackSyn(t, os, seg);
      this.count(os, DIR_ORIG, seg.len);
      return this.createdVerdict(v, os, now);
    }
    if (!isSyn) {
      this.statsData.noFlowDrops++;
      v.reason = 'no-flow';
      return v;
    }
    this.statsData.syns++;
    const slot = this.createFlow(match, key.words, now);
    if (slot < 0) {
      v.reason = REFUSE_REASONS[-slot - 1]!;
      return v;
    }
    trackSyn(t, slot, seg);
    this.count(slot, DIR_ORIG, seg.len);
    this.fillFlowVerdict(v, slot, DIR_ORIG);
    v.action = 'forward';
    v.created = true;
    this.emitCreated(slot, now);
    return v;
  }

  /** One UDP datagram, `key` as on the wire. A datagram to a rule with no flow starts one. */
  udp(key: FlowKey, payloadLength: number): PacketVerdict {
    const now = this.clock.now();
    const v = this.resetVerdict();
    const t = this.table;
    const e = t.find(key.words, 0);
    if (e !== -1) {
      const slot = e >> 1;
      const dir = (e & 1) as Dir;
      this.touch(slot, now);
      this.count(slot, dir, payloadLength);
      this.fillFlowVerdict(v, slot, dir);
      v.action = 'forward';
      return v;
    }
    const match = this.rules.lookup(PROTO_UDP, key.words, 4, key.family, key.dstPort);
    if (match === undefined) {
      const ob = this.outboundTable.lookup(PROTO_UDP, key.words, 0, key.family);
      if (ob === undefined) {
        v.reason = 'no-rule';
        return v;
      }
      const os = this.createOutbound(ob, key.words, now);
      if (os < 0) {
        v.reason = REFUSE_REASONS[-os - 1]!;
        return v;
      }
      t.setState(os, ST_UDP);
      this.count(os, DIR_ORIG, payloadLength);
      return this.createdVerdict(v, os, now);
    }
    const slot = this.createFlow(match, key.words, now);
    if (slot < 0) {
      v.reason = REFUSE_REASONS[-slot - 1]!;
      return v;
    }
    t.setState(slot, ST_UDP);
    this.count(slot, DIR_ORIG, payloadLength);
    this.fillFlowVerdict(v, slot, DIR_ORIG);
    v.action = 'forward';
    v.created = true;
    this.emitCreated(slot, now);
    return v;
  }

  // ---- connection level ------------------------------------------------------------------

  /**
   * A connection the proxy accepted (TCP) or a first datagram from a client (UDP): creates
   * the flow, established, and chooses its backend. A finished flow on the same 5-tuple
   * gives way; a live one is superseded, since a socket layer never has two.
   */
  open(
    protocol: Protocol,
    clientIp: string,
    clientPort: number,
    frontendIp: string,
    frontendPort: number,
  ): OpenResult {
    const now = this.clock.now();
    const key = this.scratchKey.set(protocolNumber(protocol), clientIp, clientPort, frontendIp, frontendPort);
    const t = this.table;
    const e = t.find(key.words, 0);
    if (e !== -1) {
      const slot = e >> 1;
      if ((e & 1) === DIR_REPLY) return this.refuse('tuple-in-use', protocol, key, now, undefined);
      if (t.state(slot) === ST_TOMBSTONE) this.removeSlot(slot);
      else this.endFlow(slot, 'superseded', now);
    }
    const match = this.rules.lookup(protocolNumber(protocol), key.words, 4, key.family, frontendPort);
    if (match === undefined) return this.refuse('no-rule', protocol, key, now, undefined);
    const slot = this.createFlow(match, key.words, now);
    if (slot < 0) return { ok: false, reason: REFUSE_REASONS[-slot - 1]! };
    if (protocol === 'Tcp') trackAccepted(t, slot);
    else {
      t.setState(slot, ST_UDP);
      t.setMeta(slot, t.meta(slot) | META_NO_SEQ);
    }
    this.emitCreated(slot, now);
    const m = this.memberRuntimes[t.memberOf(slot)]!.member;
    return {
      ok: true,
      flowId: t.idOf(slot),
      rule: match.rule,
      member: m,
      backendAddress: m.address,
      backendPort: t.backendPortOf(slot),
    };
  }

  /** Bytes relayed on a flow: refreshes its idle timer (B7). False when the flow is gone. */
  activity(flowId: number, direction: Direction, bytes: number): boolean {
    const slot = this.table.slotOf(flowId);
    if (slot < 0 || this.table.state(slot) === ST_TOMBSTONE) return false;
    this.touch(slot, this.clock.now());
    this.count(slot, direction === 'toBackend' ? DIR_ORIG : DIR_REPLY, bytes);
    return true;
  }

  /**
   * A FIN from one side (`toBackend`: the client half-closed). The flow leaves ESTABLISHED,
   * so at idle it is dropped without a RST (B5).
   */
  halfClose(flowId: number, direction: Direction): boolean {
    const slot = this.table.slotOf(flowId);
    if (slot < 0 || this.table.state(slot) === ST_TOMBSTONE || this.table.state(slot) === ST_UDP)
      return false;
    const before = this.table.state(slot);
    halfCloseAccepted(this.table, slot, direction === 'toBackend' ? DIR_ORIG : DIR_REPLY);
    this.touch(slot, this.clock.now());
    if (this.table.state(slot) !== before && this.table.state(slot) === ST_TIME_WAIT) {
      this.wheel.schedule(slot, this.deadlineOf(slot));
    }
    return true;
  }

  /** The flow ended (both sides closed, a reset, an unreachable backend...): forget it. */
  close(flowId: number, reason: CloseReason): boolean {
    const slot = this.table.slotOf(flowId);
    if (slot < 0) return false;
    if (this.table.state(slot) === ST_TOMBSTONE) {
      this.removeSlot(slot);
      return true;
    }
    this.endFlow(slot, reason, this.clock.now());
    return true;
  }

  /**
   * Ends a live flow now as if its idle timeout had passed with `action` (adminState Down,
   * drain end, removed rule). `reset` is honoured only for TCP; `onAction` receives the
   * action as from `advance`.
   */
  terminate(flowId: number, action: IdleAction, onAction?: (a: ExpiryAction) => void): boolean {
    const slot = this.table.slotOf(flowId);
    if (slot < 0 || this.table.state(slot) === ST_TOMBSTONE) return false;
    this.now = this.clock.now();
    this.onAction = onAction;
    this.expireSlot(slot, action === 'reset' && this.table.state(slot) !== ST_UDP);
    this.onAction = undefined;
    return true;
  }

  // ---- time --------------------------------------------------------------------------------

  /**
   * Expires every flow whose time has come, calling `onAction` for each idle expiry (not for
   * lingering closed flows or tombstones, which go quietly). Returns the number of entries
   * the timing wheel examined.
   */
  advance(onAction?: (a: ExpiryAction) => void, now = this.clock.now()): number {
    this.now = now;
    this.onAction = onAction;
    try {
      return this.wheel.advance(now, this.fire);
    } finally {
      this.onAction = undefined;
    }
  }

  /** When `advance` next has work (a lower bound; Infinity when there are no flows). */
  nextDeadline(): number {
    return this.wheel.nextWakeMs();
  }

  // ---- inspection -------------------------------------------------------------------------

  get flowCount(): number {
    return this.live;
  }

  get tombstoneCount(): number {
    return this.tombstones;
  }

  stats(): EngineStats {
    return copyStats(this.statsData);
  }

  /** SNAT ports of the outbound paths: allocated, and held by live outbound flows. */
  snatUsage(): SnatUsage[] {
    return this.snat.usage();
  }

  /** Bytes held by the flow table's arrays. */
  tableBytes(): number {
    return this.table.byteSize();
  }

  flow(flowId: number): FlowInfo | undefined {
    const slot = this.table.slotOf(flowId);
    if (slot < 0 || this.table.state(slot) === ST_TOMBSTONE) return undefined;
    return this.info(slot, this.clock.now());
  }

  /** Live flows (not tombstones). */
  flows(): FlowInfo[] {
    const now = this.clock.now();
    const out: FlowInfo[] = [];
    const t = this.table;
    for (let s = 0; s < t.capacity; s++) {
      const st = t.state(s);
      if (st !== 0 && st !== ST_TOMBSTONE) out.push(this.info(s, now));
    }
    return out;
  }

  /** Ids of live flows whose backend is this member. */
  flowsOfMember(memberId: string): number[] {
    return this.liveIds(
      (s) =>
        !(this.table.meta(s) & META_OUTBOUND) &&
        this.memberRuntimes[this.table.memberOf(s)]!.member.id === memberId,
    );
  }

  /** Ids of live flows whose rule is no longer in the configuration. */
  flowsOfRemovedRules(): number[] {
    return this.liveIds((s) =>
      this.table.meta(s) & META_OUTBOUND
        ? this.outboundRuntimes[this.table.ruleOf(s)]!.removed
        : this.ruleRuntimes[this.table.ruleOf(s)]!.removed,
    );
  }

  /** The rule a live flow belongs to, as it was configured even if it has since been removed. */
  ruleOf(flowId: number): InboundRule | undefined {
    const slot = this.table.slotOf(flowId);
    if (slot < 0 || this.table.state(slot) === ST_TOMBSTONE) return undefined;
    if (this.table.meta(slot) & META_OUTBOUND) return undefined;
    return this.ruleRuntimes[this.table.ruleOf(slot)]?.rule;
  }

  /**
   * What a live flow's rule or outbound path (as configured, even if since removed) does at idle:
   * `reset` when it has TCP reset on (never through a NAT gateway), else `drop`.
   */
  idleActionOf(flowId: number): IdleAction | undefined {
    const slot = this.table.slotOf(flowId);
    if (slot < 0 || this.table.state(slot) === ST_TOMBSTONE) return undefined;
    return this.resetAtIdle(slot) ? 'reset' : 'drop';
  }

  /** Finds a flow (or tombstone) id from a tuple as on the wire, with its direction. */
  lookup(key: FlowKey): { flowId: number; direction: Direction; tombstone: boolean } | undefined {
    const e = this.table.find(key.words, 0);
    if (e === -1) return undefined;
    const slot = e >> 1;
    return {
      flowId: this.table.idOf(slot),
      direction: (e & 1) === DIR_ORIG ? 'toBackend' : 'toClient',
      tombstone: this.table.state(slot) === ST_TOMBSTONE,
    };
  }

  // ---- internals -------------------------------------------------------------------------

  private liveIds(pred: (slot: number) => boolean): number[] {
    const out: number[] = [];
    const t = this.table;
    for (let s = 0; s < t.capacity; s++) {
      const st = t.state(s);
      if (st !== 0 && st !== ST_TOMBSTONE && pred(s)) out.push(t.idOf(s));
    }
    return out;
  }

  private memberIdx(m: BackendMember): number {
    // A member whose address changed is a different member: reply tuples depend on it.
    const k = `${m.id}|${m.address}`;
    let idx = this.memberIndex.get(k);
    if (idx !== undefined) return idx;
    idx = this.memberRuntimes.length;
    if ((idx + 1) * 4 > this.memberWords.length) {
      const w = new Uint32Array(this.memberWords.length * 2);
      w.set(this.memberWords);
      this.memberWords = w;
    }
    const family = parseIp(m.address, this.memberWords, idx * 4);
    if (family === 0) throw new TypeError(`backend address is not an IP address: ${m.address}`);
    this.memberRuntimes.push({ member: m, family });
    this.memberIndex.set(k, idx);
    return idx;
  }

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
      for (let i = 0; i < 4; i++) out[off + i] = this.memberWords[m * 4 + i]!;
      sport = t.backendPortOf(slot);
      family = this.memberRuntimes[m]!.family;
    }
    for (let i = 0; i < 4; i++) out[off + 4 + i] = keys[k + i]!;
    out[off + 8] = ((sport << 16) | (keys[k + 8]! >>> 16)) >>> 0;
    out[off + 9] = (family << 8) | (keys[k + 9]! & 0xff);
  }

  private adminState(m: BackendMember): AdminState {
    return this.adminOverride.get(m.id) ?? m.adminState;
  }

  private pickMember(
    rt: RuleRuntime,
    pool: BackendPool,
    probe: Probe | undefined,
    words: Uint32Array,
  ): number {
    const cacheKey = `${pool.id}|${probe?.id ?? NO_PROBE}`;
    let pick = this.picks.get(cacheKey);
    // Health, admin state and snapshots all bump the version, so a stale table is rebuilt lazily.
    if (pick === undefined || pick.version !== this.healthVersion) {
      pick = this.buildPick(pool, probe);
      this.picks.set(cacheKey, pick);
    }
    if (pick.members.length === 0) return -1;
    const pos = maglevLookup(pick.table, rt.hash(words, 0, this.seed));
    return pos < 0 ? -1 : pick.members[pos]!;
  }

  private buildPick(pool: BackendPool, probe: Probe | undefined): PoolPick {
    const candidates = pool.members.filter((m) => this.adminState(m) !== 'Down');
    let eligible = candidates.filter(
      (m) =>
        this.adminState(m) === 'Up' ||
        probe === undefined ||
        (this.health.get(`${probe.id}|${m.id}`) ?? this.initialHealthy),
    );
    if (eligible.length === 0 && probe?.noHealthyBackendsBehavior === 'AllProbedUp') eligible = candidates;
    const table = buildMaglevTable(
      eligible.map((m) => ({ key: m.id, weight: 1 })),
      this.maglevSize,
    );
    return { version: this.healthVersion, table, members: eligible.map((m) => this.memberIdx(m)) };
  }

  /** Creates and indexes a flow; returns its slot, or -(1 + refuse reason index). */
  private createFlow(match: RuleMatch, words: Uint32Array, now: number): number {
    const proto = words[9]! & 0xff;
    const rule = match.rule;
    const ruleIdx = this.ruleIndex.get(rule.id)!;
    const rt = this.ruleRuntimes[ruleIdx]!;
    const dport = words[8]! & 0xffff;
    const refuse = (reason: RefuseReason): number => {
      this.refuseEvent(reason, proto, words, now, rule.id);
      return -1 - REFUSE_REASONS.indexOf(reason);
    };
    if (this.live >= this.maxFlows) return refuse('capacity');
    let memberIdx: number;
    let backendPort: number;
    if (match.nat !== null) {
      if (this.adminState(match.nat.member) === 'Down') return refuse('member-down');
      memberIdx = this.memberIdx(match.nat.member);
      backendPort = match.nat.backendPort;
    } else if (rule.kind === 'loadBalancingRule') {
      memberIdx = this.pickMember(rt, rule.pool, rule.probe, words);
      if (memberIdx < 0) return refuse('no-backend');
      backendPort = rule.haPorts || rule.backendPort === 0 ? dport : rule.backendPort;
    } else return refuse('no-backend');
    const t = this.table;
    const slot = t.alloc();
    if (slot < 0) return refuse('capacity');
    t.keys.set(words.subarray(0, KEY_WORDS), slot * KEY_WORDS);
    t.setState(slot, ST_SYN_SENT);
    t.setMeta(slot, rule.enableFloatingIP ? META_FLOATING_IP : 0);
    t.rec[slot * REC + R_RULE] = ruleIdx;
    t.rec[slot * REC + R_MEMBER] = memberIdx;
    t.rec[slot * REC + R_BACKEND_PORT] = backendPort;
    t.num[slot * NUM + N_CREATED] = now;
    t.num[slot * NUM + N_LAST_SEEN] = now;
    t.num[slot * NUM + N_IDLE_MS] = rule.idleTimeout.ms;
    t.num.fill(0, slot * NUM + N_BYTES, slot * NUM + N_PACKETS + 2);
    if (!t.insert(slot)) {
      t.release(slot);
      return refuse('tuple-in-use');
    }
    this.live++;
    this.statsData.flowsCreated++;
    this.wheel.schedule(slot, now + this.timeoutOf(slot, proto === PROTO_UDP ? ST_UDP : ST_SYN_SENT));
    return slot;
  }

  /**
   * Outbound runtimes follow the snapshot by path identity (member and rule or gateway), as
   * rule runtimes follow rule ids; the SNAT ranges are laid out anew, ports in use kept.
   */
  private setOutbound(snapshot: RuntimeSnapshot): void {
    const table = new OutboundTable(snapshot);
    const seen = new Set<number>();
    for (const path of table.paths) {
      const key = outboundPathKey(path);
      let idx = this.outboundIndex.get(key);
      if (idx === undefined) {
        idx = this.outboundRuntimes.length;
        this.outboundIndex.set(key, idx);
        this.outboundRuntimes.push({ path, key, removed: false });
      } else this.outboundRuntimes[idx] = { path, key, removed: false };
      seen.add(idx);
      this.memberIdx(path.member);
    }
    for (let i = 0; i < this.outboundRuntimes.length; i++)
      if (!seen.has(i)) this.outboundRuntimes[i]!.removed = true;
    this.outboundTable = table;
    this.snat.layout(snapshot);
  }

  /**
   * An outbound flow from a member: its own tuple as the original, a SNAT port from the
   * member's range for the reply tuple. Returns the slot, or -(1 + refuse reason index).
   */
  private createOutbound(path: OutboundPath, words: Uint32Array, now: number): number {
    const proto = words[9]! & 0xff;
    const key = outboundPathKey(path);
    const ruleId = path.via.kind === 'natGateway' ? path.via.natGateway.id : path.via.rule.id;
    const refuse = (reason: RefuseReason): number => {
      this.refuseEvent(reason, proto, words, now, ruleId);
      return -1 - REFUSE_REASONS.indexOf(reason);
    };
    if (this.live >= this.maxFlows) return refuse('capacity');
    const t = this.table;
    const slot = t.alloc();
    if (slot < 0) return refuse('capacity');
    const packed = this.snat.allocate(key, t.idOf(slot), now, (owner) => this.reclaimTombstone(owner));
    if (packed < 0) {
      t.release(slot);
      return refuse('snat-ports');
    }
    t.keys.set(words.subarray(0, KEY_WORDS), slot * KEY_WORDS);
    t.setState(slot, ST_SYN_SENT);
    t.setMeta(slot, META_OUTBOUND);
    t.rec[slot * REC + R_RULE] = this.outboundIndex.get(key)!;
    t.rec[slot * REC + R_MEMBER] = this.memberIdx(path.member);
    t.rec[slot * REC + R_BACKEND_PORT] = packed;
    t.num[slot * NUM + N_CREATED] = now;
    t.num[slot * NUM + N_LAST_SEEN] = now;
    t.num[slot * NUM + N_IDLE_MS] = path.idleTimeout.ms;
    t.num.fill(0, slot * NUM + N_BYTES, slot * NUM + N_PACKETS + 2);
    if (!t.insert(slot)) {
      this.snat.release(packed, t.idOf(slot), now);
      t.release(slot);
      return refuse('tuple-in-use');
    }
    this.live++;
    this.statsData.flowsCreated++;
    this.wheel.schedule(slot, now + this.timeoutOf(slot, proto === PROTO_UDP ? ST_UDP : ST_SYN_SENT));
    return slot;
  }

  /** A tombstone gives up its SNAT port to a new flow of a member with no other port free. */
  private reclaimTombstone(flowId: number): boolean {
    const slot = this.table.slotOf(flowId);
    if (slot < 0 || this.table.state(slot) !== ST_TOMBSTONE) return false;
    this.removeSlot(slot);
    return true;
  }

  private createdVerdict(v: PacketVerdict, slot: number, now: number): PacketVerdict {
    this.fillFlowVerdict(v, slot, DIR_ORIG);
    v.action = 'forward';
    v.created = true;
    this.emitCreated(slot, now);
    return v;
  }

  /** Unindexes and frees a slot, and the SNAT port of an outbound flow with it. */
  private freeSlot(slot: number): void {
    const t = this.table;
    if (t.meta(slot) & META_OUTBOUND)
      this.snat.release(t.backendPortOf(slot), t.idOf(slot), this.clock.now());
    t.unindex(slot);
    t.release(slot);
  }

  /** The idle timeout now configured for a flow's rule or outbound path. */
  private currentIdleMs(slot: number): number {
    const t = this.table;
    if (t.meta(slot) & META_OUTBOUND) return this.outboundRuntimes[t.ruleOf(slot)]!.path.idleTimeout.ms;
    return this.ruleRuntimes[t.ruleOf(slot)]!.rule.idleTimeout.ms;
  }

  /** Whether an established flow is reset at idle (B4): never through a NAT gateway. */
  private resetAtIdle(slot: number): boolean {
    const t = this.table;
    if (t.meta(slot) & META_OUTBOUND) return this.outboundRuntimes[t.ruleOf(slot)]!.path.enableTcpReset;
    return this.ruleRuntimes[t.ruleOf(slot)]!.rule.enableTcpReset;
  }

  /**
   * Whether later segments of an expired flow are answered with a RST (B6). A NAT gateway
   * drops idle flows silently yet answers a later packet with a RST to its sender, as Azure's
   * NAT gateway does.
   */
  private resetAfterExpiry(slot: number): boolean {
    const t = this.table;
    if (t.meta(slot) & META_OUTBOUND) {
      const path = this.outboundRuntimes[t.ruleOf(slot)]!.path;
      return path.via.kind === 'natGateway' || path.enableTcpReset;
    }
    return this.ruleRuntimes[t.ruleOf(slot)]!.rule.enableTcpReset;
  }

  private outboundInfo(slot: number, now: number, state: number, timeoutMs: number): FlowInfo {
    const t = this.table;
    const k = slot * KEY_WORDS;
    const family = t.keys[k + 9]! >>> 8;
    const proto = t.keys[k + 9]! & 0xff;
    const ort = this.outboundRuntimes[t.ruleOf(slot)]!;
    const via = ort.path.via;
    const packed = t.backendPortOf(slot);
    return {
      id: t.idOf(slot),
      protocol: protocolName(proto),
      state: stateName(state),
      // The member opened the flow: it is the client, the remote peer the backend, and the
      // SNAT address and port the frontend the remote sees.
      client: { address: formatIp(t.keys, k, family), port: t.keys[k + 8]! >>> 16 },
      frontend: { address: this.snat.space(snatSpaceOf(packed)).address, port: snatPortOf(packed) },
      backend: { address: formatIp(t.keys, k + 4, family), port: t.keys[k + 8]! & 0xffff },
      memberId: ort.path.member.id,
      ruleId: via.kind === 'natGateway' ? via.natGateway.id : via.rule.id,
      ruleName: via.kind === 'natGateway' ? via.natGateway.name : via.rule.name,
      ruleRemoved: ort.removed,
      outbound: via.kind,
      createdAt: t.num[slot * NUM + N_CREATED]!,
      lastSeenAt: t.lastSeen(slot),
      ageMs: now - t.num[slot * NUM + N_CREATED]!,
      idleMs: now - t.lastSeen(slot),
      msLeft: Math.max(0, t.lastSeen(slot) + timeoutMs - now),
      timeoutMs,
      bytesToBackend: t.num[slot * NUM + N_BYTES]!,
      bytesToClient: t.num[slot * NUM + N_BYTES + 1]!,
      packetsToBackend: t.num[slot * NUM + N_PACKETS]!,
      packetsToClient: t.num[slot * NUM + N_PACKETS + 1]!,
    };
  }

  private timeoutOf(slot: number, state: number): number {
    switch (state) {
      case ST_TOMBSTONE:
        return this.tombstoneTtlMs;
      case ST_TIME_WAIT:
      case ST_CLOSED:
        return this.lingerMs;
      case ST_UDP:
        return this.udpTimeoutMs;
      default:
        return this.table.idleMs(slot);
    }
  }

  /**
   * A packet (or relayed bytes) on a live flow: its idle time starts again, now under its
   * rule's current timeout, which may have changed since the flow's last packet.
   */
  private touch(slot: number, now: number): void {
    const t = this.table;
    const b = slot * NUM;
    t.num[b + N_LAST_SEEN] = now;
    const ms = this.currentIdleMs(slot);
    const before = t.num[b + N_IDLE_MS]!;
    if (ms === before) return;
    t.num[b + N_IDLE_MS] = ms;
    // The wheel re-files entries whose deadline moved later by itself; an earlier one needs a reschedule.
    if (ms < before) this.wheel.schedule(slot, this.deadlineOf(slot));
  }

  private deadlineOf(slot: number): number {
    return this.table.lastSeen(slot) + this.timeoutOf(slot, this.table.state(slot));
  }

  private fireSlot(slot: number): void {
    const t = this.table;
    const state = t.state(slot);
    if (state === 0) return;
    const deadline = this.deadlineOf(slot);
    if (deadline > this.now) {
      this.wheel.schedule(slot, deadline);
      return;
    }
    if (state === ST_TOMBSTONE) {
      this.removeSlot(slot);
      return;
    }
    if (state === ST_TIME_WAIT || state === ST_CLOSED) {
      this.endFlow(slot, state === ST_CLOSED ? 'rst' : 'fin', this.now);
      return;
    }
    this.expireSlot(slot, state === ST_ESTABLISHED && this.resetAtIdle(slot));
  }

  /** Idle end of a live flow: action out, event, then a tombstone (TCP) or nothing (UDP). */
  private expireSlot(slot: number, reset: boolean): void {
    const t = this.table;
    const now = this.now;
    const outbound = (t.meta(slot) & META_OUTBOUND) !== 0;
    const isUdp = t.state(slot) === ST_UDP;
    if (reset) this.statsData.expiredReset++;
    else this.statsData.expiredDrop++;
    if (this.onAction !== undefined) {
      const a = this.expiry;
      a.flowId = t.idOf(slot);
      a.action = reset ? 'reset' : 'drop';
      a.protocol = isUdp ? 'Udp' : 'Tcp';
      a.member = this.memberRuntimes[t.memberOf(slot)]!.member;
      a.key.copyFrom(t.keys, slot * KEY_WORDS);
      a.floatingIP = (t.meta(slot) & META_FLOATING_IP) !== 0;
      if (outbound) {
        const packed = t.backendPortOf(slot);
        a.outbound = this.outboundRuntimes[t.ruleOf(slot)]!.path;
        a.snatAddress = this.snat.space(snatSpaceOf(packed)).address;
        a.snatPort = snatPortOf(packed);
        a.frontendPort = a.snatPort;
        a.backendPort = a.key.srcPort;
      } else {
        a.outbound = null;
        a.rule = this.ruleRuntimes[t.ruleOf(slot)]!.rule;
        a.frontendPort = a.key.dstPort;
        a.backendPort = t.backendPortOf(slot);
      }
      idleResetFields(t, slot, a.toClient, a.toBackend);
      this.onAction(a);
    }
    if (this.sink !== undefined) {
      this.sink({ type: 'expired', at: now, action: reset ? 'reset' : 'drop', flow: this.info(slot, now) });
    }
    this.live--;
    if (isUdp || this.maxTombstones === 0) {
      this.wheel.cancel(slot);
      this.freeSlot(slot);
      return;
    }
    this.toTombstone(slot, this.resetAfterExpiry(slot), now);
  }

  private toTombstone(slot: number, resetEnabled: boolean, now: number): void {
    const t = this.table;
    if (this.tombstones >= this.maxTombstones) this.evictTombstone();
    t.setState(slot, ST_TOMBSTONE);
    t.setMeta(slot, (t.meta(slot) & (META_FLOATING_IP | META_OUTBOUND)) | (resetEnabled ? META_RESET : 0));
    if (t.meta(slot) & META_OUTBOUND) this.snat.retire(t.backendPortOf(slot), now);
    t.num[slot * NUM + N_LAST_SEEN] = now;
    this.tombstones++;
    if (this.tombLen === this.tombRing.length) this.popTombRing();
    this.tombRing[(this.tombHead + this.tombLen) % this.tombRing.length] = t.idOf(slot);
    this.tombLen++;
    this.wheel.schedule(slot, now + this.tombstoneTtlMs);
  }

  /** Pops the oldest ring entry, removing it if it is still a tombstone. */
  private popTombRing(): boolean {
    const id = this.tombRing[this.tombHead]!;
    this.tombHead = (this.tombHead + 1) % this.tombRing.length;
    this.tombLen--;
    const slot = this.table.slotOf(id);
    if (slot < 0 || this.table.state(slot) !== ST_TOMBSTONE) return false;
    this.removeSlot(slot);
    this.statsData.tombstonesEvicted++;
    return true;
  }

  private evictTombstone(): void {
    while (this.tombLen > 0 && !this.popTombRing()) {
      /* stale entries: tombstones already gone */
    }
  }

  /** Removes a tombstone's slot. */
  private removeSlot(slot: number): void {
    const t = this.table;
    if (t.state(slot) === ST_TOMBSTONE) this.tombstones--;
    this.wheel.cancel(slot);
    this.freeSlot(slot);
  }

  /** Removes a live flow that ended by itself or was closed by its data plane. */
  private endFlow(slot: number, reason: CloseReason, now: number): void {
    this.statsData.closed[reason]++;
    if (this.sink !== undefined) this.sink({ type: 'closed', at: now, reason, flow: this.info(slot, now) });
    this.live--;
    this.wheel.cancel(slot);
    this.freeSlot(slot);
  }

  private tombstoneVerdict(slot: number, dir: Dir, seg: TcpSegment): PacketVerdict {
    const v = this.verdict;
    const t = this.table;
    this.fillFlowVerdict(v, slot, dir);
    v.reason = 'expired';
    // Never answer a RST with a RST (RFC 9293).
    if (t.meta(slot) & META_RESET && !(seg.flags & TCP_RST)) {
      v.action = 'reset';
      const r = this.rstScratch;
      resetForSegment(seg, r);
      v.rstSeq = r.seq;
      v.rstAck = r.ack;
      v.rstFlags = r.flags;
      this.statsData.tombstoneResets++;
    } else {
      v.action = 'drop';
      this.statsData.tombstoneDrops++;
    }
    return v;
  }

  private count(slot: number, dir: number, bytes: number): void {
    const n = this.table.num;
    const b = slot * NUM;
    n[b + N_BYTES + dir] = n[b + N_BYTES + dir]! + bytes;
    n[b + N_PACKETS + dir] = n[b + N_PACKETS + dir]! + 1;
  }

  private resetVerdict(): PacketVerdict {
    const v = this.verdict;
    v.action = 'drop';
    v.direction = 'toBackend';
    v.flowId = -1;
    v.created = false;
    v.trusted = true;
    v.reason = '';
    v.rule = null;
    v.member = null;
    v.frontendPort = 0;
    v.backendPort = 0;
    v.outbound = null;
    v.snatAddress = '';
    v.snatPort = 0;
    v.floatingIP = false;
    v.rstSeq = 0;
    v.rstAck = 0;
    v.rstFlags = 0;
    return v;
  }

  private fillFlowVerdict(v: PacketVerdict, slot: number, dir: Dir): void {
    const t = this.table;
    v.flowId = t.idOf(slot);
    v.direction = dir === DIR_ORIG ? 'toBackend' : 'toClient';
    v.member = this.memberRuntimes[t.memberOf(slot)]!.member;
    v.floatingIP = (t.meta(slot) & META_FLOATING_IP) !== 0;
    if (t.meta(slot) & META_OUTBOUND) {
      const packed = t.backendPortOf(slot);
      v.rule = null;
      v.outbound = this.outboundRuntimes[t.ruleOf(slot)]!.path;
      v.snatAddress = this.snat.space(snatSpaceOf(packed)).address;
      v.snatPort = snatPortOf(packed);
      v.frontendPort = v.snatPort;
      v.backendPort = t.keys[slot * KEY_WORDS + 8]! >>> 16;
      return;
    }
    v.outbound = null;
    v.rule = this.ruleRuntimes[t.ruleOf(slot)]!.rule;
    v.frontendPort = t.keys[slot * KEY_WORDS + 8]! & 0xffff;
    v.backendPort = t.backendPortOf(slot);
  }

  private refuse(
    reason: RefuseReason,
    protocol: Protocol,
    key: FlowKey,
    now: number,
    ruleId: string | undefined,
  ): OpenResult {
    this.refuseEvent(reason, protocolNumber(protocol), key.words, now, ruleId);
    return { ok: false, reason };
  }

  private refuseEvent(
    reason: RefuseReason,
    proto: number,
    words: Uint32Array,
    now: number,
    ruleId: string | undefined,
  ): void {
    this.statsData.refused[reason]++;
    if (this.sink === undefined) return;
    const family = words[9]! >>> 8;
    this.sink({
      type: 'refused',
      at: now,
      reason,
      protocol: protocolName(proto),
      client: { address: formatIp(words, 0, family), port: words[8]! >>> 16 },
      frontend: { address: formatIp(words, 4, family), port: words[8]! & 0xffff },
      ...(ruleId !== undefined ? { ruleId } : {}),
    });
  }

  private emitCreated(slot: number, now: number): void {
    if (this.sink !== undefined) this.sink({ type: 'created', at: now, flow: this.info(slot, now) });
  }

  private info(slot: number, now: number): FlowInfo {
    const t = this.table;
    const k = slot * KEY_WORDS;
    const family = t.keys[k + 9]! >>> 8;
    const proto = t.keys[k + 9]! & 0xff;
    const mr = this.memberRuntimes[t.memberOf(slot)]!;
    const state = t.state(slot);
    const timeoutMs = this.timeoutOf(slot, state);
    const endpoint = (address: string, port: number): Endpoint => ({ address, port });
    if (t.meta(slot) & META_OUTBOUND) return this.outboundInfo(slot, now, state, timeoutMs);
    const rt = this.ruleRuntimes[t.ruleOf(slot)]!;
    return {
      id: t.idOf(slot),
      protocol: protocolName(proto),
      state: stateName(state),
      client: endpoint(formatIp(t.keys, k, family), t.keys[k + 8]! >>> 16),
      frontend: endpoint(formatIp(t.keys, k + 4, family), t.keys[k + 8]! & 0xffff),
      backend: endpoint(mr.member.address, t.backendPortOf(slot)),
      memberId: mr.member.id,
      ruleId: rt.rule.id,
      ruleName: rt.rule.name,
      ruleRemoved: rt.removed,
      createdAt: t.num[slot * NUM + N_CREATED]!,
      lastSeenAt: t.lastSeen(slot),
      ageMs: now - t.num[slot * NUM + N_CREATED]!,
      idleMs: now - t.lastSeen(slot),
      msLeft: Math.max(0, t.lastSeen(slot) + timeoutMs - now),
      timeoutMs,
      bytesToBackend: t.num[slot * NUM + N_BYTES]!,
      bytesToClient: t.num[slot * NUM + N_BYTES + 1]!,
      packetsToBackend: t.num[slot * NUM + N_PACKETS]!,
      packetsToClient: t.num[slot * NUM + N_PACKETS + 1]!,
    };
  }
}

const REFUSE_REASONS: readonly RefuseReason[] = [
  'capacity',
  'no-rule',
  'no-backend',
  'member-down',
  'tuple-in-use',
  'snat-ports',
];

function copyStats(s: EngineStats): EngineStats {
  return { ...s, closed: { ...s.closed }, refused: { ...s.refused } };
}
