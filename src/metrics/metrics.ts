/**
 * Every Prometheus series Sluice exports, declared here and nowhere else, on a registry the
 * caller injects (so tests and embedders never share prom-client's global one). The composition
 * root feeds events in; series that describe the present (active flows, probe state, bytes of
 * live flows) are read from `MetricsSources` at scrape time, so a scrape costs one pass over the
 * flow table and the hot path pays nothing.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ApiShareRefusal, FlowShareRefusal } from '../core/budget.js';
import type { FlowEvent, FlowInfo } from '../core/events.js';
import type { MemberHealth } from '../health/types.js';

/** Which load balancer and rule a series belongs to. */
export interface RuleLabels {
  readonly lb: string;
  readonly rule: string;
}

export interface FrontendState {
  readonly lb: string;
  readonly frontend: string;
  readonly address: string;
  readonly up: boolean;
}

export interface SnatState {
  readonly lb: string;
  /** The outbound rule, or the NAT gateway, whose ports these are. */
  readonly rule: string;
  /** The SNAT address. */
  readonly frontend: string;
  readonly allocated: number;
  readonly used: number;
}

/** What an instance that announces its frontends by BGP reports (`sluice run --bgp`). */
export interface BgpState {
  readonly sessions: readonly { readonly peer: string; readonly up: boolean }[];
  /** Every frontend address served, and whether it is announced now. */
  readonly frontends: readonly { readonly address: string; readonly announced: boolean }[];
  /** The instances the routers spread each frontend over, as they report it. */
  readonly pool: ReadonlyMap<string, number>;
}

/** What the metrics read when scraped. */
export interface MetricsSources {
  flows(): readonly FlowInfo[];
  health(): readonly MemberHealth[];
  frontends(): readonly FrontendState[];
  snat(): readonly SnatState[];
  /** Packets the packet data plane dropped, by reason (none in the proxy data plane). */
  packetDrops(): Readonly<Record<string, number>>;
  /** Labels of a rule id, including rules removed since (their flows may still run). */
  labelsOf(ruleId: string): RuleLabels;
  /** Load balancer name of a backend pool id. */
  lbOfPool(poolId: string): string;
  /** What the engine counted as one instance of a pool; undefined outside a pool. */
  pool(): { readonly strayHeld: number; readonly asked: number } | undefined;
}

/** The name, type and labels of every series: docs/metrics.md is checked against this. */
export const SERIES = {
  sluice_flow_created_total: { type: 'counter', labels: ['lb', 'rule', 'protocol'] },
  sluice_flow_active_flows: { type: 'gauge', labels: ['lb', 'rule', 'protocol'] },
  sluice_flow_idle_expired_total: { type: 'counter', labels: ['lb', 'rule', 'action'] },
  sluice_flow_closed_total: { type: 'counter', labels: ['lb', 'rule', 'reason'] },
  sluice_flow_refused_total: { type: 'counter', labels: ['reason'] },
  sluice_flow_bytes_total: { type: 'counter', labels: ['lb', 'rule', 'direction'] },
  sluice_flow_packets_total: { type: 'counter', labels: ['lb', 'rule', 'direction'] },
  sluice_tcp_syn_total: { type: 'counter', labels: ['lb', 'rule'] },
  sluice_tcp_rst_sent_total: { type: 'counter', labels: ['lb', 'rule', 'direction'] },
  sluice_probe_up_ratio: { type: 'gauge', labels: ['lb', 'probe', 'backend'] },
  sluice_datapath_up_ratio: { type: 'gauge', labels: ['lb', 'frontend', 'address'] },
  sluice_snat_allocated_ports: { type: 'gauge', labels: ['lb', 'rule', 'frontend'] },
  sluice_packet_dropped_total: { type: 'counter', labels: ['reason'] },
  sluice_snat_used_ports: { type: 'gauge', labels: ['lb', 'rule', 'frontend'] },
  sluice_config_applied_total: { type: 'counter', labels: ['result'] },
  sluice_config_generation_number: { type: 'gauge', labels: [] },
  sluice_api_connections_refused_total: { type: 'counter', labels: ['reason'] },
  sluice_state_store_up_ratio: { type: 'gauge', labels: [] },
  sluice_state_generation_number: { type: 'gauge', labels: [] },
  sluice_state_not_served_total: { type: 'counter', labels: ['reason'] },
  sluice_bgp_session_up_ratio: { type: 'gauge', labels: ['peer'] },
  sluice_bgp_announced_ratio: { type: 'gauge', labels: ['address'] },
  sluice_bgp_pool_instances_number: { type: 'gauge', labels: ['address'] },
  sluice_pool_flows_adopted_total: { type: 'counter', labels: ['lb', 'rule'] },
  sluice_pool_strays_held_total: { type: 'counter', labels: [] },
  sluice_pool_idle_questions_total: { type: 'counter', labels: [] },
} as const;

export type SeriesName = keyof typeof SERIES;
type Direction = 'to_backend' | 'to_client';

function labelNames(name: SeriesName): string[] {
  return [...SERIES[name].labels];
}

/** Live flows' bytes move into `ended` when they end, so the counters never go back. */
class FlowTotals {
  private readonly ended = new Map<string, number>();
  private readonly reported = new Map<string, number>();

  end(key: string, n: number): void {
    if (n > 0) this.ended.set(key, (this.ended.get(key) ?? 0) + n);
  }

  /** Adds to `counter` what each label set grew by since the last scrape. */
  publish(
    counter: Counter,
    live: Map<string, number>,
    labels: (key: string) => Record<string, string>,
  ): void {
    const keys = new Set([...this.ended.keys(), ...live.keys()]);
    for (const key of keys) {
      const total = (this.ended.get(key) ?? 0) + (live.get(key) ?? 0);
      const delta = total - (this.reported.get(key) ?? 0);
      if (delta > 0) {
        counter.inc(labels(key), delta);
        this.reported.set(key, total);
      } else if (!this.reported.has(key)) {
        counter.inc(labels(key), 0);
        this.reported.set(key, 0);
      }
    }
  }
}

const SEP = '\u0000';

/** A counter's series for fixed labels. */
interface CounterChild {
  inc(value?: number): void;
}

interface RuleSeries extends RuleLabels {
  /** Keys of the byte and packet totals, by direction. */
  readonly toBackend: string;
  readonly toClient: string;
  readonly syns: CounterChild;
  readonly created: Map<string, CounterChild>;
  readonly closed: Map<string, CounterChild>;
  readonly adopted: CounterChild;
}

export class SluiceMetrics {
  private readonly created: Counter;
  private readonly expired: Counter;
  private readonly closed: Counter;
  private readonly refused: Counter;
  private readonly apiRefusedTotal: Counter;
  /** Refusals for a full share come one per connection or datagram of a flood: children kept. */
  private readonly shareRefusals = new Map<string, CounterChild>();
  private readonly syns: Counter;
  private readonly adopted: Counter;
  private readonly rsts: Counter;
  private readonly applied: Counter;
  private readonly generation: Gauge;
  private readonly storeUp: Gauge;
  private readonly storedGeneration: Gauge;
  private readonly notServed: Counter;
  private readonly bytes = new FlowTotals();
  private readonly packets = new FlowTotals();
  /**
   * What each rule's flows count into, by rule id (and protocol or reason): looked up once,
   * not hashed from label objects for every flow. Rule ids name their load balancer and rule,
   * so an entry never goes stale.
   */
  private readonly perRule = new Map<string, RuleSeries>();

  constructor(
    readonly registry: Registry,
    private readonly sources: MetricsSources,
  ) {
    const registers = [registry];
    const counter = (name: SeriesName, help: string, collect?: (c: Counter) => void): Counter =>
      new Counter({
        name,
        help,
        labelNames: labelNames(name),
        registers,
        ...(collect
          ? {
              collect: function (this: Counter) {
                collect(this);
              },
            }
          : {}),
      });
    const gauge = (name: SeriesName, help: string, collect?: (g: Gauge) => void): Gauge =>
      new Gauge({
        name,
        help,
        labelNames: labelNames(name),
        registers,
        ...(collect
          ? {
              collect: function (this: Gauge) {
                collect(this);
              },
            }
          : {}),
      });

    this.created = counter('sluice_flow_created_total', 'Flows created.');
    gauge('sluice_flow_active_flows', 'Flows live now (not yet expired or closed).', (g) => {
      g.reset();
      const counts = new Map<string, number>();
      for (const f of this.sources.flows()) {
        const l = this.sources.labelsOf(f.ruleId);
        const key = [l.lb, l.rule, f.protocol].join(SEP);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      for (const [key, n] of counts) {
        const [lb, rule, protocol] = key.split(SEP) as [string, string, string];
        g.set({ lb, rule, protocol }, n);
      }
    });
    this.expired = counter(
      'sluice_flow_idle_expired_total',
      'Flows ended by their idle timeout (or ended by configuration as if idle), by action: reset or drop.',
    );
    this.closed = counter('sluice_flow_closed_total', 'Flows that ended other than at idle, by reason.');
    this.refused = counter('sluice_flow_refused_total', 'New flows refused, by reason.');
    counter('sluice_flow_bytes_total', 'Payload bytes relayed, by direction.', (c) =>
      this.publishTotals(c, this.bytes, (f, d) => (d === 'to_backend' ? f.bytesToBackend : f.bytesToClient)),
    );
    counter('sluice_flow_packets_total', 'Packets (proxy plane: reads) relayed, by direction.', (c) =>
      this.publishTotals(c, this.packets, (f, d) =>
        d === 'to_backend' ? f.packetsToBackend : f.packetsToClient,
      ),
    );
    this.syns = counter('sluice_tcp_syn_total', 'TCP connection attempts (SYNs) for a rule.');
    this.adopted = counter(
      'sluice_pool_flows_adopted_total',
      'Flows adopted from a mid-flow segment in a change of the pool of instances.',
    );
    counter(
      'sluice_pool_strays_held_total',
      'Segments of no flow on a reset path dropped silently while a change of the pool might still be learned (their RST waits for the grace).',
      (c) => {
        c.reset();
        c.inc(this.sources.pool()?.strayHeld ?? 0);
      },
    );
    counter(
      'sluice_pool_idle_questions_total',
      'Idle flows that may have moved, about which the other instances were asked before ending them.',
      (c) => {
        c.reset();
        c.inc(this.sources.pool()?.asked ?? 0);
      },
    );
    this.rsts = counter(
      'sluice_tcp_rst_sent_total',
      'TCP resets Sluice sent when it ended a flow (idle, removed rule, adminState Down, drain end), by direction.',
    );
    gauge(
      'sluice_probe_up_ratio',
      'Health probe state per backend: 1 up, 0 down or not answered yet.',
      (g) => {
        g.reset();
        for (const h of this.sources.health()) {
          if (h.probeName === undefined) continue;
          g.set(
            { lb: this.sources.lbOfPool(h.poolId), probe: h.probeName, backend: h.address },
            h.probeState === 'up' ? 1 : 0,
          );
        }
      },
    );
    gauge('sluice_datapath_up_ratio', 'Data path per frontend: 1 when its listeners are open.', (g) => {
      g.reset();
      for (const f of this.sources.frontends())
        g.set({ lb: f.lb, frontend: f.frontend, address: f.address }, f.up ? 1 : 0);
    });
    gauge(
      'sluice_snat_allocated_ports',
      'SNAT ports allocated to members by outbound rules and NAT gateways, per address.',
      (g) => {
        g.reset();
        for (const s of this.sources.snat())
          g.set({ lb: s.lb, rule: s.rule, frontend: s.frontend }, s.allocated);
      },
    );
    gauge('sluice_snat_used_ports', 'SNAT ports in use by outbound flows.', (g) => {
      g.reset();
      for (const s of this.sources.snat()) g.set({ lb: s.lb, rule: s.rule, frontend: s.frontend }, s.used);
    });
    counter(
      'sluice_packet_dropped_total',
      'Packets the packet data plane dropped without forwarding or answering them, by reason.',
      (c) => {
        c.reset();
        for (const [reason, n] of Object.entries(this.sources.packetDrops())) if (n > 0) c.inc({ reason }, n);
      },
    );
    this.applied = counter(
      'sluice_config_applied_total',
      'Configuration changes, by result: applied, invalid (rejected by validation) or failed.',
    );
    this.generation = gauge('sluice_config_generation_number', 'How many configurations were applied.');
    this.apiRefusedTotal = counter(
      'sluice_api_connections_refused_total',
      'API connections dropped (connections share full) and event streams refused (event-streams share full).',
    );
    for (const reason of ['connections', 'event-streams'] as const) this.apiRefusedTotal.inc({ reason }, 0);
    this.storeUp = gauge(
      'sluice_state_store_up_ratio',
      'Whether the desired-state store answers: 1 up (always, for a state directory), 0 unreachable.',
    );
    this.storedGeneration = gauge(
      'sluice_state_generation_number',
      'Generation of the desired state stored (ahead of sluice_config_generation_number while one is not served).',
    );
    this.notServed = counter(
      'sluice_state_not_served_total',
      'Generations another instance stored that this one does not serve, by reason: invalid or failed.',
    );
    for (const reason of ['invalid', 'failed'] as const) this.notServed.inc({ reason }, 0);
    gauge('sluice_bgp_session_up_ratio', 'BGP session to each router: 1 when established.', (g) => {
      g.reset();
      for (const x of this.bgp?.().sessions ?? []) g.set({ peer: x.peer }, x.up ? 1 : 0);
    });
    gauge(
      'sluice_bgp_announced_ratio',
      'Frontend address announced by BGP now: 1, or 0 (withdrawn).',
      (g) => {
        g.reset();
        for (const f of this.bgp?.().frontends ?? []) g.set({ address: f.address }, f.announced ? 1 : 0);
      },
    );
    gauge(
      'sluice_bgp_pool_instances_number',
      'Instances the routers spread each frontend over, as they send them back (add-path).',
      (g) => {
        g.reset();
        for (const [address, n] of this.bgp?.().pool ?? []) g.set({ address }, n);
      },
    );
  }

  /** Whether the desired-state store answers. */
  stateStore(up: boolean): void {
    this.storeUp.set(up ? 1 : 0);
  }

  /** The generation of the desired state stored. */
  stateGeneration(generation: number): void {
    this.storedGeneration.set(generation);
  }

  /** A generation another instance stored that this one does not serve. */
  stateNotServed(reason: 'invalid' | 'failed'): void {
    this.notServed.inc({ reason });
  }

  /** Where the BGP series read from, once an instance announces its frontends (`--bgp`). */
  private bgp: (() => BgpState) | undefined;

  setBgpSource(source: () => BgpState): void {
    this.bgp = source;
  }

  /** A new flow refused because its share of the descriptors is full. */
  flowShareRefused(reason: FlowShareRefusal): void {
    this.shareChild(this.refused, reason).inc();
  }

  /** An API connection dropped, or an event stream refused, because its share is full. */
  apiRefused(reason: ApiShareRefusal): void {
    this.shareChild(this.apiRefusedTotal, reason).inc();
  }

  private shareChild(counter: Counter, reason: string): CounterChild {
    const key = `${counter === this.refused ? 'flow' : 'api'}${SEP}${reason}`;
    let child = this.shareRefusals.get(key);
    if (child === undefined) {
      child = counter.labels({ reason });
      this.shareRefusals.set(key, child);
    }
    return child;
  }

  /** One engine event; `labels` of its rule come from the sources. */
  flowEvent(e: FlowEvent): void {
    switch (e.type) {
      case 'created': {
        const r = this.ruleSeries(e.flow.ruleId);
        let created = r.created.get(e.flow.protocol);
        if (created === undefined) {
          created = this.created.labels({ lb: r.lb, rule: r.rule, protocol: e.flow.protocol });
          r.created.set(e.flow.protocol, created);
        }
        created.inc();
        if (e.flow.adopted === true) r.adopted.inc();
        else if (e.flow.protocol === 'Tcp') r.syns.inc();
        break;
      }
      case 'expired': {
        const l = this.endFlow(e.flow);
        this.expired.inc({ lb: l.lb, rule: l.rule, action: e.action });
        if (e.action === 'reset' && e.flow.protocol === 'Tcp') this.resetsSent(e.flow.ruleId, 1);
        break;
      }
      case 'closed': {
        const r = this.endFlow(e.flow);
        let closed = r.closed.get(e.reason);
        if (closed === undefined) {
          closed = this.closed.labels({ lb: r.lb, rule: r.rule, reason: e.reason });
          r.closed.set(e.reason, closed);
        }
        closed.inc();
        break;
      }
      case 'refused':
        this.refused.inc({ reason: e.reason });
        if (e.protocol === 'Tcp' && e.ruleId !== undefined) {
          const l = this.sources.labelsOf(e.ruleId);
          this.syns.inc({ lb: l.lb, rule: l.rule });
        }
        break;
    }
  }

  /** RSTs to both endpoints of `flows` flows of a rule. */
  resetsSent(ruleId: string, flows: number): void {
    const l = this.sources.labelsOf(ruleId);
    this.rsts.inc({ lb: l.lb, rule: l.rule, direction: 'to_client' }, flows);
    this.rsts.inc({ lb: l.lb, rule: l.rule, direction: 'to_backend' }, flows);
  }

  configApplied(result: 'applied' | 'invalid' | 'failed', generation?: number): void {
    this.applied.inc({ result });
    if (generation !== undefined) this.generation.set(generation);
  }

  private ruleSeries(ruleId: string): RuleSeries {
    let r = this.perRule.get(ruleId);
    if (r === undefined) {
      const l = this.sources.labelsOf(ruleId);
      r = {
        lb: l.lb,
        rule: l.rule,
        toBackend: [l.lb, l.rule, 'to_backend'].join(SEP),
        toClient: [l.lb, l.rule, 'to_client'].join(SEP),
        syns: this.syns.labels({ lb: l.lb, rule: l.rule }),
        adopted: this.adopted.labels({ lb: l.lb, rule: l.rule }),
        created: new Map(),
        closed: new Map(),
      };
      this.perRule.set(ruleId, r);
    }
    return r;
  }

  private endFlow(f: FlowInfo): RuleSeries {
    const r = this.ruleSeries(f.ruleId);
    this.bytes.end(r.toBackend, f.bytesToBackend);
    this.bytes.end(r.toClient, f.bytesToClient);
    this.packets.end(r.toBackend, f.packetsToBackend);
    this.packets.end(r.toClient, f.packetsToClient);
    return r;
  }

  private publishTotals(c: Counter, totals: FlowTotals, pick: (f: FlowInfo, d: Direction) => number): void {
    const live = new Map<string, number>();
    for (const f of this.sources.flows()) {
      const l = this.sources.labelsOf(f.ruleId);
      for (const d of ['to_backend', 'to_client'] as const) {
        const key = [l.lb, l.rule, d].join(SEP);
        live.set(key, (live.get(key) ?? 0) + pick(f, d));
      }
    }
    totals.publish(c, live, (key) => {
      const [lb, rule, direction] = key.split(SEP) as [string, string, string];
      return { lb, rule, direction };
    });
  }
}
