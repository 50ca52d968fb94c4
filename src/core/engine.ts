/**
 * The flow engine both data planes share, so idle timeout, reset and drop (B1-B8) behave the
 * same in each. A facade over its parts, each with one job:
 *
 * - engine-paths.ts: what each rule and outbound path decides (timeout, reset at idle and after);
 * - engine-members.ts: members, their health and admin state, the Maglev pick;
 * - engine-records.ts: a record's creation (or refusal), refresh and end;
 * - engine-expiry.ts: the idle timeout and the tombstones of B6;
 * - engine-classifier.ts: packet level (`tcp`, `udp`), the packet plane's entry: every parsed
 *   segment or datagram gets a verdict (forward, drop, answer with a RST);
 * - engine-connections.ts: connection level (`open`, `activity`, `halfClose`, `close`), the
 *   proxy plane's entry, which sees sockets and bytes rather than segments;
 * - engine-views.ts: where a flow goes (verdicts, expiries) and how it is shown (FlowInfo);
 * - engine-pool.ts: one instance of a pool behind ECMP: the adoption window after a change of
 *   the pool, the grace for late news of a change, asking the pool before an idle end.
 *
 * Either way, `advance` ends the flows whose idle timeout passed, each with its action:
 * `reset` (with the sequence numbers for both RSTs) or `drop`. Nothing here owns a timer:
 * `nextDeadline()` tells the caller when to call again.
 */
import type { Clock } from './clock.js';
import { Classifier } from './engine-classifier.js';
import { Connections, type OpenResult } from './engine-connections.js';
import { Expiry } from './engine-expiry.js';
import { carriesRather } from './engine-pool.js';
import { Records } from './engine-records.js';
import { EngineState, type FlowEngineOptions } from './engine-state.js';
import {
  Views,
  type Direction,
  type ExpiryAction,
  type PacketVerdict,
  type TombstoneInfo,
} from './engine-views.js';
import type { CloseReason, EngineStats, FlowInfo, IdleAction } from './events.js';
import type { FlowKey } from './flow-key.js';
import { DIR_ORIG } from './flow-table.js';
import type { AdminState, InboundRule, Protocol, RuntimeSnapshot } from './snapshot.js';
import type { SnatUsage } from './snat-alloc.js';
import type { TcpSegment } from './tcp-state.js';
import { ST_TOMBSTONE } from './tcp-state.js';

export { DEFAULT_LINGER_MS, DEFAULT_TOMBSTONE_TTL_MS, DEFAULT_UDP_TIMEOUT_MS } from './engine-state.js';
export type { FlowEngineOptions } from './engine-state.js';
export type { PoolOptions, PoolQuestion } from './engine-pool.js';
export type { OpenResult } from './engine-connections.js';
export {
  ExpiryAction,
  FlowPlace,
  PacketVerdict,
  type Direction,
  type TombstoneInfo,
} from './engine-views.js';

export class FlowEngine {
  readonly clock: Clock;
  private readonly s: EngineState;
  private readonly views: Views;
  private readonly records: Records;
  private readonly expiry: Expiry;
  private readonly classifier: Classifier;
  private readonly connections: Connections;

  constructor(options: FlowEngineOptions) {
    this.clock = options.clock;
    this.s = new EngineState(options);
    this.views = new Views(this.s);
    this.records = new Records(this.s, this.views);
    this.expiry = new Expiry(this.s, this.records, this.views);
    this.classifier = new Classifier(this.s, this.records, this.views);
    this.connections = new Connections(this.s, this.records);
    if (options.snapshot !== undefined) this.setSnapshot(options.snapshot);
  }

  // ---- configuration and health -------------------------------------------------------

  /**
   * Swaps in a new configuration at once. Flows of rules that still exist (same id) go on
   * under the rule's new settings, except the idle timeout: a flow keeps the one in force at
   * its last packet until its next packet (either direction), so a swap moves no deadline.
   * Flows of removed rules go on until they end, and `flowsOfRemovedRules()` lists them for
   * the caller to end as it sees fit.
   */
  setSnapshot(snapshot: RuntimeSnapshot): void {
    const members = this.s.members;
    this.s.paths.update(snapshot, (m) => members.indexOf(m));
    this.s.snat.layout(snapshot);
    members.invalidate();
  }

  get snapshot(): RuntimeSnapshot {
    return this.s.paths.rules.snapshot;
  }

  /** Records a probe result for a member (per probe: rules with different probes differ). */
  setHealth(memberId: string, healthy: boolean, probeId?: string): void {
    this.s.members.setHealth(memberId, healthy, probeId);
  }

  /** Overrides a member's adminState at run time (`undefined` restores the configured one). */
  setAdminState(memberId: string, state: AdminState | undefined): void {
    this.s.members.setAdminState(memberId, state);
  }

  /**
   * Whether a new flow of `rule` would find a member now (the members eligible by health and
   * admin state, as a new flow's pick sees them): what an instance announcing its frontends by
   * BGP asks before it attracts traffic to one.
   */
  canServe(rule: InboundRule): boolean {
    const members = this.s.members;
    if (rule.kind === 'inboundNatRule')
      return rule.mappings.some((m) => members.adminState(m.member) !== 'Down');
    return members.eligibleCount(rule.pool, rule.probe) > 0;
  }

  /**
   * Whether every member of `rule` has had a probe result (or needs none). An instance of a pool
   * waits for it before it attracts traffic: a pick made from partial health could differ from
   * that of the instance the flow comes from, and an adopted flow would reach another member.
   */
  healthKnown(rule: InboundRule): boolean {
    return rule.kind === 'inboundNatRule' || this.s.members.allProbed(rule.pool, rule.probe);
  }

  // ---- pool of instances -------------------------------------------------------------------

  /** Whether the engine runs as one instance of a pool (the `pool` option). */
  get inPool(): boolean {
    return this.s.pool !== undefined;
  }

  /**
   * The pool of instances behind `frontend` (every frontend, when not given) changed at `at`
   * (load-balancer time): a window opens in which flows the router moves here are adopted
   * (engine-pool.ts). Ignored outside a pool.
   */
  poolChanged(at: number, frontend?: string): void {
    this.s.pool?.changed(at, frontend);
  }

  /** When the pool behind `frontend` last changed, as the engine was told; -Infinity when never. */
  poolLastChange(frontend: string): number {
    return this.s.pool?.lastChange(frontend) ?? -Infinity;
  }

  /**
   * The pool's answer about a flow the engine asked it about at its idle timeout (the `ask`
   * hook): `carried` by another instance, the flow is retired silently (closed, `moved`);
   * otherwise it ends now as its idle timeout says, `onAction` receiving the action as from
   * `advance`. False when the flow no longer waits for an answer.
   */
  settleAsk(flowId: number, carried: boolean, onAction?: (a: ExpiryAction) => void): boolean {
    const slot = this.liveSlot(flowId);
    return slot >= 0 && this.expiry.settleAsk(slot, carried, onAction);
  }

  /**
   * Another instance asks whether this one carries the flow `key` (client to frontend), which
   * has been idle there for `theirIdleMs`: yes when a live record here saw a packet more
   * recently, or as recently and `winsTie`.
   */
  carries(key: FlowKey, theirIdleMs: number, winsTie: boolean): boolean {
    const t = this.s.table;
    const e = t.find(key.words, 0);
    if (e === -1 || (e & 1) !== DIR_ORIG) return false;
    const slot = e >> 1;
    if (t.state(slot) === ST_TOMBSTONE) return false;
    return carriesRather(this.clock.now() - t.lastSeen(slot), theirIdleMs, winsTie);
  }

  // ---- packet level ----------------------------------------------------------------------

  /**
   * One TCP segment, with `key` as on the wire: client to frontend, or backend to client
   * (the reply tuple). The returned verdict is reused by the next call.
   */
  tcp(key: FlowKey, seg: TcpSegment): PacketVerdict {
    return this.classifier.tcp(key, seg);
  }

  /** One UDP datagram, `key` as on the wire. A datagram to a rule with no flow starts one. */
  udp(key: FlowKey, payloadLength: number): PacketVerdict {
    return this.classifier.udp(key, payloadLength);
  }

  // ---- connection level ------------------------------------------------------------------

  /** A connection the proxy accepted (TCP) or a first datagram from a client (UDP). */
  open(
    protocol: Protocol,
    clientIp: string,
    clientPort: number,
    frontendIp: string,
    frontendPort: number,
  ): OpenResult {
    return this.connections.open(protocol, clientIp, clientPort, frontendIp, frontendPort);
  }

  /** Bytes relayed on a flow: refreshes its idle timer (B7). False when the flow is gone. */
  activity(flowId: number, direction: Direction, bytes: number): boolean {
    return this.connections.activity(flowId, direction, bytes);
  }

  /** A FIN from one side (`toBackend`: the client half-closed); at idle it is then dropped (B5). */
  halfClose(flowId: number, direction: Direction): boolean {
    return this.connections.halfClose(flowId, direction);
  }

  /** The flow ended (both sides closed, a reset, an unreachable backend...): forget it. */
  close(flowId: number, reason: CloseReason): boolean {
    return this.connections.close(flowId, reason);
  }

  /**
   * Ends a live flow now as if its idle timeout had passed with `action` (adminState Down,
   * drain end, removed rule). `reset` is honoured only for TCP; `onAction` receives the
   * action as from `advance`.
   */
  terminate(flowId: number, action: IdleAction, onAction?: (a: ExpiryAction) => void): boolean {
    const slot = this.liveSlot(flowId);
    if (slot < 0) return false;
    this.expiry.terminate(slot, action === 'reset', onAction);
    return true;
  }

  /**
   * Ends a live flow now exactly as its idle timeout would (B3-B5, B8): a RST both ways only for
   * an ESTABLISHED TCP flow of a path with TCP reset, else silently; then a tombstone (B6).
   * `onAction` receives the action as from `advance`. False when there is no such live flow.
   */
  expireNow(flowId: number, onAction?: (a: ExpiryAction) => void): boolean {
    const slot = this.liveSlot(flowId);
    if (slot < 0) return false;
    this.expiry.expireNow(slot, onAction);
    return true;
  }

  // ---- time --------------------------------------------------------------------------------

  /**
   * Expires every flow whose time has come, calling `onAction` for each idle expiry (not for
   * lingering closed flows or tombstones, which go quietly). Returns the number of entries
   * the timing wheel examined.
   */
  advance(onAction?: (a: ExpiryAction) => void, now = this.clock.now()): number {
    return this.expiry.advance(onAction, now);
  }

  /** When `advance` next has work (a lower bound; Infinity when there are no flows). */
  nextDeadline(): number {
    return this.s.wheel.nextWakeMs();
  }

  /**
   * A caller that will `advance` at `ms` is told through `sooner` when a flow is scheduled to
   * be due before then (a new flow, a close that starts a linger, a shorter timeout), so it can
   * wake sooner. The engine still owns no timer.
   */
  watchDeadline(ms: number, sooner: (ms: number) => void): void {
    this.s.wheel.watch(ms, sooner);
  }

  // ---- inspection -------------------------------------------------------------------------

  get flowCount(): number {
    return this.s.live;
  }

  get tombstoneCount(): number {
    return this.s.tombstones;
  }

  stats(): EngineStats {
    const s = this.s.stats;
    return { ...s, closed: { ...s.closed }, refused: { ...s.refused } };
  }

  /** SNAT ports of the outbound paths: allocated, and held by live outbound flows. */
  snatUsage(): SnatUsage[] {
    return this.s.snat.usage();
  }

  /** Bytes held by the flow table's arrays. */
  tableBytes(): number {
    return this.s.table.byteSize();
  }

  flow(flowId: number): FlowInfo | undefined {
    const slot = this.liveSlot(flowId);
    return slot < 0 ? undefined : this.views.info(slot, this.clock.now());
  }

  /** Live flows (not tombstones). */
  flows(): FlowInfo[] {
    return this.views.flows(this.clock.now());
  }

  /** Expired flows still remembered (B6), the most recently expired first, at most `limit`. */
  tombstones(limit = Infinity): TombstoneInfo[] {
    return this.views.tombstones(this.clock.now(), limit);
  }

  /** Ids of live flows whose backend is this member. */
  flowsOfMember(memberId: string): number[] {
    const s = this.s;
    return this.views.liveIds(
      (slot) => s.pathOf(slot).rule !== null && s.members.member(s.table.memberOf(slot)).id === memberId,
    );
  }

  /** Ids of live flows whose rule or outbound path is no longer in the configuration. */
  flowsOfRemovedRules(): number[] {
    return this.views.liveIds((slot) => this.s.pathOf(slot).removed);
  }

  /** The rule a live inbound flow belongs to, as it was configured even if it has since been removed. */
  ruleOf(flowId: number): InboundRule | undefined {
    const slot = this.liveSlot(flowId);
    return slot < 0 ? undefined : (this.s.pathOf(slot).rule ?? undefined);
  }

  /**
   * What a live flow's rule or outbound path (as configured, even if since removed) does at idle:
   * `reset` when it has TCP reset on (never through a NAT gateway), else `drop`.
   */
  idleActionOf(flowId: number): IdleAction | undefined {
    const slot = this.liveSlot(flowId);
    if (slot < 0) return undefined;
    return this.s.pathOf(slot).resetAtIdle ? 'reset' : 'drop';
  }

  /** Finds a flow (or tombstone) id from a tuple as on the wire, with its direction. */
  lookup(key: FlowKey): { flowId: number; direction: Direction; tombstone: boolean } | undefined {
    const t = this.s.table;
    const e = t.find(key.words, 0);
    if (e === -1) return undefined;
    const slot = e >> 1;
    return {
      flowId: t.idOf(slot),
      direction: (e & 1) === DIR_ORIG ? 'toBackend' : 'toClient',
      tombstone: t.state(slot) === ST_TOMBSTONE,
    };
  }

  /** The slot of a live flow (not a tombstone), or -1. */
  private liveSlot(flowId: number): number {
    const slot = this.s.table.slotOf(flowId);
    return slot < 0 || this.s.table.state(slot) === ST_TOMBSTONE ? -1 : slot;
  }
}
