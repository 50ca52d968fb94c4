/**
 * The composition root: wires the clock, the flow engine, the prober, a data plane (a module
 * of dataplane/registry.ts, whichever it is), the scheduler of timed work and the logger for
 * `sluice run` and `sluice demo`. Everything else receives what it needs from here.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';
import { Registry } from 'prom-client';
import { EndedFlows, expiryMessage, findMember, healthViewOf, memberLb } from './app-controls.js';
import { EventHub, endpointText, flowSummary, type EndCause, type EndedFlow } from './control/events.js';
import type { DrainingMember, LiveRuntime } from './control/overview.js';
import type { AdvanceResponse, ClockMode, ClockView } from './control/routes/clock.js';
import type { HealthView, MemberRef, ProbeMarkResult } from './control/routes/health.js';
import { planBudget, type ApiShareRefusal, type BudgetPlan } from './core/budget.js';
import { ManualClock, type Clock, type TimerHandle } from './core/clock.js';
import { formatDuration } from './core/duration.js';
import { SluiceError } from './core/errors.js';
import { DeadlineScheduler } from './time/scheduler.js';
import { SystemClock } from './time/system-clock.js';
import { DEFAULT_UDP_TIMEOUT_MS, FlowEngine, type PoolOptions, type PoolQuestion } from './core/engine.js';
import type { FlowEvent } from './core/events.js';
import type { RuntimeSnapshot } from './core/snapshot.js';
import {
  DEFAULT_DATA_PLANE,
  type DataPlane,
  type DataPlaneModule,
  type PlaneSettings,
} from './dataplane/registry.js';
import { Prober } from './health/prober.js';
import type { HealthTransition, ProbeVerdict } from './health/types.js';
import { memberChanges, memberKey, ruleNames, type MemberPlace } from './core/snapshot-diff.js';
import { SluiceMetrics, type FrontendState, type SnatState } from './metrics/metrics.js';
import { openFilesLimit } from './host-limits.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** How a load balancer runs; the plane's own settings (PlaneSettings) go to its module. */
export interface AppOptions extends PlaneSettings {
  /** Divides every timer of the load balancer (`--time-scale`). */
  readonly timeScale?: number;
  readonly udpFlowTimeoutMs?: number;
  readonly maxFlows?: number;
  /**
   * The shares of the process's descriptors (core/budget.ts). By default planned from the
   * open-files limit, with the API served.
   */
  readonly budget?: BudgetPlan;
  /** How long a freed SNAT port rests before reuse (packet plane's outbound rules). */
  readonly snatHoldMs?: number;
  readonly logger?: Logger;
  readonly logLevel?: LogLevel;
  readonly clock?: Clock;
  /** Where the metrics are registered (GET /metrics); a private registry when not given. */
  readonly registry?: Registry;
  /**
   * This instance is one of a pool behind ECMP (`sluice run --bgp`): the flow engine adopts flows
   * a change of the pool moves here, and asks the pool before an idle end of a flow that may
   * have moved (docs/scale-out.md). Real milliseconds.
   */
  readonly pool?: { readonly graceMs: number; readonly askMs: number; readonly settleMs: number };
}

/**
 * What every log line carries besides its message: `time`, the wall-clock time (ISO 8601), and,
 * given the load balancer's clock, `at`, its time in whole milliseconds, as events carry it.
 */
export function logOptions(clock?: Clock): Pick<LoggerOptions, 'timestamp' | 'mixin'> {
  return {
    timestamp: pino.stdTimeFunctions.isoTime,
    ...(clock !== undefined ? { mixin: () => ({ at: Math.round(clock.now()) }) } : {}),
  };
}

export function createLogger(level: LogLevel = 'info', clock?: Clock): Logger {
  return pino({ level, base: { app: 'sluice' }, ...logOptions(clock) });
}

export type { ClockMode } from './control/routes/clock.js';

/** The shares when the caller planned none: from the open-files limit, with the API served. */
function defaultBudget(proxyPlane: boolean): BudgetPlan {
  const r = planBudget({ openFiles: openFilesLimit(), api: true, flowsHoldDescriptors: proxyPlane });
  if (!r.ok) throw new SluiceError('SLUICE_HOST_BUDGET', r.problem);
  return r.plan;
}

/** The default plane's type: what `SluiceApp.start` without a plane runs. */
type DefaultPlane = ReturnType<(typeof DEFAULT_DATA_PLANE)['create']>;

export class SluiceApp<P extends DataPlane = DefaultPlane> {
  readonly clock: Clock;
  readonly engine: FlowEngine;
  readonly prober: Prober;
  /** Arms one timer for the plane's next deadline (idle expiry, holds, buffer sweeps). */
  readonly scheduler: DeadlineScheduler;
  readonly plane: P;
  readonly log: Logger;
  /** Flow, probe and configuration events for the API's event stream. */
  readonly events = new EventHub();
  readonly metrics: SluiceMetrics;
  readonly timeScale: number;
  /** `manual`: the clock is a ManualClock, moved by `advanceClock` (POST /sluice/v1/clock/advance). */
  readonly clockMode: ClockMode;
  /** The shares of the process's descriptors this load balancer keeps to. */
  readonly budget: BudgetPlan;
  /** How many configurations were applied (the first is 0). */
  generation = 0;
  /** Where the engine's questions to the pool go (pool/adoption.ts sets it); unset, they go unanswered. */
  onPoolQuestion: ((question: PoolQuestion) => void) | undefined;
  private running = true;
  private readonly udpFlowTimeoutMs: number;
  /** Names of every rule ever served: flows of removed rules still need their labels. */
  private readonly names = new Map<string, { lb: string; rule: string }>();
  /** Removed members whose flows are draining, by member key. */
  private readonly drains = new Map<string, TimerHandle>();
  /** The flows a move of the clock or a request ended, and what ended each. */
  private readonly ended = new EndedFlows((ruleId) => this.labelsOf(ruleId));

  private constructor(snapshot: RuntimeSnapshot, options: AppOptions, module: DataPlaneModule<P>) {
    this.timeScale = options.timeScale ?? 1;
    this.clock = options.clock ?? new SystemClock(this.timeScale);
    this.clockMode = this.clock instanceof ManualClock ? 'manual' : 'system';
    this.log = options.logger ?? createLogger(options.logLevel, this.clock);
    this.budget = options.budget ?? defaultBudget(module.flowsHoldDescriptors);
    for (const [id, n] of ruleNames(snapshot)) this.names.set(id, n);
    this.metrics = new SluiceMetrics(options.registry ?? new Registry(), {
      flows: () => this.engine.flows(),
      health: () => this.prober.list(),
      frontends: () => this.frontendStates(),
      snat: () => this.snatStates(),
      packetDrops: () => this.plane.packetDrops?.() ?? {},
      labelsOf: (ruleId) => this.labelsOf(ruleId),
      lbOfPool: (poolId) => memberLb(this.engine.snapshot, poolId)?.name ?? '',
      pool: () => (this.engine.inPool ? this.engine.stats() : undefined),
    });
    this.udpFlowTimeoutMs = options.udpFlowTimeoutMs ?? DEFAULT_UDP_TIMEOUT_MS;
    this.engine = new FlowEngine({
      clock: this.clock,
      snapshot,
      indexReplies: module.indexReplies,
      // A probed member takes no new flows until its probe has answered once, as in Azure.
      initialHealth: 'down',
      // A clock moved by hand stops where it is told to: expiries are due to the millisecond.
      ...(this.clockMode === 'manual' ? { tickMs: 1 } : {}),
      ...(options.udpFlowTimeoutMs !== undefined ? { udpTimeoutMs: options.udpFlowTimeoutMs } : {}),
      ...(options.maxFlows !== undefined ? { maxFlows: options.maxFlows } : {}),
      ...(options.snatHoldMs !== undefined ? { snatHoldMs: options.snatHoldMs } : {}),
      ...(options.pool !== undefined ? { pool: this.poolOptions(options.pool) } : {}),
      events: (e) => this.onFlowEvent(e),
    });
    this.plane = module.create(
      {
        engine: this.engine,
        clock: this.clock,
        log: this.log,
        timeScale: this.timeScale,
        budget: this.budget,
        // One timer for the plane's timed work, armed for its next deadline: no fixed tick.
        wake: () => this.scheduler.poke(),
        logRefusal: (cause, level, msg, fields) => this.logRefusal(cause, level, msg, fields),
        shareRefused: (reason) => this.metrics.flowShareRefused(reason),
      },
      options,
    );
    this.prober = new Prober({
      clock: this.clock,
      // Probes answer over real sockets: on a manual clock their answers are waited for in real time.
      ...(this.clockMode === 'manual' ? { answerClock: new SystemClock() } : {}),
      sink: (t) => this.onHealth(t),
    });
    this.scheduler = new DeadlineScheduler(this.clock, {
      nextDeadline: () => this.plane.nextDeadline(),
      runDue: (now) => this.plane.runDue(now),
      watch: (ms, sooner) => this.engine.watchDeadline(ms, sooner),
    });
  }

  /** The engine's pool options in load-balancer time (the settings are real time: networks, routers). */
  private poolOptions(p: NonNullable<AppOptions['pool']>): PoolOptions {
    const scale = this.clockMode === 'manual' ? 1 : this.timeScale;
    return {
      graceMs: p.graceMs * scale,
      askMs: p.askMs * scale,
      settleMs: p.settleMs * scale,
      ask: (q) => this.onPoolQuestion?.(q),
    };
  }

  /**
   * Starts serving `snapshot` with `options.plane` (the default plane when not given); rejects,
   * with nothing left open, when the plane cannot serve it (a listener cannot open...).
   */
  static start(snapshot: RuntimeSnapshot, options?: AppOptions): Promise<SluiceApp>;
  static start<P extends DataPlane>(
    snapshot: RuntimeSnapshot,
    options: AppOptions & { readonly plane: DataPlaneModule<P> },
  ): Promise<SluiceApp<P>>;
  static async start(
    snapshot: RuntimeSnapshot,
    options: AppOptions & { readonly plane?: DataPlaneModule<DataPlane> } = {},
  ): Promise<SluiceApp<DataPlane>> {
    const module = options.plane ?? DEFAULT_DATA_PLANE;
    return SluiceApp.launch(new SluiceApp<DataPlane>(snapshot, options, module), snapshot);
  }

  private static async launch<P extends DataPlane>(
    app: SluiceApp<P>,
    snapshot: RuntimeSnapshot,
  ): Promise<SluiceApp<P>> {
    try {
      await app.plane.apply(snapshot);
      app.prober.update(snapshot);
      app.scheduler.start();
    } catch (err) {
      await app.stop();
      throw err;
    }
    return app;
  }

  private onHealth(t: HealthTransition): void {
    this.engine.setHealth(t.memberId, t.probeState === 'up', t.probeId);
    const fields = {
      probe: t.probeName,
      member: t.memberName,
      address: t.address,
      port: t.port,
      reason: t.reason,
    };
    if (t.from !== t.to)
      this.log.info({ ...fields, from: t.from, to: t.to }, `backend ${t.address} is ${t.to}`);
    if (t.from !== t.to && t.to !== 'unknown') {
      this.events.publish({
        type: t.to === 'up' ? 'probe.up' : 'probe.down',
        at: t.at,
        lb: memberLb(this.engine.snapshot, t.poolId)?.name ?? '',
        probe: t.probeName,
        backend: t.memberName,
        address: t.address,
        port: t.port,
        reason: t.reason,
      });
    }
    // Standard keeps established flows on a member whose probe fails; Basic ends them.
    if (t.to === 'down' && t.from === 'up' && memberLb(this.engine.snapshot, t.poolId)?.sku === 'Basic') {
      const n = this.resetFlowsOfMember(t.memberId, 'backend-down');
      if (n > 0)
        this.log.info({ member: t.memberName, flows: n }, 'Basic SKU: flows of a down backend reset');
    }
  }

  private onFlowEvent(e: FlowEvent): void {
    this.metrics.flowEvent(e);
    if (this.events.size > 0) this.publishFlowEvent(e);
    this.ended.note(e);
    switch (e.type) {
      case 'expired': {
        const f = e.flow;
        const labels = this.labelsOf(f.ruleId);
        this.log.info(
          {
            flow: f.id,
            lb: labels.lb,
            rule: labels.rule,
            protocol: f.protocol,
            state: f.state,
            client: endpointText(f.client),
            backend: endpointText(f.backend),
            idleMs: Math.round(f.idleMs),
            action: e.action,
            ...(e.noReset !== undefined ? { noReset: e.noReset } : {}),
          },
          expiryMessage(e, this.ended.cause),
        );
        break;
      }
      case 'refused':
        // One per connection or datagram: a flood of them must not become a flood of log lines.
        this.logRefusal(`engine:${e.reason}`, 'warn', 'new flow refused', {
          reason: e.reason,
          protocol: e.protocol,
          client: `${e.client.address}:${e.client.port}`,
        });
        break;
      case 'created':
      case 'closed':
        if (this.log.isLevelEnabled('debug'))
          this.log.debug(
            {
              flow: e.flow.id,
              event: e.type,
              state: e.flow.state,
              ...(e.type === 'closed' ? { reason: e.reason } : {}),
            },
            `flow ${e.type}`,
          );
        break;
    }
  }

  /** The load balancer's clock, as GET /sluice/v1/clock shows it. */
  clockView(): ClockView {
    return {
      mode: this.clockMode,
      now: Math.round(this.clock.now()),
      timeScale: this.timeScale,
      time: new Date().toISOString(),
    };
  }

  /**
   * Moves a manual clock forward by `ms` and does all that falls due on the way, in order: idle
   * timeouts (reset or drop), UDP flow timeouts, drains, holds, probe intervals. Resolves once
   * the sockets of the flows it ended are closed (their RSTs sent) or the flows blackholed, with
   * every flow it ended. Throws SLUICE_CLOCK_NOT_MANUAL when the clock moves by itself.
   */
  async advanceClock(ms: number): Promise<AdvanceResponse> {
    const clock = this.clock;
    if (!(clock instanceof ManualClock))
      throw new SluiceError(
        'SLUICE_CLOCK_NOT_MANUAL',
        'the clock is the system clock, which moves by itself; run with --clock manual to move it by hand',
      );
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`cannot move the clock by ${ms} ms`);
    const from = clock.now();
    const ended = this.ended.collect('idle-timeout', () => clock.advance(ms));
    await this.plane.settled?.();
    if (ended.length > 0 || ms > 0)
      this.log.info(
        { from: Math.round(from), advancedMs: ms, ended: ended.length },
        `clock moved by hand by ${formatDuration(ms)}: ${ended.length} flow${ended.length === 1 ? '' : 's'} ended`,
      );
    return { ...this.clockView(), advancedMs: ms, ended };
  }

  /**
   * Ends one live flow now as its idle timeout would (reset or silent drop, B3-B5), whatever the
   * clock; resolves once it is done, with the flow, or undefined when there is no such live flow.
   */
  async expireFlow(flowId: number): Promise<EndedFlow | undefined> {
    let found = false;
    const ended = this.ended.collect('request', () => {
      found = this.plane.expireFlow(flowId);
    });
    if (!found) return undefined;
    await this.plane.settled?.();
    return ended[0];
  }

  /** Every probed member's health, as GET /sluice/v1/health shows it. */
  healthView(): HealthView[] {
    return this.prober.list().map((h) => healthViewOf(this.engine.snapshot, h));
  }

  /**
   * Sets (`up`, `down`) or clears (`undefined`) a probed member's probe verdict by hand: it
   * stands for every probe of the member until cleared or until the member leaves the
   * configuration. The member is named by its name or its address.
   */
  markProbe(ref: MemberRef, verdict: ProbeVerdict | undefined): ProbeMarkResult {
    const found = findMember(this.engine.snapshot, ref);
    if ('ok' in found) return found;
    const { member } = found;
    if (!this.prober.override(member.id, verdict))
      return {
        ok: false,
        problem: 'not-probed',
        message: `member '${member.name}' of pool '${found.pool}' is probed by no rule's probe, so it has no probe verdict to set: give its rules a probe, or set its adminState to Down`,
      };
    this.log.info(
      {
        lb: found.lb,
        pool: found.pool,
        member: member.name,
        address: member.address,
        verdict: verdict ?? 'cleared',
      },
      verdict === undefined
        ? `backend ${member.address}: probe verdict set by hand cleared`
        : `backend ${member.address}: probe marked ${verdict} by hand`,
    );
    return {
      ok: true,
      members: this.prober
        .list()
        .filter((h) => h.memberId === member.id)
        .map((h) => healthViewOf(this.engine.snapshot, h)),
    };
  }

  /** Refusals not yet logged, and when each cause was last logged (real time). */
  private readonly refusalLogs = new Map<string, { count: number; at: number }>();

  /**
   * Refusals come one per connection or datagram: each cause is logged at most once a second,
   * with how many there were since its last line (`refused`).
   */
  private logRefusal(
    cause: string,
    level: 'warn' | 'error',
    msg: string,
    fields: Record<string, unknown> = {},
  ): void {
    let r = this.refusalLogs.get(cause);
    if (r === undefined) this.refusalLogs.set(cause, (r = { count: 0, at: -Infinity }));
    r.count++;
    const now = Date.now();
    if (now - r.at < 1000) return;
    this.log[level]({ ...fields, refused: r.count }, msg);
    r.count = 0;
    r.at = now;
  }

  /** An API connection dropped, or an event stream refused, because its share is full. */
  apiRefused(reason: ApiShareRefusal): void {
    this.metrics.apiRefused(reason);
    if (reason === 'connections')
      this.logRefusal(
        'api-connections',
        'warn',
        `API connection share full: new API connections dropped (${this.budget.apiConnections} connections, --max-api-connections)`,
        { reason },
      );
    else
      this.logRefusal(
        'event-streams',
        'warn',
        `event stream share full: new event streams refused with 503 (${this.budget.eventStreams} streams, --max-event-streams)`,
        { reason },
      );
  }

  /**
   * Serves a new configuration in place. Flows of rules the change does not touch go on; a
   * changed idle timeout holds for existing flows at once; flows of removed rules end (reset if
   * the rule had TCP reset on, else dropped); flows of a member now adminState Down are reset,
   * and those of a member gone from its pool are reset after the pool's drain period. All or
   * nothing: when the data plane cannot serve `snapshot` (a port in use), nothing changed.
   */
  async apply(snapshot: RuntimeSnapshot, generation = this.generation + 1): Promise<void> {
    const previous = this.engine.snapshot;
    this.engine.setSnapshot(snapshot);
    try {
      await this.plane.apply(snapshot);
    } catch (err) {
      this.engine.setSnapshot(previous);
      this.metrics.configApplied('failed');
      throw err;
    }
    for (const [id, n] of ruleNames(snapshot)) this.names.set(id, n);
    this.prober.update(snapshot);
    const changes = memberChanges(previous, snapshot);
    for (const [key, timer] of this.drains) {
      if (changes.present.has(key)) {
        this.clock.clearTimer(timer);
        this.drains.delete(key);
      }
    }
    for (const place of changes.down) this.resetFlowsOfMember(place.member.id);
    for (const place of changes.removed) this.drain(place);
    this.generation = generation;
    this.metrics.configApplied('applied', generation);
    this.events.publish({
      type: 'config.applied',
      at: this.clock.now(),
      generation,
      loadBalancers: snapshot.loadBalancers.map((lb) => lb.name),
      listeners: this.plane.listening(),
    });
    this.log.info({ generation, listeners: this.plane.listening().length }, 'configuration applied');
  }

  /** Logs a warning about what a configuration serves (what a plane leaves out of it). */
  warn(message: string): void {
    this.log.warn(message);
  }

  /** The load balancer and rule names of a rule id, also for rules removed since. */
  labelsOf(ruleId: string): { lb: string; rule: string } {
    return this.names.get(ruleId) ?? { lb: '', rule: ruleId };
  }

  /** Members whose drain began, by member key; those still in `drains` are draining. */
  private readonly drainingMembers = new Map<string, DrainingMember>();

  private drain(place: MemberPlace): void {
    const key = memberKey(place.member);
    if (this.drains.has(key) || this.engine.flowsOfMember(place.member.id).length === 0) return;
    this.drainingMembers.set(key, {
      lb: place.lb.name,
      pool: place.lb.pools.find((p) => p.id === place.poolId)?.name ?? '',
      memberId: place.member.id,
      name: place.member.name,
      address: place.member.address,
      endsAt: this.clock.now() + place.drainPeriodMs,
    });
    const end = (): void => {
      this.drains.delete(key);
      // The same member at a new address: its flows are the new address's now; leave them.
      const back = this.engine.snapshot.loadBalancers.some((lb) =>
        lb.pools.some((p) => p.members.some((m) => m.id === place.member.id)),
      );
      if (back) return;
      const n = this.resetFlowsOfMember(place.member.id, 'drain');
      if (n > 0) this.log.info({ member: place.member.name, flows: n }, 'drain period over: flows reset');
    };
    if (place.drainPeriodMs <= 0) end();
    else this.drains.set(key, this.clock.setTimer(end, place.drainPeriodMs));
  }

  /** Resets every flow of a member through the data plane, counting the RSTs. */
  private resetFlowsOfMember(memberId: string, cause?: EndCause): number {
    for (const id of this.engine.flowsOfMember(memberId)) {
      const f = this.engine.flow(id);
      if (f?.protocol === 'Tcp') this.metrics.resetsSent(f.ruleId, 1);
    }
    return this.ended.within(cause, () => this.plane.endFlowsOfMember(memberId, 'reset'));
  }

  private publishFlowEvent(e: FlowEvent): void {
    if (e.type === 'refused') {
      const { reason, protocol, client, frontend, at } = e;
      this.events.publish({ type: 'flow.refused', at, reason, protocol, client, frontend });
      return;
    }
    const flow = flowSummary(e.flow, this.labelsOf(e.flow.ruleId));
    if (e.type === 'created') this.events.publish({ type: 'flow.created', at: e.at, flow });
    else if (e.type === 'expired')
      this.events.publish({
        type: 'flow.expired',
        at: e.at,
        action: e.action,
        ...(e.noReset !== undefined ? { noReset: e.noReset } : {}),
        flow,
      });
    else this.events.publish({ type: 'flow.closed', at: e.at, reason: e.reason, flow });
  }

  /** What the live page shows beyond flows and events (GET /sluice/v1/overview). */
  get live(): LiveRuntime {
    const udpFlowTimeoutMs = this.udpFlowTimeoutMs;
    return {
      snapshot: () => this.engine.snapshot,
      health: () => this.prober.list(),
      draining: () => {
        for (const key of this.drainingMembers.keys())
          if (!this.drains.has(key)) this.drainingMembers.delete(key);
        return [...this.drainingMembers.values()];
      },
      tombstones: (limit) => this.engine.tombstones(limit),
      tombstoneCount: () => this.engine.tombstoneCount,
      stats: () => this.engine.stats(),
      clock: () => ({ mode: this.clockMode, now: this.clock.now() }),
      generation: () => this.generation,
      udpFlowTimeoutMs,
    };
  }

  /** A frontend's data path is up while Sluice serves at least one rule on it. */
  private frontendStates(): FrontendState[] {
    return this.engine.snapshot.loadBalancers.flatMap((lb) =>
      lb.frontends.map((f) => ({
        lb: lb.name,
        frontend: f.name,
        address: f.address,
        up:
          this.running &&
          [...lb.loadBalancingRules, ...lb.inboundNatRules].some((r) => r.frontend.id === f.id),
      })),
    );
  }

  /** The engine's SNAT ranges; only the packet plane makes outbound flows, so the proxy plane's use 0. */
  private snatStates(): SnatState[] {
    return this.engine.snatUsage().map((u) => ({
      lb: u.lb,
      rule: u.name,
      frontend: u.address,
      allocated: u.allocated,
      used: u.used,
    }));
  }

  /** Stops probing and serving; every flow ends and every socket is released. */
  async stop(): Promise<void> {
    this.quiesce();
    await this.plane.stop();
  }

  /** Stops at once: host changes taken back before this returns, flows cut short. */
  abort(): void {
    this.quiesce();
    this.plane.abort();
  }

  private quiesce(): void {
    this.running = false;
    this.scheduler.stop();
    for (const timer of this.drains.values()) this.clock.clearTimer(timer);
    this.drains.clear();
    this.prober.stop();
  }
}
