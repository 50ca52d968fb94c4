/**
 * What a flow's rule decides, for inbound rules and outbound paths alike: a flow's record
 * holds the index of its PathRuntime, so the idle timeout, the action at idle and after expiry
 * are read the same way whichever kind of path carries the flow. Rebuilt on every snapshot;
 * indices are stable across snapshots (a path keeps its index while its identity stays), and a
 * path the new snapshot lacks stays, marked removed, for the flows that still use it.
 */
import { distributionMode, type DistributionHash } from './distribution.js';
import { OutboundTable } from './outbound-table.js';
import { RuleTable } from './rule-table.js';
import type { BackendMember, InboundRule, OutboundPath, RuntimeSnapshot } from './snapshot.js';
import { outboundPathKey } from './snat-alloc.js';

export interface PathRuntime {
  /** The rule id (an outbound path's rule, or its NAT gateway): FlowInfo.ruleId. */
  readonly id: string;
  readonly name: string;
  /** The idle timeout configured now. */
  readonly idleMs: number;
  /** An established flow is reset at idle (B4); never through a NAT gateway. */
  readonly resetAtIdle: boolean;
  /**
   * Later segments of an expired flow, and any non-SYN segment of no flow on this path, are
   * answered with a RST (B6): `inboundResetsLate`, `outboundResetsLate`.
   */
  readonly resetAfterExpiry: boolean;
  /** The path is gone from the configuration; flows that still use it go on until they end. */
  readonly removed: boolean;
  /** Set for an inbound rule, null for an outbound path. */
  readonly rule: InboundRule | null;
  /** Set for an outbound path, null for an inbound rule. */
  readonly outbound: OutboundPath | null;
  /** How a new flow of an inbound rule picks its member. */
  readonly hash: DistributionHash;
}

const DEFAULT_HASH = distributionMode('Default')!;

/** B6 for an inbound rule: its enableTcpReset. */
export function inboundResetsLate(rule: InboundRule): boolean {
  return rule.enableTcpReset;
}

/**
 * B6 for an outbound path: its rule's enableTcpReset. A NAT gateway drops idle flows silently
 * yet answers a later packet with a RST to its sender, as Azure's does.
 */
export function outboundResetsLate(path: OutboundPath): boolean {
  return path.via.kind === 'natGateway' || path.enableTcpReset;
}

function inboundRuntime(rule: InboundRule): PathRuntime {
  const mode = rule.kind === 'loadBalancingRule' ? rule.distribution : 'Default';
  return {
    id: rule.id,
    name: rule.name,
    idleMs: rule.idleTimeout.ms,
    resetAtIdle: rule.enableTcpReset,
    resetAfterExpiry: inboundResetsLate(rule),
    removed: false,
    rule,
    outbound: null,
    hash: distributionMode(mode) ?? DEFAULT_HASH,
  };
}

function outboundRuntime(path: OutboundPath): PathRuntime {
  const via = path.via;
  return {
    id: via.kind === 'natGateway' ? via.natGateway.id : via.rule.id,
    name: via.kind === 'natGateway' ? via.natGateway.name : via.rule.name,
    idleMs: path.idleTimeout.ms,
    resetAtIdle: path.enableTcpReset,
    resetAfterExpiry: outboundResetsLate(path),
    removed: false,
    rule: null,
    outbound: path,
    hash: DEFAULT_HASH,
  };
}

export class PathRuntimes {
  private readonly all: PathRuntime[] = [];
  /** Path identity (rule id, or member and rule or gateway) to index in `all`. */
  private readonly index = new Map<string, number>();
  rules = new RuleTable({ loadBalancers: [], natGateways: [] });
  outboundTable = new OutboundTable({ loadBalancers: [], natGateways: [] });

  /** Follows `snapshot`; `member` is called for every member a path can send flows to. */
  update(snapshot: RuntimeSnapshot, member: (m: BackendMember) => void): void {
    const rules = new RuleTable(snapshot);
    const outbound = new OutboundTable(snapshot);
    const seen = new Set<number>();
    for (const rule of rules.rules) {
      seen.add(this.put(`r|${rule.id}`, inboundRuntime(rule)));
      if (rule.kind === 'loadBalancingRule') for (const m of rule.pool.members) member(m);
      else for (const m of rule.mappings) member(m.member);
    }
    for (const path of outbound.paths) {
      seen.add(this.put(`o|${outboundPathKey(path)}`, outboundRuntime(path)));
      member(path.member);
    }
    for (let i = 0; i < this.all.length; i++) {
      const p = this.all[i]!;
      if (!seen.has(i) && !p.removed) this.all[i] = { ...p, removed: true };
    }
    this.rules = rules;
    this.outboundTable = outbound;
  }

  private put(key: string, runtime: PathRuntime): number {
    let i = this.index.get(key);
    if (i === undefined) {
      i = this.all.length;
      this.index.set(key, i);
      this.all.push(runtime);
    } else this.all[i] = runtime;
    return i;
  }

  at(index: number): PathRuntime {
    return this.all[index]!;
  }

  indexOfRule(rule: InboundRule): number {
    return this.index.get(`r|${rule.id}`)!;
  }

  /** The index of an outbound path by its identity (`outboundPathKey`). */
  indexOfOutboundKey(key: string): number {
    return this.index.get(`o|${key}`)!;
  }
}
