/**
 * How a router's ECMP moves flows when the set of next hops changes, measured in the kernel
 * itself: for each of many TCP 5-tuples, which next hop `ip route get` (with `iif`, so the
 * input path a forwarded packet takes, and the L4 hash of fib_multipath_hash_policy=1) picks,
 * before and after a change. The moved fraction that matters when an instance goes is that of
 * the flows of the instances that stay: with hash-threshold, their hash ranges shift and some
 * of their flows move to another survivor; a resilient group hands out only the gone member's
 * buckets.
 */
import { execFileSync } from 'node:child_process';

export interface Tuple {
  readonly src: string;
  readonly sport: number;
}

/** `count` TCP flows from `srcPrefix`.2-254 with ports from 10000, spread evenly. */
export function tuples(count: number, srcPrefix: string, seed = 1): Tuple[] {
  const out: Tuple[] = [];
  let x = seed >>> 0 || 1;
  const next = (): number => {
    // xorshift32: the same flows on every run.
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  for (let i = 0; i < count; i++)
    out.push({ src: `${srcPrefix}.${2 + (next() % 253)}`, sport: 10000 + (next() % 50000) });
  return out;
}

/** The next hop (gateway, or device when none) the namespace's kernel picks for each flow. */
export function pickAll(
  ns: string,
  dst: string,
  dport: number,
  iif: string,
  flows: readonly Tuple[],
): string[] {
  const batch = flows
    .map((f) => `route get ${dst} from ${f.src} iif ${iif} ipproto tcp sport ${f.sport} dport ${dport}`)
    .join('\n');
  const out = execFileSync('ip', ['-n', ns, '-batch', '-'], {
    input: `${batch}\n`,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000,
  });
  const picks: string[] = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith(dst)) continue;
    const via = / via (\S+)/.exec(line)?.[1];
    const dev = / dev (\S+)/.exec(line)?.[1];
    picks.push(via ?? dev ?? '?');
  }
  if (picks.length !== flows.length)
    throw new Error(`ip route get answered ${picks.length} of ${flows.length} lookups`);
  return picks;
}

export interface Moves {
  readonly flows: number;
  /** Flows whose next hop was one that stays. */
  readonly survivorFlows: number;
  /** Of those, how many went to another next hop. */
  readonly survivorMoved: number;
  /** Flows of next hops that went (all of them must move). */
  readonly orphaned: number;
  /** Flows on each next hop after the change. */
  readonly after: Readonly<Record<string, number>>;
  /** Of the moved survivors' flows and orphans, where they went. */
  readonly movedTo: Readonly<Record<string, number>>;
}

/** Compares the picks of the same flows before and after a change. */
export function compareMoves(before: readonly string[], after: readonly string[]): Moves {
  const remaining = new Set(after);
  let survivorFlows = 0;
  let survivorMoved = 0;
  let orphaned = 0;
  const counts: Record<string, number> = {};
  const movedTo: Record<string, number> = {};
  before.forEach((b, i) => {
    const a = after[i]!;
    counts[a] = (counts[a] ?? 0) + 1;
    if (!remaining.has(b)) {
      orphaned++;
      movedTo[a] = (movedTo[a] ?? 0) + 1;
    } else {
      survivorFlows++;
      if (a !== b) {
        survivorMoved++;
        movedTo[a] = (movedTo[a] ?? 0) + 1;
      }
    }
  });
  return { flows: before.length, survivorFlows, survivorMoved, orphaned, after: counts, movedTo };
}

/** Flows (of all) that changed next hop: what matters when one is added. */
export function movedFraction(before: readonly string[], after: readonly string[]): number {
  let n = 0;
  before.forEach((b, i) => {
    if (after[i] !== b) n++;
  });
  return before.length === 0 ? 0 : n / before.length;
}

export type GroupType =
  | { readonly kind: 'hash-threshold' }
  | {
      readonly kind: 'resilient';
      readonly buckets: number;
      readonly idleTimerS: number;
      readonly unbalancedTimerS: number;
    };

/** The `ip nexthop` words of a group of these member ids. */
export function groupArgs(members: readonly number[], type: GroupType): string[] {
  const base = ['group', members.join('/')];
  if (type.kind === 'hash-threshold') return base;
  return [
    ...base,
    'type',
    'resilient',
    'buckets',
    String(type.buckets),
    'idle_timer',
    String(type.idleTimerS),
    'unbalanced_timer',
    String(type.unbalancedTimerS),
  ];
}

/**
 * A router namespace of its own for the measurement: a client-side device `c0` with
 * 198.18.1.1/24, and `maxHops` devices `hK` with 198.18.(10+K).1/24 whose peers stay in the
 * namespace (nothing is sent: only routes are looked up).
 */
export class EcmpBench {
  private readonly hops: string[] = [];
  private nextGroup = 500;

  constructor(
    readonly ns: string,
    readonly maxHops: number,
    readonly dst = '198.18.100.10',
  ) {}

  private ip(...args: string[]): void {
    execFileSync('ip', ['-n', this.ns, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  }

  build(): void {
    execFileSync('ip', ['netns', 'add', this.ns]);
    execFileSync('ip', ['netns', 'exec', this.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    execFileSync('ip', ['netns', 'exec', this.ns, 'sysctl', '-qw', 'net.ipv4.fib_multipath_hash_policy=1']);
    execFileSync('ip', ['netns', 'exec', this.ns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0']);
    execFileSync('ip', ['netns', 'exec', this.ns, 'sysctl', '-qw', 'net.ipv4.conf.default.rp_filter=0']);
    this.ip('link', 'set', 'lo', 'up');
    this.ip('link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'c1');
    this.ip('addr', 'add', '198.18.1.1/24', 'dev', 'c0');
    this.ip('link', 'set', 'c0', 'up');
    this.ip('link', 'set', 'c1', 'up');
    for (let k = 1; k <= this.maxHops; k++) {
      this.ip('link', 'add', `h${k}`, 'type', 'veth', 'peer', 'name', `p${k}`);
      this.ip('addr', 'add', `198.18.${10 + k}.1/24`, 'dev', `h${k}`);
      this.ip('link', 'set', `h${k}`, 'up');
      this.ip('link', 'set', `p${k}`, 'up');
      this.ip('nexthop', 'add', 'id', String(k), 'via', `198.18.${10 + k}.2`, 'dev', `h${k}`);
      this.hops.push(`198.18.${10 + k}.2`);
    }
  }

  destroy(): void {
    try {
      execFileSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' });
    } catch {
      /* never built */
    }
  }

  /** Routes the destination over a new group of next hops 1..n of `type`; returns its id. */
  route(members: readonly number[], type: GroupType): number {
    const id = this.nextGroup++;
    this.ip('nexthop', 'add', 'id', String(id), ...groupArgs(members, type));
    this.ip('route', 'replace', `${this.dst}/32`, 'nhid', String(id));
    return id;
  }

  /** Changes the members of group `id` in place (as a router does when a path goes or comes). */
  change(id: number, members: readonly number[], type: GroupType): void {
    this.ip('nexthop', 'replace', 'id', String(id), ...groupArgs(members, type));
  }

  picks(flows: readonly Tuple[], dport = 80): string[] {
    return pickAll(this.ns, this.dst, dport, 'c0', flows);
  }

  /** Takes the route and every group away, leaving the member next hops. */
  reset(): void {
    try {
      this.ip('route', 'del', `${this.dst}/32`);
    } catch {
      /* none */
    }
    const out = execFileSync('ip', ['-n', this.ns, '-j', 'nexthop', 'show'], { encoding: 'utf8' });
    for (const nh of JSON.parse(out) as { id: number; group?: unknown }[])
      if (nh.group !== undefined) this.ip('nexthop', 'del', 'id', String(nh.id));
  }
}
