/**
 * SNAT ports of outbound paths (outbound rules and NAT gateways). Each member of a path owns a
 * range of ports on the path's addresses (`allocatedOutboundPorts` of an outbound rule, an even
 * share of a NAT gateway's ports), disjoint from every other member's range on the same
 * address. A port belongs to one flow at a time, for as long as the flow or its tombstone
 * exists; once free it is held back for `holdMs` before another flow may take it, and each
 * range starts handing out ports at a random point. Both protect a remote peer that still
 * holds state (TIME_WAIT, FIN-WAIT) for an address and port pair from seeing it reused at once,
 * also after a restart of Sluice.
 */
import { FAMILY_V4, parseIp } from './flow-key.js';
import type { OutboundPath, RuntimeSnapshot } from './snapshot.js';

export const SNAT_FIRST_PORT = 1024;
const PORTS = 65536;
/** Ports of one address that SNAT can use. */
export const SNAT_PORTS_PER_ADDRESS = PORTS - SNAT_FIRST_PORT;
/** Azure's default hold of a freed SNAT port before reuse is in this order; scaled by the clock. */
export const DEFAULT_SNAT_HOLD_MS = 60_000;

/** One address's ports: who holds each and since when each is free. */
export class SnatSpace {
  readonly words = new Uint32Array(4);
  readonly family: number;
  /** Per port: the flow id holding it, or -1. */
  readonly owner = new Float64Array(PORTS).fill(-1);
  /** Per port: when it was freed (free ports), or when its flow expired (tombstones). */
  readonly since = new Float64Array(PORTS).fill(-Infinity);
  /** Per port: 1 while a live flow (not a tombstone) holds it. */
  readonly live = new Uint8Array(PORTS);

  constructor(
    readonly index: number,
    readonly address: string,
  ) {
    const f = parseIp(address, this.words, 0);
    if (f === 0) throw new TypeError(`SNAT address is not an IP address: ${address}`);
    this.family = f;
  }
}

/** A contiguous run of one member's ports on one address. */
export interface SnatRange {
  readonly space: SnatSpace;
  readonly first: number;
  readonly size: number;
}

/** The ports of one member on one path. */
export interface SnatBlock {
  readonly key: string;
  readonly path: OutboundPath;
  readonly lb: string;
  readonly ranges: readonly SnatRange[];
  /** Ports the path promised the member; more than the ranges hold when addresses ran out. */
  readonly wanted: number;
  /** Position of the next search, over the concatenated ranges. */
  cursor: number;
}

/** Allocated and used ports per load balancer, rule or gateway and address (metrics). */
export interface SnatUsage {
  readonly lb: string;
  readonly via: 'outboundRule' | 'natGateway';
  /** Name of the outbound rule or of the NAT gateway. */
  readonly name: string;
  readonly address: string;
  readonly allocated: number;
  readonly used: number;
}

/** The identity of a member's outbound path: what stays the same across reconfigurations. */
export function outboundPathKey(path: OutboundPath): string {
  const via = path.via.kind === 'natGateway' ? path.via.natGateway.id : path.via.rule.id;
  return `${path.via.kind}|${via}|${path.member.id}|${path.member.address}`;
}

function pathAddresses(path: OutboundPath): string[] {
  return path.via.kind === 'natGateway'
    ? [...path.via.natGateway.publicIpAddresses]
    : path.via.rule.frontends.map((f) => f.address);
}

export interface SnatAllocatorOptions {
  readonly holdMs?: number;
  readonly random?: () => number;
}

export class SnatAllocator {
  readonly holdMs: number;
  private readonly random: () => number;
  private readonly spaces: SnatSpace[] = [];
  private readonly spaceIndex = new Map<string, number>();
  private blocks = new Map<string, SnatBlock>();

  constructor(options: SnatAllocatorOptions = {}) {
    this.holdMs = options.holdMs ?? DEFAULT_SNAT_HOLD_MS;
    this.random = options.random ?? Math.random;
  }

  space(index: number): SnatSpace {
    return this.spaces[index]!;
  }

  block(key: string): SnatBlock | undefined {
    return this.blocks.get(key);
  }

  /**
   * Lays out every member's ranges for `snapshot`. Ports held by existing flows stay theirs
   * wherever the new ranges fall: a range's port that is held is skipped until it is free.
   */
  layout(snapshot: RuntimeSnapshot): void {
    const next = new Map<string, number>();
    const blocks = new Map<string, SnatBlock>();
    const gatewayMembers = new Map<string, number>();
    for (const lb of snapshot.loadBalancers)
      for (const p of lb.outboundPaths)
        if (p.via.kind === 'natGateway')
          gatewayMembers.set(p.via.natGateway.id, (gatewayMembers.get(p.via.natGateway.id) ?? 0) + 1);
    for (const lb of snapshot.loadBalancers) {
      for (const path of lb.outboundPaths) {
        const key = outboundPathKey(path);
        if (blocks.has(key)) continue;
        const addresses = pathAddresses(path).filter((a) => parseIp(a, new Uint32Array(4), 0) === FAMILY_V4);
        let wanted: number;
        if (path.via.kind === 'outboundRule') wanted = path.via.rule.allocatedOutboundPorts;
        else {
          // A NAT gateway shares its addresses' ports among the members of its subnets.
          const n = gatewayMembers.get(path.via.natGateway.id) ?? 1;
          wanted = Math.floor((addresses.length * SNAT_PORTS_PER_ADDRESS) / n / 8) * 8;
        }
        const ranges: SnatRange[] = [];
        let left = wanted;
        for (const address of addresses) {
          if (left === 0) break;
          const at = next.get(address) ?? SNAT_FIRST_PORT;
          const size = Math.min(left, PORTS - at);
          if (size <= 0) continue;
          ranges.push({ space: this.spaceOf(address), first: at, size });
          next.set(address, at + size);
          left -= size;
        }
        const total = ranges.reduce((n, r) => n + r.size, 0);
        const old = this.blocks.get(key);
        const cursor =
          old !== undefined && sameRanges(old.ranges, ranges)
            ? old.cursor
            : Math.floor(this.random() * Math.max(1, total));
        blocks.set(key, { key, path, lb: lb.name, ranges, wanted, cursor });
      }
    }
    this.blocks = blocks;
  }

  /**
   * A port for a new flow of the member's path: `[space index, port]` packed as
   * `space * 65536 + port`, or -1 when every port of the range is held or held back.
   * `reclaim(flowId)` is asked to give up a tombstone's port when nothing else is free; it
   * returns true when the tombstone is gone (and `release` was called for its port).
   */
  allocate(key: string, flowId: number, now: number, reclaim: (flowId: number) => boolean): number {
    const b = this.blocks.get(key);
    if (b === undefined) return -1;
    const total = b.ranges.reduce((n, r) => n + r.size, 0);
    if (total === 0) return -1;
    let oldestTomb = -1;
    let oldestSince = Infinity;
    for (let n = 0; n < total; n++) {
      const pos = (b.cursor + n) % total;
      const [space, port] = locate(b.ranges, pos);
      const owner = space.owner[port]!;
      const since = space.since[port]!;
      if (owner < 0) {
        if (now - since < this.holdMs) continue;
        b.cursor = (pos + 1) % total;
        return this.take(space, port, flowId);
      }
      // Expired flows keep their port for B6 answers; the longest expired may give it up.
      if (space.live[port] === 0 && now - since >= this.holdMs && since < oldestSince) {
        oldestSince = since;
        oldestTomb = pos;
      }
    }
    if (oldestTomb < 0) return -1;
    const [space, port] = locate(b.ranges, oldestTomb);
    if (!reclaim(space.owner[port]!) || space.owner[port]! >= 0) return -1;
    // The tombstone just freed it: no hold beyond the one it already served.
    b.cursor = (oldestTomb + 1) % total;
    return this.take(space, port, flowId);
  }

  /** The flow holding a port expired: it keeps the port as a tombstone, no longer as a live flow. */
  retire(packed: number, now: number): void {
    const space = this.spaces[Math.floor(packed / PORTS)]!;
    const port = packed % PORTS;
    space.live[port] = 0;
    space.since[port] = now;
  }

  /** The flow (or tombstone) holding a port is gone: the port rests for `holdMs`. */
  release(packed: number, flowId: number, now: number): void {
    const space = this.spaces[Math.floor(packed / PORTS)]!;
    const port = packed % PORTS;
    if (space.owner[port] !== flowId) return;
    space.owner[port] = -1;
    space.live[port] = 0;
    space.since[port] = now;
  }

  /** Per load balancer, rule or gateway and address: ports allocated and ports held by live flows. */
  usage(): SnatUsage[] {
    const rows = new Map<
      string,
      { row: Omit<SnatUsage, 'allocated' | 'used'>; allocated: number; used: number }
    >();
    for (const b of this.blocks.values()) {
      const via = b.path.via;
      const name = via.kind === 'natGateway' ? via.natGateway.name : via.rule.name;
      for (const r of b.ranges) {
        const k = `${b.lb}|${via.kind}|${name}|${r.space.address}`;
        let e = rows.get(k);
        if (e === undefined) {
          e = { row: { lb: b.lb, via: via.kind, name, address: r.space.address }, allocated: 0, used: 0 };
          rows.set(k, e);
        }
        e.allocated += r.size;
        const live = r.space.live;
        for (let p = r.first; p < r.first + r.size; p++) e.used += live[p]!;
      }
    }
    return [...rows.values()].map((e) => ({ ...e.row, allocated: e.allocated, used: e.used }));
  }

  private take(space: SnatSpace, port: number, flowId: number): number {
    space.owner[port] = flowId;
    space.live[port] = 1;
    return space.index * PORTS + port;
  }

  private spaceOf(address: string): SnatSpace {
    let i = this.spaceIndex.get(address);
    if (i === undefined) {
      i = this.spaces.length;
      this.spaces.push(new SnatSpace(i, address));
      this.spaceIndex.set(address, i);
    }
    return this.spaces[i]!;
  }
}

function locate(ranges: readonly SnatRange[], pos: number): [SnatSpace, number] {
  for (const r of ranges) {
    if (pos < r.size) return [r.space, r.first + pos];
    pos -= r.size;
  }
  throw new RangeError('position outside the ranges');
}

function sameRanges(a: readonly SnatRange[], b: readonly SnatRange[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => r.space === b[i]!.space && r.first === b[i]!.first && r.size === b[i]!.size)
  );
}

/** Packed `space * 65536 + port` to its parts. */
export function snatSpaceOf(packed: number): number {
  return Math.floor(packed / PORTS);
}

export function snatPortOf(packed: number): number {
  return packed % PORTS;
}
