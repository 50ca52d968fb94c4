/**
 * The events users watch (GET /sluice/v1/events, `sluice flows --watch`): flows, probes and
 * configuration, in one vocabulary independent of which data plane runs. The composition root
 * translates engine, prober and store events into these and publishes them on an EventHub.
 */
import type { CloseReason, Endpoint, FlowInfo, IdleAction, RefuseReason } from '../core/events.js';
import type { Protocol } from '../core/snapshot.js';

export interface FlowSummary {
  readonly id: number;
  readonly protocol: Protocol;
  readonly lb: string;
  readonly rule: string;
  readonly client: Endpoint;
  readonly frontend: Endpoint;
  readonly backend: Endpoint;
  readonly idleMs: number;
  readonly ageMs: number;
  readonly bytesToBackend: number;
  readonly bytesToClient: number;
}

export type SluiceEvent =
  | { readonly type: 'flow.created'; readonly at: number; readonly flow: FlowSummary }
  | {
      readonly type: 'flow.expired';
      readonly at: number;
      readonly action: IdleAction;
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

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  publish(event: SluiceEvent): void {
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
    client: f.client,
    frontend: f.frontend,
    backend: f.backend,
    idleMs: Math.round(f.idleMs),
    ageMs: Math.round(f.ageMs),
    bytesToBackend: f.bytesToBackend,
    bytesToClient: f.bytesToClient,
  };
}
