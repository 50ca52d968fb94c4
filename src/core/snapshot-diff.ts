/**
 * What changes between two snapshots for the flows already running: which backends left (their
 * flows drain, then are reset) and which are administratively down (their flows are reset now).
 * Rules need no diff here: the engine keeps rules by id and the data plane closes removed ones.
 */
import type { BackendMember, LoadBalancerSnapshot, RuntimeSnapshot } from './snapshot.js';

export interface MemberPlace {
  readonly member: BackendMember;
  readonly lb: LoadBalancerSnapshot;
  readonly poolId: string | undefined;
  /** How long flows of this member may go on once it leaves its pool. */
  readonly drainPeriodMs: number;
}

/** A member is the same member only at the same address: flows are pinned to an address. */
export function memberKey(m: BackendMember): string {
  return `${m.id}|${m.address}`;
}

export function membersOf(snapshot: RuntimeSnapshot): Map<string, MemberPlace> {
  const out = new Map<string, MemberPlace>();
  for (const lb of snapshot.loadBalancers) {
    for (const pool of lb.pools)
      for (const m of pool.members)
        out.set(memberKey(m), { member: m, lb, poolId: pool.id, drainPeriodMs: pool.drainPeriodMs });
    for (const r of lb.inboundNatRules)
      for (const mp of r.mappings) {
        const k = memberKey(mp.member);
        if (!out.has(k))
          out.set(k, {
            member: mp.member,
            lb,
            poolId: r.pool?.id,
            drainPeriodMs: r.pool?.drainPeriodMs ?? 0,
          });
      }
  }
  return out;
}

export interface MemberChanges {
  /** In `before`, gone from `after` (or moved to another address). */
  readonly removed: readonly MemberPlace[];
  /** adminState Down in `after`. */
  readonly down: readonly MemberPlace[];
  /** Keys of every member of `after`. */
  readonly present: ReadonlySet<string>;
}

export function memberChanges(before: RuntimeSnapshot, after: RuntimeSnapshot): MemberChanges {
  const prev = membersOf(before);
  const next = membersOf(after);
  // The drain period in force is the one of the configuration that removed the member.
  const drainNow = new Map<string, number>();
  for (const lb of after.loadBalancers)
    for (const pool of lb.pools) drainNow.set(pool.id, pool.drainPeriodMs);
  return {
    removed: [...prev]
      .filter(([k]) => !next.has(k))
      .map(([, p]) => ({ ...p, drainPeriodMs: drainNow.get(p.poolId ?? '') ?? p.drainPeriodMs })),
    down: [...next.values()].filter((p) => p.member.adminState === 'Down'),
    present: new Set(next.keys()),
  };
}

/** Load balancer and rule names by rule id, for labels and listings. */
export function ruleNames(snapshot: RuntimeSnapshot): Map<string, { lb: string; rule: string }> {
  const out = new Map<string, { lb: string; rule: string }>();
  for (const lb of snapshot.loadBalancers)
    for (const r of [...lb.loadBalancingRules, ...lb.inboundNatRules, ...lb.outboundRules])
      out.set(r.id, { lb: lb.name, rule: r.name });
  return out;
}
