/** What the proxy data plane reports, beyond the flow engine's own events. */
import type { ExpiryAction } from '../../core/engine.js';
import type { FlowShareRefusal } from '../../core/budget.js';
import type { CloseReason } from '../../core/events.js';
import type { Protocol } from '../../core/snapshot.js';
import type { ReadBufferStats } from './read-buffers.js';

export interface ListenerRef {
  readonly protocol: Protocol;
  readonly address: string;
  readonly port: number;
  readonly ruleName: string;
  readonly ruleKind: 'loadBalancingRule' | 'inboundNatRule';
  readonly loadBalancer: string;
}

export type ProxyEvent =
  /**
   * A new flow refused because its share of the open-files limit is full: a TCP connection is
   * reset, a UDP datagram dropped. `client` is `address:port`; `capacity` the share's size.
   */
  | {
      readonly type: 'share-full';
      readonly reason: FlowShareRefusal;
      readonly client: string;
      readonly capacity: number;
    }
  | {
      readonly type: 'listener-error';
      readonly listener: ListenerRef;
      readonly code: string;
      readonly message: string;
    }
  | {
      readonly type: 'backend-unreachable';
      readonly flowId: number;
      readonly backend: string;
      readonly code: string;
    }
  | {
      readonly type: 'idle-reset';
      readonly flowId: number;
      readonly client: string;
      readonly backend: string;
    }
  | { readonly type: 'idle-drop'; readonly flowId: number; readonly client: string; readonly backend: string }
  | {
      readonly type: 'hold-released';
      readonly flowId: number;
      readonly reason: 'hold-ended' | 'endpoint-closed';
    };

export type ProxyEventSink = (event: ProxyEvent) => void;

/** Counters the proxy plane keeps whether or not a sink is attached. */
export interface ProxyStats {
  accepted: number;
  refused: number;
  /** TCP connections refused because the TCP share is full (part of `refused`). */
  refusedDescriptors: number;
  /** UDP datagrams of new flows dropped because the UDP share, or the client's part of it, is full. */
  udpRefusedShare: number;
  backendUnreachable: number;
  rstToClient: number;
  rstToBackend: number;
  idleResets: number;
  idleDrops: number;
  blackholed: number;
  bytesToBackend: number;
  bytesToClient: number;
  udpDatagramsToBackend: number;
  udpDatagramsToClient: number;
  udpDatagramsDropped: number;
  listenerErrors: number;
}

export function emptyProxyStats(): ProxyStats {
  return {
    accepted: 0,
    refused: 0,
    refusedDescriptors: 0,
    udpRefusedShare: 0,
    backendUnreachable: 0,
    rstToClient: 0,
    rstToBackend: 0,
    idleResets: 0,
    idleDrops: 0,
    blackholed: 0,
    bytesToBackend: 0,
    bytesToClient: 0,
    udpDatagramsToBackend: 0,
    udpDatagramsToClient: 0,
    udpDatagramsDropped: 0,
    listenerErrors: 0,
  };
}

/** What the proxy plane asks of its TCP relay, whichever carries the bytes. */
export interface TcpRelay {
  readonly activeFlows: number;
  readonly heldFlows: number;
  readonly readBuffers: ReadBufferStats;
  /** Carries out the engine's idle expiry for one of the relay's flows. */
  expire(a: ExpiryAction): void;
  /** Lets go of blackholed flows whose hold has ended. */
  releaseHolds(now: number): void;
  /** When the first hold ends (Infinity: none). */
  readonly nextHoldEnd: number;
  /** Streams that read nothing since the last sweep give back their read buffers. */
  sweepReadBuffers(): void;
  terminate(flowId: number, action: 'reset' | 'close', reason: CloseReason): void;
  owns(flowId: number): boolean;
  closeAll(): void;
  /** Resolves once every end the relay began to close is closed. */
  settled(): Promise<void>;
}
