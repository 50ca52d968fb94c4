/**
 * What the composition root needs to let a test drive a running load balancer (the API's clock
 * and health routes, an in-process harness): the flows a move of the clock or a request ended,
 * each with what ended it, and backend members found by the names a path gives and shown as the
 * API lists them. The app wires these to its engine, prober and plane.
 */
import { NO_RESET_TEXT, endedFlow, type EndCause, type EndedFlow } from './control/events.js';
import type { HealthView, MemberRef, ProbeMarkResult } from './control/routes/health.js';
import type { FlowEvent } from './core/events.js';
import type { BackendMember, LoadBalancerSnapshot, RuntimeSnapshot } from './core/snapshot.js';
import type { MemberHealth } from './health/types.js';

type Labels = (ruleId: string) => { lb: string; rule: string };

/** Collects the flows that end while some work runs, and says what ended each. */
export class EndedFlows {
  private ending: { readonly cause: EndCause; readonly flows: EndedFlow[] } | undefined;
  /** What ends flows right now inside that work, when not what the work itself is (a drain). */
  private inner: EndCause | undefined;

  constructor(private readonly labelsOf: Labels) {}

  /** What ends a flow that ends now: a drain, a request, or else its idle timeout. */
  get cause(): EndCause {
    return this.inner ?? this.ending?.cause ?? 'idle-timeout';
  }

  /** Runs `work`, returning every flow that ended meanwhile (`cause`, unless `within` says other). */
  collect(cause: EndCause, work: () => void): EndedFlow[] {
    const ending = { cause, flows: [] as EndedFlow[] };
    const outer = this.ending;
    this.ending = ending;
    try {
      work();
    } finally {
      this.ending = outer;
    }
    return ending.flows;
  }

  /** Runs `work` with flows that end meanwhile put down to `cause` (a drain, a backend down). */
  within<T>(cause: EndCause | undefined, work: () => T): T {
    const outer = this.inner;
    this.inner = cause ?? outer;
    try {
      return work();
    } finally {
      this.inner = outer;
    }
  }

  /** The engine's event of a flow's end: filed when work is being collected. */
  note(e: FlowEvent): void {
    const ending = this.ending;
    if (ending === undefined) return;
    const cause = this.cause;
    if (e.type === 'expired')
      ending.flows.push(
        endedFlow(e.flow, this.labelsOf(e.flow.ruleId), {
          at: e.at,
          action: e.action,
          noReset: e.noReset,
          cause,
        }),
      );
    // The proxy plane ends a member's flows by closing their sockets, with a RST for TCP.
    else if (e.type === 'closed' && e.reason === 'terminated')
      ending.flows.push(
        endedFlow(e.flow, this.labelsOf(e.flow.ruleId), {
          at: e.at,
          action: e.flow.protocol === 'Tcp' ? 'reset' : 'drop',
          noReset: e.flow.protocol === 'Tcp' ? undefined : 'udp',
          cause,
        }),
      );
  }
}

/** The log message of a flow's end at idle (or as if at idle), by what ended it. */
export function expiryMessage(e: Extract<FlowEvent, { type: 'expired' }>, cause: EndCause): string {
  const what = {
    'idle-timeout': 'idle timeout',
    request: 'expired on request',
    drain: 'drain period over',
    'backend-down': 'backend down',
  }[cause];
  return e.action === 'reset'
    ? `${what}: TCP reset sent to client and backend`
    : `${what}: flow dropped silently (${NO_RESET_TEXT[e.noReset ?? 'terminated'](e.flow.state)})`;
}

export function memberLb(snapshot: RuntimeSnapshot, poolId: string): LoadBalancerSnapshot | undefined {
  return snapshot.loadBalancers.find((lb) => lb.pools.some((p) => p.id === poolId));
}

/** A (probe, member) pair as GET /sluice/v1/health lists it. */
export function healthViewOf(snapshot: RuntimeSnapshot, h: MemberHealth): HealthView {
  const lb = memberLb(snapshot, h.poolId);
  return {
    lb: lb?.name ?? '',
    pool: lb?.pools.find((p) => p.id === h.poolId)?.name ?? '',
    member: h.memberName,
    address: h.address,
    probe: h.probeName ?? '',
    state: h.state,
    probeState: h.probeState,
    ...(h.override !== undefined ? { override: h.override } : {}),
    adminState: h.adminState,
    reason: h.reason,
    since: Math.round(h.since),
  };
}

/**
 * The member a path names: load balancer and pool by name, the member by its name or its
 * address (served or configured), all case-insensitively; or why there is none, listing what
 * there is.
 */
export function findMember(
  snapshot: RuntimeSnapshot,
  ref: MemberRef,
):
  | { readonly member: BackendMember; readonly lb: string; readonly pool: string }
  | Extract<ProbeMarkResult, { ok: false }> {
  const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();
  const missing = (message: string): Extract<ProbeMarkResult, { ok: false }> => ({
    ok: false,
    problem: 'not-found',
    message,
  });
  const lb = snapshot.loadBalancers.find((l) => same(l.name, ref.lb));
  if (lb === undefined)
    return missing(
      `no load balancer '${ref.lb}' (served: ${snapshot.loadBalancers.map((l) => l.name).join(', ') || 'none'})`,
    );
  const pool = lb.pools.find((p) => same(p.name, ref.pool));
  if (pool === undefined)
    return missing(
      `load balancer '${lb.name}' has no backend pool '${ref.pool}' (pools: ${lb.pools.map((p) => p.name).join(', ') || 'none'})`,
    );
  const member = pool.members.find(
    (m) => same(m.name, ref.member) || same(m.address, ref.member) || same(m.configuredAddress, ref.member),
  );
  if (member === undefined)
    return missing(
      `backend pool '${pool.name}' of load balancer '${lb.name}' has no member named or at '${ref.member}' (members: ${pool.members.map((m) => `${m.name} ${m.address}`).join(', ') || 'none'})`,
    );
  return { member, lb: lb.name, pool: pool.name };
}
