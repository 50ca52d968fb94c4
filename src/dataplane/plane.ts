/**
 * What a data plane is to the rest of Sluice. A plane is a module (DataPlaneModule) found by
 * name in registry.ts: it says what of a configuration it cannot serve, why it cannot run on a
 * host, and creates the running plane (DataPlane), whose events it logs itself. The composition
 * root and the commands know the module interface and the registry, never a plane.
 */
import type { Logger } from 'pino';
import type { BudgetPlan, FlowShareRefusal } from '../core/budget.js';
import type { Clock } from '../core/clock.js';
import type { ExpiryAction, FlowEngine } from '../core/engine.js';
import type { RuntimeSnapshot } from '../core/snapshot.js';

/**
 * The settings `sluice run` and `sluice demo` give a plane; each plane reads its own and
 * ignores the others.
 */
export interface PlaneSettings {
  /** Proxy plane: how long the sockets of a silently dropped flow are held (load-balancer ms). */
  readonly holdMs?: number;
  /** Proxy plane: TCP relayed on libuv's handles or through `net.Socket`s. */
  readonly tcpRelay?: 'handles' | 'sockets';
  /** Packet plane: the TUN device's name. */
  readonly tun?: string;
  /** Packet plane: set ip_forward and rp_filter instead of refusing to start. */
  readonly configureHost?: boolean;
  /** Packet plane: microseconds the TUN reader busy-polls after each batch (0: off). */
  readonly busyPollMicros?: number;
  /** Packet plane: full NAT, backends see clients from this address. */
  readonly inboundSnat?: string;
  /** Proxy plane: the ports an instance-level public IP serves (it forwards every port in Azure). */
  readonly instancePorts?: readonly number[];
}

/** What the composition root hands a plane it creates. */
export interface PlaneContext {
  readonly engine: FlowEngine;
  readonly clock: Clock;
  readonly log: Logger;
  /** Load-balancer milliseconds per real millisecond (`--time-scale`). */
  readonly timeScale: number;
  /** The shares of the process's descriptors (flows' shares apply where flows hold descriptors). */
  readonly budget: BudgetPlan;
  /** To call when the plane adds timed work that may be due before the armed wake-up. */
  readonly wake: () => void;
  /** Logs a refusal at most once a second per cause, with the count since: a flood logs one line a second. */
  readonly logRefusal: (
    cause: string,
    level: 'warn' | 'error',
    msg: string,
    fields?: Record<string, unknown>,
  ) => void;
  /** Counts a new flow refused because its share of the descriptors is full. */
  readonly shareRefused: (reason: FlowShareRefusal) => void;
}

export interface DataPlaneModule<P extends DataPlane = DataPlane> {
  /** As `--dataplane` names it. */
  readonly name: string;
  /** One line for `--help`. */
  readonly summary: string;
  /** Every flow holds descriptors of the process, so the budget's flow shares bound it. */
  readonly flowsHoldDescriptors: boolean;
  /** The engine must find flows from the backend's side too (a plane that sees packets). */
  readonly indexReplies: boolean;
  /** What of `snapshot` this plane cannot serve, one line each, saying what to do instead. */
  unsupported(snapshot: RuntimeSnapshot): string[];
  /**
   * What of `snapshot` this plane serves when it is not told to refuse the rest (`--strict`):
   * the snapshot it can serve, and one warning for each item it leaves out or serves otherwise.
   * A plane without it refuses what it cannot serve.
   */
  partial?(snapshot: RuntimeSnapshot): { readonly snapshot: RuntimeSnapshot; readonly warnings: string[] };
  /** The snapshot as this plane serves it with `settings`, before it is judged (`unsupported`, `partial`). */
  adapt?(snapshot: RuntimeSnapshot, settings: PlaneSettings): RuntimeSnapshot;
  /** Why this plane cannot run here with `settings`, or undefined when it can. */
  unavailable(settings: PlaneSettings): string | undefined;
  /** The running plane; it serves nothing until its first `apply`. */
  create(context: PlaneContext, settings: PlaneSettings): P;
  /** What the `ready` log line says of a running plane of this kind. */
  readyFields(plane: P): Record<string, unknown>;
}

export interface DataPlane {
  /**
   * Serves `snapshot` (which the flow engine already holds): opens what it adds, closes what it
   * removes, ends the flows of removed rules. All or nothing: on failure nothing changed.
   */
  apply(snapshot: RuntimeSnapshot): Promise<void>;
  /** Ends a member's flows now; returns how many. */
  endFlowsOfMember(memberId: string, action: 'reset' | 'close'): number;
  /**
   * Ends one live flow now as its idle timeout would (`FlowEngine.expireNow`): reset both ways or
   * dropped silently. False when there is no such live flow.
   */
  expireFlow(flowId: number): boolean;
  /**
   * Resolves once what the plane has begun to end is done (sockets closed). A plane whose ends
   * are done when its calls return has none.
   */
  settled?(): Promise<void>;
  /** What is being served, one entry per protocol, address and port (or range). */
  listening(): string[];
  /** Stops serving; every flow ends and every resource is released. */
  stop(): Promise<void>;
  /**
   * Stops at once and synchronously (a second signal during shutdown): what the plane changed on
   * the host is taken back before this returns; flows are cut without their graceful end.
   * Safe to call after, or while, `stop` runs.
   */
  abort(): void;
  /**
   * When the plane next has timed work (its flows' idle expiries, its own deadlines), in
   * load-balancer time; Infinity when it has none. The app's one scheduler arms for it.
   */
  nextDeadline(): number;
  /** Does the timed work due at `now`. */
  runDue(now: number): void;
  /** Packets dropped by reason, for a plane that sees packets. */
  packetDrops?(): Readonly<Record<string, number>>;
  /**
   * Packets received so far, for a plane that sees packets: a graceful stop of an instance of a
   * pool serves on until they stop coming (the router has moved the traffic away).
   */
  packetsIn?(): number;
  /**
   * The pool's answer about a flow the engine asked it about at its idle timeout
   * (`FlowEngine.settleAsk`): carried by another instance, it is retired silently; otherwise it
   * ends now, its RSTs written before this returns. False when the flow waits for no answer.
   */
  settleAsk?(flowId: number, carried: boolean): boolean;
  /**
   * Why the plane cannot carry traffic now (its device is gone or down, its reads keep failing),
   * or undefined while it can. Whoever attracts traffic to it (BGP announcement) asks this.
   */
  failure?(): string | undefined;
}

/**
 * Ends the flows of rules and outbound paths a new configuration removed, each as its own rule
 * would at idle: reset when that rule had TCP reset on, silently dropped otherwise (always
 * dropped through a NAT gateway).
 */
export function endFlowsOfRemovedRules(engine: FlowEngine, onExpiry: (a: ExpiryAction) => void): void {
  for (const id of engine.flowsOfRemovedRules()) {
    engine.terminate(id, engine.idleActionOf(id) ?? 'drop', onExpiry);
  }
}
