/** What the composition root needs of a data plane, whichever one runs. */
import type { ExpiryAction, FlowEngine } from '../core/engine.js';
import type { RuntimeSnapshot } from '../core/snapshot.js';

export interface DataPlane {
  /**
   * Serves `snapshot` (which the flow engine already holds): opens what it adds, closes what it
   * removes, ends the flows of removed rules. All or nothing: on failure nothing changed.
   */
  apply(snapshot: RuntimeSnapshot): Promise<void>;
  /** Ends a member's flows now; returns how many. */
  endFlowsOfMember(memberId: string, action: 'reset' | 'close'): number;
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
