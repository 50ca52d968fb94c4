/**
 * Outbound lookup: (protocol, source address) of a packet from a backend to the member's
 * outbound path, through its subnet's NAT gateway or an outbound rule (B10 is decided by
 * `config/compile.ts`; here the first path of a member for a protocol wins). Built once per
 * snapshot, like the rule table.
 */
import { FAMILY_V4, PROTO_TCP, PROTO_UDP, parseIp } from './flow-key.js';
import type { OutboundPath, RuntimeSnapshot } from './snapshot.js';

function key(protocol: number, words: Uint32Array, off: number, family: number): number | string {
  if (family === FAMILY_V4) return protocol * 2 ** 32 + words[off]!;
  return `${protocol}|${words[off]}:${words[off + 1]}:${words[off + 2]}:${words[off + 3]}`;
}

/** A member's address and a port it serves for an inbound rule (0: every port, HA ports). */
function servedKey(
  protocol: number,
  words: Uint32Array,
  off: number,
  family: number,
  port: number,
): number | string {
  if (family === FAMILY_V4) return (protocol * 2 ** 32 + words[off]!) * 65536 + port;
  return `${key(protocol, words, off, family)}|${port}`;
}

export class OutboundTable {
  private readonly bySource = new Map<number | string, OutboundPath>();
  private readonly served = new Set<number | string>();
  readonly paths: readonly OutboundPath[];

  constructor(snapshot: RuntimeSnapshot) {
    const paths: OutboundPath[] = [];
    const words = new Uint32Array(4);
    for (const lb of snapshot.loadBalancers) {
      for (const path of lb.outboundPaths) {
        paths.push(path);
        const family = parseIp(path.member.address, words, 0);
        if (family === 0) continue;
        // A NAT gateway translates every protocol; an outbound rule only its own.
        const protocols = path.via.kind === 'natGateway' ? ['Tcp', 'Udp'] : path.via.rule.protocols;
        for (const p of protocols) {
          const k = key(p === 'Tcp' ? PROTO_TCP : PROTO_UDP, words, 0, family);
          if (!this.bySource.has(k)) this.bySource.set(k, path);
        }
      }
    }
    this.paths = paths;
    for (const lb of snapshot.loadBalancers) {
      for (const rule of lb.loadBalancingRules) {
        for (const m of rule.pool.members) this.serve(rule.protocols, m.address, rule.backendPort, words);
      }
      for (const rule of lb.inboundNatRules) {
        for (const m of rule.mappings) this.serve(rule.protocols, m.member.address, m.backendPort, words);
      }
    }
  }

  private serve(protocols: readonly string[], address: string, port: number, words: Uint32Array): void {
    const family = parseIp(address, words, 0);
    if (family === 0) return;
    for (const p of protocols)
      this.served.add(servedKey(p === 'Tcp' ? PROTO_TCP : PROTO_UDP, words, 0, family, port));
  }

  /**
   * True when an inbound rule forwards to this member address and port: a packet from there
   * is a backend's reply to a client, not a flow the member opens on its outbound path.
   */
  servesInbound(protocol: number, words: Uint32Array, off: number, family: number, port: number): boolean {
    const s = this.served;
    if (s.size === 0) return false;
    return (
      s.has(servedKey(protocol, words, off, family, port)) ||
      s.has(servedKey(protocol, words, off, family, 0))
    );
  }

  /** The path of a source address given as four words (layout of flow-key.ts). */
  lookup(protocol: number, words: Uint32Array, off: number, family: number): OutboundPath | undefined {
    return this.bySource.get(key(protocol, words, off, family));
  }
}
