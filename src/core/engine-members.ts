/**
 * Backend members as the flow engine knows them: an index per member (and address) that flow
 * records hold, the member's address as words for reply tuples, its health per probe, its
 * admin state, and the Maglev table a new flow of a pool is picked from. Health, admin state
 * and snapshots bump one version, so a stale Maglev table is rebuilt the next time it is used.
 */
import { parseIp } from './flow-key.js';
import { MAGLEV_TABLE_SIZE, buildMaglevTable, maglevLookup } from './maglev.js';
import type { PathRuntime } from './engine-paths.js';
import type { AdminState, BackendMember, BackendPool, Probe } from './snapshot.js';

interface MemberRuntime {
  readonly member: BackendMember;
  readonly family: number;
}

interface PoolPick {
  version: number;
  table: Int32Array;
  /** Maglev positions to member indices. */
  members: number[];
}

const NO_PROBE = '';

export interface MembersOptions {
  /** Health assumed for a probed member before any probe result. */
  readonly initialHealthy: boolean;
  /** Seed of the distribution hash. */
  readonly seed: number;
  readonly maglevSize?: number;
}

export class Members {
  private readonly runtimes: MemberRuntime[] = [];
  private readonly byKey = new Map<string, number>();
  /** Each member's address, four words a member (flow-key.ts layout). */
  words = new Uint32Array(64);
  private readonly health = new Map<string, boolean>();
  private readonly adminOverride = new Map<string, AdminState>();
  private readonly picks = new Map<string, PoolPick>();
  private version = 0;
  private readonly maglevSize: number;

  constructor(private readonly options: MembersOptions) {
    this.maglevSize = options.maglevSize ?? MAGLEV_TABLE_SIZE;
  }

  /** The index of a member, given one on first sight. */
  indexOf(m: BackendMember): number {
    // A member whose address changed is a different member: reply tuples depend on it.
    const k = `${m.id}|${m.address}`;
    let idx = this.byKey.get(k);
    if (idx !== undefined) return idx;
    idx = this.runtimes.length;
    if ((idx + 1) * 4 > this.words.length) {
      const w = new Uint32Array(this.words.length * 2);
      w.set(this.words);
      this.words = w;
    }
    const family = parseIp(m.address, this.words, idx * 4);
    if (family === 0) throw new TypeError(`backend address is not an IP address: ${m.address}`);
    this.runtimes.push({ member: m, family });
    this.byKey.set(k, idx);
    return idx;
  }

  member(index: number): BackendMember {
    return this.runtimes[index]!.member;
  }

  family(index: number): number {
    return this.runtimes[index]!.family;
  }

  /** Every cached pick is stale (a new snapshot). */
  invalidate(): void {
    this.version++;
  }

  /** Records a probe result for a member (per probe: rules with different probes differ). */
  setHealth(memberId: string, healthy: boolean, probeId?: string): void {
    const key = `${probeId ?? NO_PROBE}|${memberId}`;
    if (this.health.get(key) === healthy) return;
    this.health.set(key, healthy);
    this.version++;
  }

  /** Overrides a member's adminState at run time (`undefined` restores the configured one). */
  setAdminState(memberId: string, state: AdminState | undefined): void {
    if (state === undefined) this.adminOverride.delete(memberId);
    else this.adminOverride.set(memberId, state);
    this.version++;
  }

  adminState(m: BackendMember): AdminState {
    return this.adminOverride.get(m.id) ?? m.adminState;
  }

  /** The member index a new flow of `pool` goes to, or -1 when no member is eligible. */
  pick(path: PathRuntime, pool: BackendPool, probe: Probe | undefined, words: Uint32Array): number {
    const pick = this.current(pool, probe);
    if (pick.members.length === 0) return -1;
    const pos = maglevLookup(pick.table, path.hash(words, 0, this.options.seed));
    return pos < 0 ? -1 : pick.members[pos]!;
  }

  /**
   * Whether every member of `pool` that `probe` decides for has had a probe result: until then a
   * pick could differ from that of an instance that has them all.
   */
  allProbed(pool: BackendPool, probe: Probe | undefined): boolean {
    if (probe === undefined) return true;
    return pool.members.every((m) => this.adminState(m) !== 'None' || this.health.has(`${probe.id}|${m.id}`));
  }

  /** How many members a new flow of `pool` (judged by `probe`) may go to now. */
  eligibleCount(pool: BackendPool, probe: Probe | undefined): number {
    return this.current(pool, probe).members.length;
  }

  /** The pool's Maglev pick, rebuilt when health, admin state or the snapshot changed. */
  private current(pool: BackendPool, probe: Probe | undefined): PoolPick {
    const cacheKey = `${pool.id}|${probe?.id ?? NO_PROBE}`;
    let pick = this.picks.get(cacheKey);
    if (pick === undefined || pick.version !== this.version) {
      pick = this.buildPick(pool, probe);
      this.picks.set(cacheKey, pick);
    }
    return pick;
  }

  private buildPick(pool: BackendPool, probe: Probe | undefined): PoolPick {
    const candidates = pool.members.filter((m) => this.adminState(m) !== 'Down');
    let eligible = candidates.filter(
      (m) =>
        this.adminState(m) === 'Up' ||
        probe === undefined ||
        (this.health.get(`${probe.id}|${m.id}`) ?? this.options.initialHealthy),
    );
    if (eligible.length === 0 && probe?.noHealthyBackendsBehavior === 'AllProbedUp') eligible = candidates;
    const table = buildMaglevTable(
      eligible.map((m) => ({ key: m.id, weight: 1 })),
      this.maglevSize,
    );
    return { version: this.version, table, members: eligible.map((m) => this.indexOf(m)) };
  }
}
