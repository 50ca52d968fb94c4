/**
 * The prober: probes every (probe, backend member) pair that the load-balancing rules of a
 * snapshot use, keeps each pair's health, and reports changes to an injected sink. It never
 * touches a data plane: the flow engine reads `ruleHealth()` when it picks a backend and applies
 * noHealthyBackendsBehavior itself.
 *
 * Timing is in load-balancer time on the injected Clock, so `--time-scale` shortens probe
 * intervals and timeouts without anything here knowing about it.
 *
 * Azure semantics kept here (see docs/health-probes.md):
 * - one attempt per pair every intervalMs; an attempt left unanswered for min(interval, 30 s)
 *   is a failure;
 * - `threshold` consecutive results flip a member (member-state.ts); Http/Https answers other
 *   than 200, and resets, flip it at once;
 * - adminState Down: out of rotation and not probed; adminState Up: in rotation whatever the
 *   probe says. Up members are still probed, because Azure disregards the probe's answer rather
 *   than stopping the probe, and so that setting adminState back to None brings back a current
 *   verdict instead of an unknown one.
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import type {
  BackendMember,
  BackendPool,
  LoadBalancerSnapshot,
  Probe,
  RuntimeSnapshot,
} from '../core/snapshot.js';
import { SluiceError } from '../core/errors.js';
import { INITIAL_COUNTERS, nextCounters, type Counters, type Verdict } from './member-state.js';
import { defaultProbeRegistry, type ProbeRegistry } from './probe-registry.js';
import { normalizeRequestPath } from './probe-http.js';
import type {
  HealthSink,
  HealthSource,
  HealthState,
  MemberHealth,
  ProbeOutcome,
  ProbeRunner,
  ProbeState,
  ProbeTarget,
  ProbeVerdict,
} from './types.js';

/** Azure's ceiling on how long one probe attempt may wait for an answer. */
export const PROBE_TIMEOUT_CAP_MS = 30_000;

export interface ProberOptions {
  readonly clock: Clock;
  /**
   * The clock an attempt's wait for its answer is measured on, when it is not `clock`. With a
   * manual clock (`--clock manual`) intervals follow the load balancer's clock, but a probe's
   * answer comes over a real socket in real time: it is waited for in real time, and a tick
   * that finds the previous attempt still waiting starts none (a clock moved by hand must not
   * turn the attempts it skipped over into failures).
   */
  readonly answerClock?: Clock;
  /** Receives every change of a member's health. */
  readonly sink?: HealthSink;
  /** Probe types by protocol name; Tcp, Http and Https on real sockets by default. */
  readonly registry?: ProbeRegistry;
}

/** What a rule's flow engine needs to pick a backend. */
export interface RuleHealth {
  /** Every member of the rule's pool, in pool order, with its health. */
  readonly members: readonly MemberHealth[];
  /** Members that may take new flows now, in pool order. */
  readonly healthy: readonly BackendMember[];
  /**
   * Members out only because of their probe (not adminState Down): the ones
   * noHealthyBackendsBehavior `AllProbedUp` sends traffic to when `healthy` is empty.
   */
  readonly probedDown: readonly BackendMember[];
}

/** The part of a load-balancing rule that decides its members' health. */
export interface RuleRef {
  readonly pool: BackendPool;
  readonly probe?: Probe;
}

interface Attempt {
  readonly controller: AbortController;
  timeout: TimerHandle | undefined;
  done: boolean;
}

interface Pair {
  readonly key: string;
  probe: Probe;
  member: BackendMember;
  readonly poolId: string;
  /** Protocol, address, port and path: when any of these change the old verdict means nothing. */
  readonly targetKey: string;
  readonly target: ProbeTarget;
  readonly runner: ProbeRunner;
  counters: Counters;
  since: number;
  reason: string;
  latencyMs: number | undefined;
  timer: TimerHandle | undefined;
  /** The latest attempt; once settled its socket may still be closing until the next tick. */
  attempt: Attempt | undefined;
}

function pairKey(probeId: string, memberId: string): string {
  return `${probeId}\n${memberId}`;
}

function targetOf(probe: Probe, member: BackendMember): ProbeTarget {
  const base = { protocol: probe.protocol, address: member.address, port: probe.port };
  return probe.protocol === 'Tcp' ? base : { ...base, requestPath: normalizeRequestPath(probe.requestPath) };
}

function targetKeyOf(t: ProbeTarget): string {
  return `${t.protocol} ${t.address} ${t.port} ${t.requestPath ?? ''}`;
}

function sourceOf(member: BackendMember): HealthSource {
  if (member.adminState === 'Down') return 'adminDown';
  if (member.adminState === 'Up') return 'adminUp';
  return 'probe';
}

function effective(member: BackendMember, probeState: ProbeState): HealthState {
  if (member.adminState === 'Down') return 'down';
  if (member.adminState === 'Up') return 'up';
  return probeState;
}

function loadBalancersOf(snapshot: RuntimeSnapshot | LoadBalancerSnapshot): readonly LoadBalancerSnapshot[] {
  return 'loadBalancers' in snapshot ? snapshot.loadBalancers : [snapshot];
}

export class Prober {
  private readonly clock: Clock;
  private readonly answerClock: Clock;
  private readonly sink: HealthSink | undefined;
  private readonly registry: ProbeRegistry;
  private readonly pairs = new Map<string, Pair>();
  /** Probe verdicts set by hand (`PUT /sluice/v1/health/...`), by member id, until cleared. */
  private readonly overrides = new Map<string, ProbeVerdict>();
  private stopped = false;
  private gen = 0;

  constructor(options: ProberOptions) {
    this.clock = options.clock;
    this.answerClock = options.answerClock ?? options.clock;
    this.sink = options.sink;
    this.registry = options.registry ?? defaultProbeRegistry();
  }

  /**
   * Increases on every change of any member's effective state, so a data plane can keep
   * derived tables (a Maglev table over the healthy members) until it moves.
   */
  get generation(): number {
    return this.gen;
  }

  /**
   * Applies a new snapshot: starts probing new pairs, stops removed ones and keeps the verdict
   * of pairs whose target (protocol, address, port, path) is unchanged, so a configuration
   * change does not flap health. A changed interval takes effect from the next attempt; a
   * changed threshold from the next result. Every probe type is checked before anything
   * changes: an unknown one leaves the prober as it was.
   */
  update(snapshot: RuntimeSnapshot | LoadBalancerSnapshot): void {
    if (this.stopped) throw new Error('Prober.update() after stop()');
    const wanted = new Map<string, { probe: Probe; member: BackendMember; pool: BackendPool }>();
    for (const lb of loadBalancersOf(snapshot)) {
      for (const rule of lb.loadBalancingRules) {
        const probe = rule.probe;
        if (probe === undefined) continue;
        if (!this.registry.has(probe.protocol)) {
          throw new SluiceError(
            'SLUICE_HEALTH_PROBE_TYPE',
            `probe ${probe.name}: no probe type is registered for protocol ${probe.protocol} ` +
              `(known: ${this.registry.names().join(', ')})`,
          );
        }
        for (const member of rule.pool.members) {
          wanted.set(pairKey(probe.id, member.id), { probe, member, pool: rule.pool });
        }
      }
    }

    for (const [key, pair] of this.pairs) {
      const next = wanted.get(key);
      if (next === undefined || targetKeyOf(targetOf(next.probe, next.member)) !== pair.targetKey) {
        this.cancel(pair);
        this.pairs.delete(key);
      }
    }

    for (const [key, { probe, member, pool }] of wanted) {
      const pair = this.pairs.get(key);
      if (pair === undefined) this.start(key, probe, member, pool);
      else this.reconfigure(pair, probe, member);
    }
    // A verdict set by hand lasts while its member is probed; one that left goes back to the probe.
    const probed = new Set([...this.pairs.values()].map((p) => p.member.id));
    for (const id of this.overrides.keys()) if (!probed.has(id)) this.overrides.delete(id);
  }

  /**
   * Sets the probe verdict of a member by hand, for every probe that probes it, until cleared
   * (`undefined`): the prober goes on probing, but its results do not change the member's state
   * until then. adminState still wins over it. Returns false when no probe probes the member.
   */
  override(memberId: string, verdict: ProbeVerdict | undefined): boolean {
    const pairs = [...this.pairs.values()].filter((p) => p.member.id === memberId);
    if (pairs.length === 0) return false;
    const befores = pairs.map((p) => this.view(p));
    if (verdict === undefined) this.overrides.delete(memberId);
    else this.overrides.set(memberId, verdict);
    const reason = verdict === undefined ? 'verdict set by hand cleared' : `probe marked ${verdict} by hand`;
    pairs.forEach((p, i) => this.changed(p, befores[i]!, reason));
    return true;
  }

  /** Health of one member of a rule's pool, under the rule's probe. */
  health(rule: RuleRef, member: BackendMember): MemberHealth {
    const probeId = rule.probe?.id;
    if (probeId !== undefined) {
      const pair = this.pairs.get(pairKey(probeId, member.id));
      if (pair !== undefined) return this.view(pair);
    }
    const down = member.adminState === 'Down';
    return {
      ...(rule.probe !== undefined ? { probeId: rule.probe.id, probeName: rule.probe.name } : {}),
      poolId: rule.pool.id,
      memberId: member.id,
      memberName: member.name,
      address: member.address,
      adminState: member.adminState,
      // A pair the prober has not been given yet has no verdict; a rule without a probe
      // admits every member that is not administratively down.
      state: down ? 'down' : probeId === undefined ? 'up' : 'unknown',
      source: down ? 'adminDown' : probeId === undefined ? 'noProbe' : sourceOf(member),
      probeState: 'notProbed',
      since: 0,
      reason: down ? 'adminState Down' : probeId === undefined ? 'no probe' : 'not probed yet',
      consecutiveSuccesses: 0,
      consecutiveFailures: 0,
    };
  }

  /** Health of every member of a rule's pool, under the rule's probe. */
  ruleHealth(rule: RuleRef): RuleHealth {
    const members = rule.pool.members.map((m) => this.health(rule, m));
    const healthy: BackendMember[] = [];
    const probedDown: BackendMember[] = [];
    rule.pool.members.forEach((m, i) => {
      const h = members[i];
      if (h === undefined) return;
      if (h.state === 'up') healthy.push(m);
      else if (h.source === 'probe') probedDown.push(m);
    });
    return { members, healthy, probedDown };
  }

  /** Every probed or administratively excluded pair, for status pages and metrics. */
  list(): MemberHealth[] {
    return [...this.pairs.values()].map((p) => this.view(p));
  }

  /** Cancels every timer and attempt and closes every probe socket. Idempotent. */
  stop(): void {
    this.stopped = true;
    for (const pair of this.pairs.values()) this.cancel(pair);
    this.pairs.clear();
  }

  private start(key: string, probe: Probe, member: BackendMember, pool: BackendPool): void {
    const target = targetOf(probe, member);
    const runner = this.registry.get(probe.protocol);
    if (runner === undefined) return; // update() checked every protocol first
    const pair: Pair = {
      key,
      probe,
      member,
      poolId: pool.id,
      targetKey: targetKeyOf(target),
      target,
      runner,
      counters: INITIAL_COUNTERS,
      since: this.clock.now(),
      reason: member.adminState === 'Down' ? 'adminState Down' : 'not probed yet',
      latencyMs: undefined,
      timer: undefined,
      attempt: undefined,
    };
    this.pairs.set(key, pair);
    const verdict = this.overrides.get(member.id);
    if (verdict !== undefined)
      this.changed(
        pair,
        { ...this.view(pair), state: 'unknown', probeState: 'unknown' },
        `probe marked ${verdict} by hand`,
      );
    if (member.adminState !== 'Down') this.tick(pair);
  }

  private reconfigure(pair: Pair, probe: Probe, member: BackendMember): void {
    const before = this.view(pair);
    const intervalChanged = probe.intervalMs !== pair.probe.intervalMs;
    const wasDown = pair.member.adminState === 'Down';
    const isDown = member.adminState === 'Down';
    pair.probe = probe;
    pair.member = member;

    if (isDown && !wasDown) {
      this.cancel(pair);
      // Probing stops, so the old counters would be stale when it resumes.
      pair.counters = INITIAL_COUNTERS;
      pair.latencyMs = undefined;
      this.changed(pair, before, 'adminState Down');
    } else if (!isDown && wasDown) {
      this.changed(pair, before, `adminState ${member.adminState}`);
      this.tick(pair);
    } else {
      if (before.adminState !== member.adminState) {
        this.changed(pair, before, `adminState ${member.adminState}`);
      }
      if (intervalChanged && !isDown && pair.timer !== undefined) {
        this.clock.clearTimer(pair.timer);
        pair.timer = this.clock.setTimer(() => this.tick(pair), probe.intervalMs);
      }
    }
  }

  /** Starts one attempt and schedules the next, at a fixed rate whatever the attempt takes. */
  private tick(pair: Pair): void {
    pair.timer = undefined;
    if (this.stopped || this.pairs.get(pair.key) !== pair) return;
    const previous = pair.attempt;
    if (previous !== undefined) {
      if (!previous.done && this.answerClock !== this.clock) {
        // The answer is waited for in real time: this tick was reached by moving the clock,
        // not by waiting, so the attempt still has its chance. None is started beside it.
        pair.timer = this.clock.setTimer(() => this.tick(pair), pair.probe.intervalMs);
        return;
      }
      // The timeout never exceeds the interval, so an unsettled attempt here is one whose
      // timeout falls due at this very moment. A settled one may still hold a closing socket:
      // aborting it makes the runner let go, so each pair holds at most one socket.
      if (!previous.done) this.timeout(pair, previous);
      else previous.controller.abort();
    }

    const timeoutMs = Math.min(pair.probe.intervalMs, PROBE_TIMEOUT_CAP_MS);
    const attempt: Attempt = { controller: new AbortController(), timeout: undefined, done: false };
    pair.attempt = attempt;
    // The timeout is armed before the next tick so that, when both fall due together, the
    // attempt is judged before the next one starts.
    attempt.timeout = this.answerClock.setTimer(() => this.timeout(pair, attempt), timeoutMs);
    pair.timer = this.clock.setTimer(() => this.tick(pair), pair.probe.intervalMs);

    let running: Promise<ProbeOutcome>;
    try {
      running = pair.runner(pair.target, attempt.controller.signal);
    } catch (err) {
      running = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    running.then(
      (outcome) => this.finish(pair, attempt, outcome),
      (err: unknown) =>
        this.finish(pair, attempt, {
          ok: false,
          fastDown: false,
          reason: err instanceof Error ? err.message : String(err),
        }),
    );
  }

  private timeout(pair: Pair, attempt: Attempt): void {
    if (attempt.done) return;
    const ms = Math.min(pair.probe.intervalMs, PROBE_TIMEOUT_CAP_MS);
    this.finish(pair, attempt, { ok: false, fastDown: false, reason: `no answer within ${ms / 1000} s` });
    attempt.controller.abort();
  }

  private finish(pair: Pair, attempt: Attempt, outcome: ProbeOutcome): void {
    // A late answer after the timeout or after stop() changes nothing.
    if (attempt.done) return;
    attempt.done = true;
    if (attempt.timeout !== undefined) this.answerClock.clearTimer(attempt.timeout);
    if (this.stopped || this.pairs.get(pair.key) !== pair || pair.attempt !== attempt) return;

    const before = this.view(pair);
    const verdict: Verdict = outcome.ok ? 'success' : outcome.fastDown ? 'fastFailure' : 'failure';
    pair.counters = nextCounters(pair.counters, verdict, pair.probe.threshold);
    pair.latencyMs = outcome.latencyMs;
    const reason = outcome.ok ? (outcome.detail ?? 'probe succeeded') : outcome.reason;
    if (pair.counters.state !== before.probeState || !outcome.ok) pair.reason = reason;
    this.changed(pair, before, reason);
  }

  /** Emits a transition when the effective state or the probe's verdict moved. */
  private changed(pair: Pair, before: MemberHealth, reason: string): void {
    const after = this.view(pair);
    if (after.state === before.state && after.probeState === before.probeState) return;
    pair.since = this.clock.now();
    pair.reason = reason;
    if (after.state !== before.state) this.gen++;
    this.sink?.({
      at: pair.since,
      probeId: pair.probe.id,
      probeName: pair.probe.name,
      protocol: pair.probe.protocol,
      port: pair.probe.port,
      poolId: pair.poolId,
      memberId: pair.member.id,
      memberName: pair.member.name,
      address: pair.member.address,
      adminState: pair.member.adminState,
      from: before.state,
      to: after.state,
      probeState: after.probeState,
      reason,
      ...(pair.latencyMs !== undefined ? { latencyMs: pair.latencyMs } : {}),
    });
  }

  private cancel(pair: Pair): void {
    if (pair.timer !== undefined) this.clock.clearTimer(pair.timer);
    pair.timer = undefined;
    const attempt = pair.attempt;
    if (attempt !== undefined) {
      attempt.done = true;
      if (attempt.timeout !== undefined) this.answerClock.clearTimer(attempt.timeout);
      attempt.controller.abort();
    }
    pair.attempt = undefined;
  }

  private view(pair: Pair): MemberHealth {
    const verdict = this.overrides.get(pair.member.id);
    const probed = verdict ?? pair.counters.state;
    const probeState: ProbeState | 'notProbed' = pair.member.adminState === 'Down' ? 'notProbed' : probed;
    return {
      probeId: pair.probe.id,
      probeName: pair.probe.name,
      poolId: pair.poolId,
      memberId: pair.member.id,
      memberName: pair.member.name,
      address: pair.member.address,
      adminState: pair.member.adminState,
      state: effective(pair.member, probed),
      source: sourceOf(pair.member),
      probeState,
      ...(verdict !== undefined ? { override: verdict } : {}),
      since: pair.since,
      reason: verdict !== undefined ? `probe marked ${verdict} by hand` : pair.reason,
      ...(pair.latencyMs !== undefined ? { lastLatencyMs: pair.latencyMs } : {}),
      consecutiveSuccesses: pair.counters.successes,
      consecutiveFailures: pair.counters.failures,
    };
  }
}
