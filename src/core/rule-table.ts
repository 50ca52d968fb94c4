/**
 * Inbound rule lookup: (protocol, destination address, destination port) to the compiled
 * rule, and for an inbound NAT rule to the mapping of that port. Two hash lookups per
 * packet, no string built for IPv4. Built once per snapshot and never mutated, so swapping
 * snapshots is one assignment.
 */
import { FAMILY_V4, PROTO_TCP, PROTO_UDP, parseIp } from './flow-key.js';
import type { InboundRule, NatMapping, Protocol, RuntimeSnapshot } from './snapshot.js';

export interface RuleMatch {
  readonly rule: InboundRule;
  /** The port's mapping for an inbound NAT rule; null for a load-balancing rule. */
  readonly nat: NatMapping | null;
  /** The frontend port matched; 0 for HA ports, where every port matches. */
  readonly frontendPort: number;
}

interface FrontendEntry {
  /** Keyed by protocol number << 16 | port. */
  readonly ports: Map<number, RuleMatch>;
  haTcp?: RuleMatch;
  haUdp?: RuleMatch;
}

export function protocolNumber(p: Protocol): number {
  return p === 'Tcp' ? PROTO_TCP : PROTO_UDP;
}

export function protocolName(n: number): Protocol {
  return n === PROTO_TCP ? 'Tcp' : 'Udp';
}

function addressKey(words: Uint32Array, off: number, family: number): number | string {
  if (family === FAMILY_V4) return words[off]!;
  return `${words[off]}:${words[off + 1]}:${words[off + 2]}:${words[off + 3]}`;
}

export class RuleTable {
  private readonly frontends = new Map<number | string, FrontendEntry>();
  /** Every inbound rule of the snapshot, load-balancing rules first. */
  readonly rules: readonly InboundRule[];

  constructor(readonly snapshot: RuntimeSnapshot) {
    const rules: InboundRule[] = [];
    const words = new Uint32Array(4);
    const entryFor = (address: string): FrontendEntry => {
      const family = parseIp(address, words, 0);
      if (family === 0) throw new TypeError(`frontend address is not an IP address: ${address}`);
      const key = addressKey(words, 0, family);
      let e = this.frontends.get(key);
      if (e === undefined) {
        e = { ports: new Map() };
        this.frontends.set(key, e);
      }
      return e;
    };
    for (const lb of snapshot.loadBalancers) {
      for (const rule of lb.loadBalancingRules) {
        rules.push(rule);
        const e = entryFor(rule.frontend.address);
        for (const p of rule.protocols) {
          const match: RuleMatch = { rule, nat: null, frontendPort: rule.haPorts ? 0 : rule.frontendPort };
          if (rule.haPorts) {
            if (p === 'Tcp') e.haTcp = match;
            else e.haUdp = match;
          } else e.ports.set((protocolNumber(p) << 16) | rule.frontendPort, match);
        }
      }
      for (const rule of lb.inboundNatRules) {
        rules.push(rule);
        const e = entryFor(rule.frontend.address);
        for (const m of rule.mappings) {
          for (const p of rule.protocols) {
            e.ports.set((protocolNumber(p) << 16) | m.frontendPort, {
              rule,
              nat: m,
              frontendPort: m.frontendPort,
            });
          }
        }
      }
    }
    this.rules = rules;
  }

  /** The rule for a destination given as four address words (layout of flow-key.ts). */
  lookup(
    protocol: number,
    words: Uint32Array,
    off: number,
    family: number,
    port: number,
  ): RuleMatch | undefined {
    const e = this.frontends.get(addressKey(words, off, family));
    if (e === undefined) return undefined;
    const m = e.ports.get((protocol << 16) | port);
    if (m !== undefined) return m;
    return protocol === PROTO_TCP ? e.haTcp : protocol === PROTO_UDP ? e.haUdp : undefined;
  }

  /** The same from address text, for tools and tests. */
  lookupText(protocol: Protocol, address: string, port: number): RuleMatch | undefined {
    const words = new Uint32Array(4);
    const family = parseIp(address, words, 0);
    if (family === 0) return undefined;
    return this.lookup(protocolNumber(protocol), words, 0, family, port);
  }
}
