/**
 * GET /sluice/v1/overview: what the live page (ui.ts) shows beside the flows and the events.
 * Each rule with its effective idle timeout and what decided it (B9, B10, as `sluice explain`
 * says), each backend with its probe and admin state, whether it drains and how many flows it
 * carries, the balancer's clock, counters for the chart, and the tombstones of expired flows (B6).
 * Pure: it reads a LiveRuntime that the composition root fills.
 */
import { emptyStats, type Endpoint, type EngineStats, type FlowInfo } from '../core/events.js';
import { explain, type ExplainedPath, type OnIdle, type PathKind } from '../core/explain.js';
import type { TombstoneInfo } from '../core/engine.js';
import type { AdminState, ArmProtocol, IdleDecidedBy, RuntimeSnapshot, Sku } from '../core/snapshot.js';
import type { HealthState, MemberHealth, ProbeState } from '../health/types.js';

/** How the balancer's time moves: by itself (scaled by `--time-scale`) or only when moved by hand. */
export type LiveClockMode = 'system' | 'manual';

/** A member that left its pool and whose flows go on until the pool's drain period ends. */
export interface DrainingMember {
  readonly lb: string;
  readonly pool: string;
  readonly memberId: string;
  readonly name: string;
  readonly address: string;
  /** Load-balancer time the drain ends at (its flows are then reset). */
  readonly endsAt: number;
}

/** What the overview reads of the running load balancer. */
export interface LiveRuntime {
  /** The configuration being served (after the data plane left out what it cannot serve). */
  snapshot(): RuntimeSnapshot;
  health(): readonly MemberHealth[];
  draining(): readonly DrainingMember[];
  /** The most recently expired first, at most `limit`. */
  tombstones(limit: number): readonly TombstoneInfo[];
  tombstoneCount(): number;
  stats(): EngineStats;
  clock(): { readonly mode: LiveClockMode; readonly now: number };
  generation(): number;
  readonly udpFlowTimeoutMs: number;
}

/** Tombstones listed at most; `tombstones.total` counts them all. */
export const MAX_TOMBSTONES_SHOWN = 1000;

export interface OverviewRule {
  readonly kind: PathKind;
  readonly name: string;
  readonly protocol: ArmProtocol;
  readonly frontend: string;
  readonly backend: string;
  readonly idleTimeoutMinutes: number;
  /** The idle timeout in load-balancer milliseconds (the UDP flow timeout on a UDP rule). */
  readonly timeoutMs: number;
  readonly decidedBy: IdleDecidedBy;
  readonly overridden: readonly { readonly by: IdleDecidedBy; readonly idleTimeoutMinutes: number }[];
  /** What an idle TCP flow gets: `reset` (RST both ways), `drop` (silently), `none` (UDP only). */
  readonly onIdle: OnIdle;
  /** explain's account of the precedence decision. */
  readonly why: string;
  readonly whatHappens: string;
  /** Live flows on this rule now. */
  readonly flows: number;
}

export interface OverviewProbe {
  readonly probe: string;
  readonly state: ProbeState | 'notProbed';
  readonly reason: string;
  /** Load-balancer time of the last change. */
  readonly since: number;
}

export interface OverviewMember {
  readonly name: string;
  readonly address: string;
  readonly adminState: AdminState;
  /** Whether new flows may come: the probes' verdict with adminState applied (`up` admits). */
  readonly state: HealthState;
  readonly probes: readonly OverviewProbe[];
  readonly flows: number;
  /** Set when the member left the pool and its flows drain. */
  readonly draining?: { readonly endsAt: number; readonly msLeft: number };
}

export interface OverviewPool {
  readonly name: string;
  readonly drainPeriodSeconds: number;
  readonly members: readonly OverviewMember[];
}

export interface OverviewLoadBalancer {
  readonly name: string;
  readonly sku: Sku;
  readonly frontends: readonly { readonly name: string; readonly address: string }[];
  readonly rules: readonly OverviewRule[];
  readonly pools: readonly OverviewPool[];
}

export interface OverviewTombstone {
  readonly id: number;
  readonly lb: string;
  readonly rule: string;
  readonly client: string;
  readonly backend: string;
  /** A later packet of the flow is answered with a RST (B6), or discarded (B3). */
  readonly lateReset: boolean;
  /** Load-balancer time it expired at. */
  readonly expiredAt: number;
  readonly msLeft: number;
  readonly ttlMs: number;
}

export interface Overview {
  readonly clock: { readonly mode: LiveClockMode; readonly now: number; readonly timeScale: number };
  readonly generation: number;
  /** Sluice's fixed UDP flow timeout (B8), load-balancer milliseconds. */
  readonly udpFlowTimeoutMs: number;
  readonly flows: {
    readonly active: number;
    readonly created: number;
    readonly expired: { readonly reset: number; readonly drop: number };
    readonly closed: number;
  };
  readonly loadBalancers: readonly OverviewLoadBalancer[];
  readonly tombstones: { readonly total: number; readonly shown: readonly OverviewTombstone[] };
}

function endpointText(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function count<K>(keys: Iterable<K>): Map<K, number> {
  const out = new Map<K, number>();
  for (const k of keys) out.set(k, (out.get(k) ?? 0) + 1);
  return out;
}

function pathKey(kind: PathKind, lb: string, name: string): string {
  return `${kind}\u0000${lb}\u0000${name}`;
}

function ruleOf(path: ExplainedPath, id: string | undefined, flowsByRule: Map<string, number>): OverviewRule {
  return {
    kind: path.kind,
    name: path.name,
    protocol: path.protocol,
    frontend: path.frontend,
    backend: path.backend,
    idleTimeoutMinutes: path.idleTimeoutMinutes,
    timeoutMs: path.idleTimeoutMinutes * 60_000,
    decidedBy: path.decidedBy,
    overridden: path.overridden,
    onIdle: path.onIdle,
    why: path.why,
    whatHappens: path.whatHappens,
    flows: id === undefined ? 0 : (flowsByRule.get(id) ?? 0),
  };
}

/** The overview of what runs now; `flows` are the live flows, `labelsOf` names a rule id. */
export function overviewOf(
  live: LiveRuntime,
  flows: readonly FlowInfo[],
  labelsOf: (ruleId: string) => { readonly lb: string; readonly rule: string },
  timeScale: number,
): Overview {
  const snapshot = live.snapshot();
  const clock = live.clock();
  const now = clock.now;
  const flowsByRule = count(flows.map((f) => f.ruleId));
  const flowsByMember = count(flows.filter((f) => f.outbound === undefined).map((f) => f.memberId));
  const report = explain(snapshot, { udpFlowTimeoutMs: live.udpFlowTimeoutMs });
  const paths = new Map(report.paths.map((p) => [pathKey(p.kind, p.loadBalancer, p.name), p]));
  const health = live.health();
  const draining = live.draining();
  const udpTimeoutMs = live.udpFlowTimeoutMs;

  const loadBalancers = snapshot.loadBalancers.map((lb): OverviewLoadBalancer => {
    const rules: OverviewRule[] = [];
    const inbound = [...lb.loadBalancingRules, ...lb.inboundNatRules];
    for (const r of inbound) {
      const kind: PathKind =
        r.kind === 'loadBalancingRule' && lb.instancePublicIp !== undefined ? 'instancePublicIp' : r.kind;
      const name = kind === 'instancePublicIp' && r.kind === 'loadBalancingRule' ? r.pool.name : r.name;
      const path = paths.get(pathKey(kind, lb.name, name));
      if (path !== undefined) rules.push(ruleOf(path, r.id, flowsByRule));
    }
    // Outbound paths are explained per group of members; their flows count by rule or gateway.
    for (const path of report.paths) {
      if (path.loadBalancer !== lb.name) continue;
      if (path.kind !== 'outboundRule' && path.kind !== 'natGateway' && path.kind !== 'instanceOutbound')
        continue;
      const id =
        path.kind === 'outboundRule'
          ? lb.outboundRules.find((o) => o.name === path.name)?.id
          : path.kind === 'natGateway'
            ? snapshot.natGateways.find((g) => g.name === path.name)?.id
            : // A VM's own outbound path is its instance IP's one outbound rule, named after the VM.
              lb.outboundRules[0]?.id;
      rules.push(ruleOf(path, id, flowsByRule));
    }
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (r.protocol === 'Udp') rules[i] = { ...r, timeoutMs: udpTimeoutMs };
    }

    const pools = lb.pools.map((pool): OverviewPool => {
      const members = pool.members.map((m): OverviewMember => {
        const own = health.filter((h) => h.memberId === m.id);
        const probes = own
          .filter((h) => h.probeName !== undefined)
          .map((h) => ({ probe: h.probeName!, state: h.probeState, reason: h.reason, since: h.since }));
        return {
          name: m.name,
          address: m.address,
          adminState: m.adminState,
          state: effectiveState(m.adminState, own),
          probes,
          flows: flowsByMember.get(m.id) ?? 0,
        };
      });
      // A member gone from the pool is still shown while its flows drain.
      for (const d of draining) {
        if (d.lb !== lb.name || d.pool !== pool.name) continue;
        if (pool.members.some((m) => m.id === d.memberId)) continue;
        members.push({
          name: d.name,
          address: d.address,
          adminState: 'None',
          state: 'down',
          probes: [],
          flows: flowsByMember.get(d.memberId) ?? 0,
          draining: { endsAt: d.endsAt, msLeft: Math.max(0, d.endsAt - now) },
        });
      }
      return { name: pool.name, drainPeriodSeconds: pool.drainPeriodMs / 1000, members };
    });
    return {
      name: lb.name,
      sku: lb.sku,
      frontends: lb.frontends.map((f) => ({ name: f.name, address: f.address })),
      rules,
      pools,
    };
  });

  const stats = live.stats();
  // A tombstone past its lifetime is gone, whenever the engine next sweeps it.
  const shown = live
    .tombstones(MAX_TOMBSTONES_SHOWN)
    .filter((t) => t.msLeft > 0)
    .map((t): OverviewTombstone => {
      const l = labelsOf(t.ruleId);
      return {
        id: t.id,
        lb: l.lb,
        rule: l.rule,
        client: endpointText(t.client),
        backend: endpointText(t.backend),
        lateReset: t.lateReset,
        expiredAt: Math.round(t.lastSeenAt),
        msLeft: Math.round(t.msLeft),
        ttlMs: t.timeoutMs,
      };
    });
  return {
    clock: { mode: clock.mode, now: Math.round(now), timeScale },
    generation: live.generation(),
    udpFlowTimeoutMs: live.udpFlowTimeoutMs,
    flows: {
      active: flows.length,
      created: stats.flowsCreated,
      expired: { reset: stats.expiredReset, drop: stats.expiredDrop },
      closed: Object.values(stats.closed).reduce((a, b) => a + b, 0),
    },
    loadBalancers,
    tombstones: { total: live.tombstoneCount(), shown },
  };
}

/**
 * One state for a member probed by several probes (one per rule that probes its pool): down when
 * any says down; the prober already applied adminState. A member no probe watches takes flows
 * unless it is administratively down.
 */
function effectiveState(adminState: AdminState, own: readonly MemberHealth[]): HealthState {
  if (adminState === 'Down') return 'down';
  if (own.length === 0) return 'up';
  if (own.some((h) => h.state === 'down')) return 'down';
  if (own.some((h) => h.state === 'unknown')) return 'unknown';
  return 'up';
}

/** The overview of a configuration with nothing running (an API without a data plane). */
export function staticLive(snapshot: () => RuntimeSnapshot, generation: () => number): LiveRuntime {
  return {
    snapshot,
    health: () => [],
    draining: () => [],
    tombstones: () => [],
    tombstoneCount: () => 0,
    stats: emptyStats,
    clock: () => ({ mode: 'system', now: 0 }),
    generation,
    udpFlowTimeoutMs: 240_000,
  };
}
