/**
 * The composition root: wires the clock, the flow engine, the prober, a data plane and the
 * logger for `sluice run` and `sluice demo`. Everything else receives what it needs from here.
 */
import { pino, type Logger } from 'pino';
import { SystemClock, type Clock } from './core/clock.js';
import { FlowEngine } from './core/engine.js';
import type { FlowEvent } from './core/events.js';
import type { LoadBalancerSnapshot, RuntimeSnapshot } from './core/snapshot.js';
import type { DataPlane } from './dataplane/plane.js';
import { DEFAULT_HOLD_MS, ProxyPlane } from './dataplane/proxy/proxy-plane.js';
import type { ProxyEvent } from './dataplane/proxy/events.js';
import { Prober } from './health/prober.js';
import type { HealthTransition } from './health/types.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface AppOptions {
  /** Divides every timer of the load balancer (`--time-scale`). */
  readonly timeScale?: number;
  readonly udpFlowTimeoutMs?: number;
  /** How long sockets of a silently dropped flow are kept (proxy plane). */
  readonly holdMs?: number;
  readonly maxFlows?: number;
  readonly logger?: Logger;
  readonly logLevel?: LogLevel;
  readonly clock?: Clock;
}

export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({ level, base: { app: 'sluice' }, timestamp: pino.stdTimeFunctions.isoTime });
}

function memberLb(snapshot: RuntimeSnapshot, poolId: string): LoadBalancerSnapshot | undefined {
  return snapshot.loadBalancers.find((lb) => lb.pools.some((p) => p.id === poolId));
}

/** Builds a data plane other than the default proxy plane, once the engine exists. */
export interface PlaneFactory<P extends DataPlane> {
  /** Whether the engine must find flows from the backend's side too (packet plane). */
  readonly indexReplies: boolean;
  create(context: { readonly engine: FlowEngine; readonly clock: Clock; readonly log: Logger }): P;
}

export class SluiceApp<P extends DataPlane = ProxyPlane> {
  readonly clock: Clock;
  readonly engine: FlowEngine;
  readonly prober: Prober;
  readonly plane: P;
  readonly log: Logger;

  private constructor(snapshot: RuntimeSnapshot, options: AppOptions, factory?: PlaneFactory<P>) {
    this.log = options.logger ?? createLogger(options.logLevel);
    this.clock = options.clock ?? new SystemClock(options.timeScale ?? 1);
    this.engine = new FlowEngine({
      clock: this.clock,
      snapshot,
      indexReplies: factory?.indexReplies ?? false,
      // A probed member takes no new flows until its probe has answered once, as in Azure.
      initialHealth: 'down',
      ...(options.udpFlowTimeoutMs !== undefined ? { udpTimeoutMs: options.udpFlowTimeoutMs } : {}),
      ...(options.maxFlows !== undefined ? { maxFlows: options.maxFlows } : {}),
      events: (e) => this.onFlowEvent(e),
    });
    // Without a factory P is the default, ProxyPlane (see `start`).
    this.plane =
      factory?.create({ engine: this.engine, clock: this.clock, log: this.log }) ??
      (new ProxyPlane({
        engine: this.engine,
        clock: this.clock,
        holdMs: options.holdMs ?? DEFAULT_HOLD_MS,
        events: (e) => this.onProxyEvent(e),
      }) as unknown as P);
    this.prober = new Prober({ clock: this.clock, sink: (t) => this.onHealth(t) });
  }

  /** Starts serving `snapshot`; rejects (with nothing left open) when a listener cannot open. */
  static async start(snapshot: RuntimeSnapshot, options: AppOptions = {}): Promise<SluiceApp> {
    return SluiceApp.launch(new SluiceApp<ProxyPlane>(snapshot, options), snapshot);
  }

  /** As `start`, with the data plane `factory` builds. */
  static async startWith<P extends DataPlane>(
    snapshot: RuntimeSnapshot,
    options: AppOptions,
    factory: PlaneFactory<P>,
  ): Promise<SluiceApp<P>> {
    return SluiceApp.launch(new SluiceApp<P>(snapshot, options, factory), snapshot);
  }

  private static async launch<P extends DataPlane>(
    app: SluiceApp<P>,
    snapshot: RuntimeSnapshot,
  ): Promise<SluiceApp<P>> {
    try {
      await app.plane.apply(snapshot);
      app.prober.update(snapshot);
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
    // Standard keeps established flows on a member whose probe fails; Basic ends them.
    if (t.to === 'down' && t.from === 'up' && memberLb(this.engine.snapshot, t.poolId)?.sku === 'Basic') {
      const n = this.plane.endFlowsOfMember(t.memberId, 'reset');
      if (n > 0)
        this.log.info({ member: t.memberName, flows: n }, 'Basic SKU: flows of a down backend reset');
    }
  }

  private onFlowEvent(e: FlowEvent): void {
    switch (e.type) {
      case 'expired': {
        const f = e.flow;
        this.log.info(
          {
            flow: f.id,
            rule: f.ruleName,
            protocol: f.protocol,
            client: `${f.client.address}:${f.client.port}`,
            backend: `${f.backend.address}:${f.backend.port}`,
            idleMs: f.idleMs,
          },
          e.action === 'reset'
            ? 'idle timeout: TCP reset sent to client and backend'
            : 'idle timeout: flow dropped silently',
        );
        break;
      }
      case 'refused':
        this.log.warn(
          { reason: e.reason, protocol: e.protocol, client: `${e.client.address}:${e.client.port}` },
          'new flow refused',
        );
        break;
      case 'created':
      case 'closed':
        if (this.log.isLevelEnabled('debug'))
          this.log.debug({ flow: e.flow.id, event: e.type }, `flow ${e.type}`);
        break;
    }
  }

  private onProxyEvent(e: ProxyEvent): void {
    switch (e.type) {
      case 'listener-error':
        this.log.error({ rule: e.listener.ruleName, code: e.code }, e.message);
        break;
      case 'backend-unreachable':
        this.log.warn(
          { flow: e.flowId, backend: e.backend, code: e.code },
          'backend unreachable: client reset',
        );
        break;
      case 'hold-released':
        this.log.debug({ flow: e.flowId, reason: e.reason }, 'blackholed flow released');
        break;
      case 'idle-reset':
      case 'idle-drop':
        break;
    }
  }

  /** Stops probing and serving; every flow ends and every socket is released. */
  async stop(): Promise<void> {
    this.prober.stop();
    await this.plane.stop();
  }
}
