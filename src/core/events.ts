/**
 * What the flow engine tells the rest of Sluice. The engine calls one injected sink; the
 * composition root fans events out to metrics, logs and the event stream, so the core
 * never depends on any of them.
 */
import type { FlowState } from './tcp-state.js';
import type { Protocol } from './snapshot.js';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** One flow as the control plane lists it (`sluice flows`, GET /sluice/v1/flows). */
export interface FlowInfo {
  readonly id: number;
  readonly protocol: Protocol;
  readonly state: FlowState;
  readonly client: Endpoint;
  readonly frontend: Endpoint;
  readonly backend: Endpoint;
  readonly memberId: string;
  readonly ruleId: string;
  readonly ruleName: string;
  /** The rule is no longer in the configuration; the flow goes on until it ends. */
  readonly ruleRemoved: boolean;
  /**
   * Set on an outbound flow, opened by a member (`client`) towards a remote peer (`backend`),
   * which sees it from the SNAT address and port (`frontend`); `ruleId` and `ruleName` are
   * then the outbound rule's or the NAT gateway's.
   */
  readonly outbound?: 'outboundRule' | 'natGateway';
  readonly createdAt: number;
  readonly lastSeenAt: number;
  readonly ageMs: number;
  readonly idleMs: number;
  /** Time left before the idle timeout (or linger, or tombstone lifetime) ends it. */
  readonly msLeft: number;
  readonly timeoutMs: number;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
  readonly packetsToBackend: number;
  readonly packetsToClient: number;
  /**
   * Set on a flow this instance adopted: its first packet here was a mid-flow segment, in a
   * change of the pool of instances (docs/scale-out.md).
   */
  readonly adopted?: true;
}

export type IdleAction = 'reset' | 'drop';

/**
 * Why a flow ended at idle without a RST: `udp` UDP has no reset (B8); `reset-disabled` its
 * rule or outbound path has no TCP reset, or goes through a NAT gateway (B3); `not-established`
 * it was in its handshake or closing, and only ESTABLISHED flows are reset (B5); `terminated`
 * Sluice ended it without a reset (a removed rule without TCP reset, a packet with no SNAT port).
 */
export type NoResetReason = 'udp' | 'reset-disabled' | 'not-established' | 'terminated';

/**
 * Why a flow ended other than by idle timeout: `fin` both sides closed, `rst` a reset was
 * seen, `backend-unreachable` the backend could not be reached, `terminated` ended by the
 * operator or by Sluice (member down, rule removed), `superseded` a new connection reused
 * the 5-tuple, `shutdown` Sluice is stopping, `moved` the flow went idle here because the
 * router moved it to another instance of the pool, which carries it now: retired silently.
 */
export type CloseReason =
  'fin' | 'rst' | 'backend-unreachable' | 'terminated' | 'superseded' | 'shutdown' | 'moved';

/**
 * Why a new flow was not created: `capacity` the flow table is full, `no-rule` nothing
 * listens on that address, protocol and port, `no-backend` no member is eligible,
 * `member-down` the inbound NAT rule's member is administratively down, `tuple-in-use` the
 * 5-tuple belongs to a live flow, `snat-ports` every SNAT port of the member's outbound
 * allocation is in use (or resting after use).
 */
export type RefuseReason =
  'capacity' | 'no-rule' | 'no-backend' | 'member-down' | 'tuple-in-use' | 'snat-ports';

export type FlowEvent =
  | { readonly type: 'created'; readonly at: number; readonly flow: FlowInfo }
  | {
      readonly type: 'expired';
      readonly at: number;
      readonly action: IdleAction;
      /** Set when `action` is `drop`: why there was no RST. `flow.state` is the state it ended in. */
      readonly noReset?: NoResetReason;
      readonly flow: FlowInfo;
    }
  | { readonly type: 'closed'; readonly at: number; readonly reason: CloseReason; readonly flow: FlowInfo }
  | {
      readonly type: 'refused';
      readonly at: number;
      readonly reason: RefuseReason;
      readonly protocol: Protocol;
      readonly client: Endpoint;
      readonly frontend: Endpoint;
      readonly ruleId?: string;
    };

export type FlowEventSink = (event: FlowEvent) => void;

/** Counters kept by the engine whether or not a sink is attached. */
export interface EngineStats {
  flowsCreated: number;
  /** SYNs that arrived for a rule (new TCP flows attempted by the packet API). */
  syns: number;
  expiredReset: number;
  expiredDrop: number;
  closed: Record<CloseReason, number>;
  refused: Record<RefuseReason, number>;
  /** Later packets of an expired flow answered with a RST (B6). */
  tombstoneResets: number;
  /** Later packets of an expired flow dropped (B3, B6). */
  tombstoneDrops: number;
  tombstonesEvicted: number;
  /** Non-SYN packets with no flow, dropped (no reset on their path, a RST, a backend's reply). */
  noFlowDrops: number;
  /** Non-SYN packets with no flow answered with a RST (B6, no tombstone needed). */
  noFlowResets: number;
  /** Segments forwarded but not trusted (outside the windows, unexpected flags). */
  untrustedSegments: number;
  /** Flows adopted from a mid-flow segment in a change of the pool. */
  adopted: number;
  /** Flows tracked again from a client's segment beyond their record, in a change of the pool (they came back). */
  resynced: number;
  /** Strays of reset paths dropped silently while a change of the pool might still be learned. */
  strayHeld: number;
  /** Idle flows the pool was asked about (they may have moved). */
  asked: number;
}

export function emptyStats(): EngineStats {
  return {
    flowsCreated: 0,
    syns: 0,
    expiredReset: 0,
    expiredDrop: 0,
    closed: {
      fin: 0,
      rst: 0,
      'backend-unreachable': 0,
      terminated: 0,
      superseded: 0,
      shutdown: 0,
      moved: 0,
    },
    refused: {
      capacity: 0,
      'no-rule': 0,
      'no-backend': 0,
      'member-down': 0,
      'tuple-in-use': 0,
      'snat-ports': 0,
    },
    tombstoneResets: 0,
    tombstoneDrops: 0,
    tombstonesEvicted: 0,
    noFlowDrops: 0,
    noFlowResets: 0,
    untrustedSegments: 0,
    adopted: 0,
    resynced: 0,
    strayHeld: 0,
    asked: 0,
  };
}
