/**
 * The events users watch (GET /sluice/v1/events, `sluice flows --watch`): flows, probes and
 * configuration, in one vocabulary independent of which data plane runs. The composition root
 * translates engine, prober and store events into these and publishes them on an EventHub,
 * which stamps each with the wall-clock time beside the load balancer's own (`at`).
 */
import type {
  CloseReason,
  Endpoint,
  FlowInfo,
  IdleAction,
  NoResetReason,
  RefuseReason,
} from '../core/events.js';
import type { FlowState } from '../core/tcp-state.js';
import type { Protocol } from '../core/snapshot.js';

export interface FlowSummary {
  readonly id: number;
  readonly protocol: Protocol;
  readonly lb: string;
  readonly rule: string;
  /** The TCP state (or UDP) the flow was in when the event happened. */
  readonly state: FlowState;
  readonly client: Endpoint;
  readonly frontend: Endpoint;
  readonly backend: Endpoint;
  readonly idleMs: number;
  readonly ageMs: number;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
}

/** An event as it is published: `at` is load-balancer milliseconds. */
export type SluiceEventBody =
  | { readonly type: 'flow.created'; readonly at: number; readonly flow: FlowSummary }
  | {
      readonly type: 'flow.expired';
      readonly at: number;
      readonly action: IdleAction;
      /** With `drop`: why no RST was sent (B3, B5, B8). */
      readonly noReset?: NoResetReason;
      readonly flow: FlowSummary;
    }
  | {
      readonly type: 'flow.closed';
      readonly at: number;
      readonly reason: CloseReason;
      readonly flow: FlowSummary;
    }
  | {
      readonly type: 'flow.refused';
      readonly at: number;
      readonly reason: RefuseReason;
      readonly protocol: Protocol;
      readonly client: Endpoint;
      readonly frontend: Endpoint;
    }
  | {
      readonly type: 'probe.up' | 'probe.down';
      readonly at: number;
      readonly lb: string;
      readonly probe: string;
      readonly backend: string;
      readonly address: string;
      readonly port: number;
      readonly reason: string;
    }
  | {
      readonly type: 'config.applied';
      readonly at: number;
      readonly generation: number;
      readonly loadBalancers: readonly string[];
      readonly listeners: readonly string[];
    };

/**
 * An event as subscribers get it: `at` rounded to whole load-balancer milliseconds, and `time`
 * the wall-clock time it was published at (ISO 8601, UTC).
 */
export type SluiceEvent = SluiceEventBody & { readonly time: string };

export type SluiceEventType = SluiceEvent['type'];

export const EVENT_TYPES: readonly SluiceEventType[] = [
  'flow.created',
  'flow.expired',
  'flow.closed',
  'flow.refused',
  'probe.up',
  'probe.down',
  'config.applied',
];

export type EventListener = (event: SluiceEvent) => void;

/** Fan-out to subscribers; a subscriber that throws is dropped, never the publisher. */
export class EventHub {
  private readonly listeners = new Set<EventListener>();

  /** `wallClock`: milliseconds since the epoch (tests give their own). */
  constructor(private readonly wallClock: () => number = Date.now) {}

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  publish(body: SluiceEventBody): void {
    if (this.listeners.size === 0) return;
    const event = {
      ...body,
      at: Math.round(body.at),
      time: new Date(this.wallClock()).toISOString(),
    } as SluiceEvent;
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        this.listeners.delete(l);
      }
    }
  }
}

/** The event form of a flow, with its rule's load balancer and name. */
export function flowSummary(
  f: FlowInfo,
  labels: { readonly lb: string; readonly rule: string },
): FlowSummary {
  return {
    id: f.id,
    protocol: f.protocol,
    lb: labels.lb,
    rule: labels.rule,
    state: f.state,
    client: f.client,
    frontend: f.frontend,
    backend: f.backend,
    idleMs: Math.round(f.idleMs),
    ageMs: Math.round(f.ageMs),
    bytesToBackend: f.bytesToBackend,
    bytesToClient: f.bytesToClient,
  };
}

/**
 * What ended a flow that a move of the clock or a request ended: `idle-timeout` its idle
 * timeout (or UDP flow timeout) passed, `drain` its member left the pool and the drain period
 * passed, `backend-down` its Basic SKU member's probe failed, `request` it was expired through
 * `POST /sluice/v1/flows/{id}/expire`.
 */
export type EndCause = 'idle-timeout' | 'drain' | 'backend-down' | 'request';

/** One flow ended by `POST /sluice/v1/clock/advance` or `.../flows/{id}/expire`. */
export interface EndedFlow {
  /** The flow's id, as GET /sluice/v1/flows listed it. */
  readonly flow: number;
  readonly protocol: Protocol;
  readonly lb: string;
  readonly rule: string;
  /** The state it was in when it ended. */
  readonly state: FlowState;
  /** `reset`: a RST to both ends; `drop`: nothing sent, both ends are left hanging. */
  readonly action: IdleAction;
  /** With `drop`: why no RST was sent. */
  readonly noReset?: NoResetReason;
  readonly cause: EndCause;
  readonly client: string;
  readonly frontend: string;
  readonly backend: string;
  /** Load-balancer milliseconds since its last packet, when it ended. */
  readonly idleMs: number;
  /** Load-balancer time it ended at. */
  readonly at: number;
}

/** `address:port`, with brackets for IPv6. */
export function endpointText(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

export function endedFlow(
  f: FlowInfo,
  labels: { readonly lb: string; readonly rule: string },
  end: {
    readonly at: number;
    readonly action: IdleAction;
    readonly noReset?: NoResetReason | undefined;
    readonly cause: EndCause;
  },
): EndedFlow {
  return {
    flow: f.id,
    protocol: f.protocol,
    lb: labels.lb,
    rule: labels.rule,
    state: f.state,
    action: end.action,
    ...(end.noReset !== undefined ? { noReset: end.noReset } : {}),
    cause: end.cause,
    client: endpointText(f.client),
    frontend: endpointText(f.frontend),
    backend: endpointText(f.backend),
    idleMs: Math.round(f.idleMs),
    at: Math.round(end.at),
  };
}

/** What a person reads for a NoResetReason (logs, `sluice clock advance`). */
export const NO_RESET_TEXT: Readonly<Record<NoResetReason, (state: FlowState) => string>> = {
  udp: () => 'UDP has no reset, B8',
  'reset-disabled': () => 'its rule has enableTcpReset off, B3',
  'not-established': (state) =>
    `it was ${state}, and only an ESTABLISHED flow is reset at idle, not one in its handshake or closing, B5`,
  terminated: () => 'ended by Sluice without a reset',
};
