/**
 * Resilient next-hop groups for the lab's router. FRR (8.4, and later releases alike) installs
 * a BGP multipath route as a plain kernel next-hop group, which spreads flows by
 * hash-threshold: when a next hop goes, the hash ranges of the others shift and flows of
 * surviving instances move too. Its `resilient buckets ...` setting only applies to next-hop
 * groups configured by name (sharpd, pbrd), never to what BGP learns. So, in resilient mode,
 * this process mirrors every BGP /32 route FRR installs into a resilient group of its own
 * (table RESILIENT_TABLE, consulted before main), and keeps the members in step: it follows
 * `ip monitor` and applies each change within milliseconds. When a member goes, only its
 * buckets are handed to the others; a new member takes buckets that have been idle.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface EcmpSyncOptions {
  readonly table: number;
  readonly buckets: number;
  readonly idleTimerS: number;
  readonly unbalancedTimerS: number;
  /** One line per change, JSON. */
  readonly log: (fields: Record<string, unknown>) => void;
}

interface KernelRoute {
  dst: string;
  nhid?: number;
  gateway?: string;
  dev?: string;
  nexthops?: { gateway?: string; dev?: string }[];
}

interface KernelNexthop {
  id: number;
  gateway?: string;
  dev?: string;
  group?: { id: number }[];
}

/** Our next-hop objects' ids: members from GATEWAY_IDS, groups from GROUP_IDS. */
const GATEWAY_IDS = 20000;
const GROUP_IDS = 30000;
const ID_SPAN = 10000;

function ipJson<T>(args: readonly string[]): T {
  const out = execFileSync('ip', ['-j', ...args], { encoding: 'utf8' });
  return (out.trim() === '' ? [] : JSON.parse(out)) as T;
}

function ip(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, (err, _out, stderr) =>
      err === null ? resolve() : reject(new Error(`ip ${args.join(' ')}: ${stderr.trim()}`)),
    );
  });
}

/** The gateways (address and device) of each BGP /32 route in the main table. */
export function bgpRoutes(
  routes: readonly KernelRoute[],
  nexthops: readonly KernelNexthop[],
): Map<string, string[]> {
  const byId = new Map(nexthops.map((n) => [n.id, n]));
  const out = new Map<string, string[]>();
  for (const r of routes) {
    if (r.dst.includes('/') && !r.dst.endsWith('/32')) continue;
    const dst = r.dst.replace(/\/32$/, '');
    let gws: { gateway?: string; dev?: string }[] = [];
    if (r.nexthops !== undefined) gws = r.nexthops;
    else if (r.nhid !== undefined) {
      const nh = byId.get(r.nhid);
      if (nh?.group !== undefined) gws = nh.group.map((g) => byId.get(g.id) ?? {});
      else if (nh !== undefined) gws = [nh];
    } else gws = [r];
    const list = gws.filter((g) => g.gateway && g.dev).map((g) => `${g.gateway}@${g.dev}`);
    if (list.length > 0) out.set(dst, [...new Set(list)].sort());
  }
  return out;
}

export class EcmpSync {
  private readonly gatewayIds = new Map<string, number>();
  private readonly groups = new Map<string, { id: number; members: string[] }>();
  private monitor: ChildProcess | undefined;
  private pending: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private again = false;
  private nextGateway = GATEWAY_IDS;
  private nextGroup = GROUP_IDS;

  constructor(private readonly options: EcmpSyncOptions) {}

  async start(): Promise<void> {
    this.clean();
    await ip(['rule', 'add', 'priority', String(this.options.table), 'lookup', String(this.options.table)]);
    this.monitor = spawn('ip', ['monitor', 'route', 'nexthop'], { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: this.monitor.stdout! }).on('line', () => this.soon());
    await this.sync();
    // Whatever a monitor line might miss, a sync every second puts right.
    setInterval(() => this.soon(), 1000).unref();
  }

  stop(): void {
    this.monitor?.kill();
    this.clean();
  }

  private soon(): void {
    if (this.pending !== undefined) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.sync();
    }, 2);
  }

  private sync(): Promise<void> {
    if (this.again) return this.running;
    this.again = true;
    this.running = this.running.then(async () => {
      this.again = false;
      try {
        await this.once();
      } catch (err) {
        this.options.log({ msg: 'sync failed', err: (err as Error).message });
      }
    });
    return this.running;
  }

  private async once(): Promise<void> {
    const routes = ipJson<KernelRoute[]>(['route', 'show', 'proto', 'bgp']);
    const nexthops = ipJson<KernelNexthop[]>(['nexthop', 'show']);
    const want = bgpRoutes(routes, nexthops);
    const o = this.options;
    const res = [
      'type',
      'resilient',
      'buckets',
      String(o.buckets),
      'idle_timer',
      String(o.idleTimerS),
      'unbalanced_timer',
      String(o.unbalancedTimerS),
    ];
    for (const members of want.values()) {
      for (const m of members) {
        if (this.gatewayIds.has(m)) continue;
        const id = this.nextGateway++;
        const [gw, dev] = m.split('@') as [string, string];
        await ip(['nexthop', 'replace', 'id', String(id), 'via', gw, 'dev', dev]);
        this.gatewayIds.set(m, id);
      }
    }
    for (const [dst, members] of want) {
      const group = members.map((m) => this.gatewayIds.get(m)!).join('/');
      const have = this.groups.get(dst);
      if (have !== undefined && have.members.join() === members.join()) continue;
      const id = have?.id ?? this.nextGroup++;
      await ip(['nexthop', have === undefined ? 'add' : 'replace', 'id', String(id), 'group', group, ...res]);
      if (have === undefined)
        await ip(['route', 'replace', `${dst}/32`, 'nhid', String(id), 'table', String(o.table)]);
      this.groups.set(dst, { id, members });
      o.log({ msg: have === undefined ? 'group added' : 'group changed', dst, members, at: Date.now() });
    }
    for (const [dst, g] of this.groups) {
      if (want.has(dst)) continue;
      await ip(['route', 'del', `${dst}/32`, 'table', String(o.table)]).catch(() => undefined);
      await ip(['nexthop', 'del', 'id', String(g.id)]).catch(() => undefined);
      this.groups.delete(dst);
      o.log({ msg: 'group removed', dst, at: Date.now() });
    }
    const used = new Set([...want.values()].flat());
    for (const [m, id] of this.gatewayIds) {
      if (used.has(m)) continue;
      await ip(['nexthop', 'del', 'id', String(id)]).catch(() => undefined);
      this.gatewayIds.delete(m);
    }
  }

  /** Removes this mirror's rule, routes and next-hop objects (also those of an earlier run). */
  private clean(): void {
    const t = String(this.options.table);
    const quiet = (args: string[]): void => {
      try {
        execFileSync('ip', args, { stdio: 'ignore' });
      } catch {
        /* not there */
      }
    };
    quiet(['rule', 'del', 'priority', t, 'lookup', t]);
    quiet(['route', 'flush', 'table', t]);
    for (const nh of ipJson<KernelNexthop[]>(['nexthop', 'show']))
      if (nh.group !== undefined && nh.id >= GROUP_IDS && nh.id < GROUP_IDS + ID_SPAN)
        quiet(['nexthop', 'del', 'id', String(nh.id)]);
    for (const nh of ipJson<KernelNexthop[]>(['nexthop', 'show']))
      if (nh.id >= GATEWAY_IDS && nh.id < GATEWAY_IDS + ID_SPAN)
        quiet(['nexthop', 'del', 'id', String(nh.id)]);
    this.gatewayIds.clear();
    this.groups.clear();
  }
}
