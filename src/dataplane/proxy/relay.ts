/**
 * What both TCP relays (handle-proxy.ts on libuv handles, tcp-proxy.ts on `net.Socket`s) do the
 * same way: admitting a connection (descriptor ceiling, the engine's choice), the live and held
 * flows, idle expiry (reset both ends, or blackhole and hold), holds ending, termination and
 * shutdown. A relay supplies only the I/O: how one end is closed (with a RST or not) and how a
 * blackholed flow stops reading.
 */
import type { Clock } from '../../core/clock.js';
import type { ExpiryAction, FlowEngine, OpenResult } from '../../core/engine.js';
import type { CloseReason } from '../../core/events.js';
import type { ProxyEventSink, ProxyStats, TcpRelay } from './events.js';
import type { ReadBufferStats } from './read-buffers.js';

export const CLIENT = 0;
export const BACKEND = 1;
export type Side = typeof CLIENT | typeof BACKEND;

export function other(side: Side): Side {
  return side === CLIENT ? BACKEND : CLIENT;
}

export interface RelayOptions {
  readonly engine: FlowEngine;
  readonly clock: Clock;
  readonly stats: ProxyStats;
  readonly events?: ProxyEventSink;
  /** How long the ends of a silently dropped flow are kept, in load-balancer time. */
  readonly holdMs: number;
  /**
   * Live and held TCP flows at most (each holds two descriptors): the TCP share of the budget
   * (core/budget.ts); none when undefined. Counted from the relay's own flows and holds, which
   * are what holds the descriptors.
   */
  readonly maxFlows?: number;
  /** Called when the relay adds timed work (a hold, a first owned read buffer) that may be due
   * before the plane's armed wake-up. */
  readonly wake?: () => void;
}

/** The state of a relayed flow that the shared bookkeeping reads and sets. */
export interface RelayFlow {
  readonly id: number;
  readonly backendLabel: string;
  connected: boolean;
  /** Blackholed by a silent drop: nothing is relayed any more. */
  dropped: boolean;
  /** The engine has been told the flow ended (or ended it itself). */
  finished: boolean;
  holdUntil: number;
}

export abstract class RelayBase<F extends RelayFlow> implements TcpRelay {
  protected readonly engine: FlowEngine;
  protected readonly stats: ProxyStats;
  protected readonly flows = new Map<number, F>();
  /** Blackholed flows in order of their hold deadline (the hold is the same for all). */
  protected holds: F[] = [];
  /** Ends of flows this relay closed whose close has not completed yet. */
  private closing = 0;
  private settledWaiters: (() => void)[] = [];

  constructor(protected readonly options: RelayOptions) {
    this.engine = options.engine;
    this.stats = options.stats;
  }

  abstract get readBuffers(): ReadBufferStats;
  abstract sweepReadBuffers(): void;
  /** Ends one end of a flow: with a RST (`reset`) or a plain close. */
  protected abstract endSide(f: F, side: Side, reset: boolean): void;
  /** A blackholed flow reads nothing more from either end. */
  protected abstract stopReading(f: F): void;

  /** An end starts closing (with a RST or not); `closeDone` follows when it has. */
  protected closeStarted(): void {
    this.closing++;
  }

  protected closeDone(): void {
    this.closing--;
    if (this.closing > 0 || this.settledWaiters.length === 0) return;
    const waiters = this.settledWaiters;
    this.settledWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves once every end this relay has begun to close is closed: its RST or FIN is on the
   * wire and its descriptor given back. (The RST of a reset leaves with the close itself.)
   */
  settled(): Promise<void> {
    if (this.closing === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  get activeFlows(): number {
    return this.flows.size;
  }

  get heldFlows(): number {
    return this.holds.length;
  }

  /**
   * The engine's flow for a new client connection, or undefined when it is refused (no room
   * for its descriptors, or the engine has no backend for it): the caller then resets it.
   */
  protected admit(
    clientAddress: string,
    clientPort: number,
    frontendAddress: string,
    frontendPort: number,
  ): Extract<OpenResult, { ok: true }> | undefined {
    const ceiling = this.options.maxFlows;
    if (ceiling !== undefined && this.flows.size + this.holds.length >= ceiling) {
      this.stats.refused++;
      this.stats.refusedDescriptors++;
      this.stats.rstToClient++;
      this.options.events?.({
        type: 'share-full',
        reason: 'tcp-descriptors',
        client: `${clientAddress}:${clientPort}`,
        capacity: ceiling,
      });
      return undefined;
    }
    const open = this.engine.open('Tcp', clientAddress, clientPort, frontendAddress, frontendPort);
    if (!open.ok) {
      this.stats.refused++;
      this.stats.rstToClient++;
      return undefined;
    }
    this.stats.accepted++;
    return open;
  }

  /** `bytes` relayed one way: the flow is active, and the plane counts them. */
  relayed(f: F, fromClient: boolean, bytes: number): void {
    this.engine.activity(f.id, fromClient ? 'toBackend' : 'toClient', bytes);
    if (fromClient) this.stats.bytesToBackend += bytes;
    else this.stats.bytesToClient += bytes;
  }

  /** One end sent its FIN, which the relay passes on. */
  halfClosed(f: F, fromClient: boolean): void {
    if (!f.finished) this.engine.halfClose(f.id, fromClient ? 'toBackend' : 'toClient');
  }

  protected finish(f: F, reason: CloseReason): void {
    f.finished = true;
    this.flows.delete(f.id);
    this.engine.close(f.id, reason);
  }

  /** The backend could not be reached: the client gets a RST. */
  protected backendUnreachable(f: F, code: string): void {
    if (f.finished) return;
    this.stats.backendUnreachable++;
    this.options.events?.({ type: 'backend-unreachable', flowId: f.id, backend: f.backendLabel, code });
    this.finish(f, 'backend-unreachable');
    this.stats.rstToClient++;
    this.endSide(f, CLIENT, true);
    this.endSide(f, BACKEND, false);
  }

  /** One end failed (usually a RST from its endpoint): the other end gets a RST. */
  protected mirrorReset(f: F, failed: Side): void {
    this.finish(f, 'rst');
    const peer = other(failed);
    if (peer === CLIENT) this.stats.rstToClient++;
    else this.stats.rstToBackend++;
    this.endSide(f, peer, true);
    this.endSide(f, failed, false);
  }

  /** Carries out the engine's idle expiry for a TCP flow of this relay. */
  expire(a: ExpiryAction): void {
    const f = this.flows.get(a.flowId);
    if (f === undefined) return;
    f.finished = true;
    this.flows.delete(f.id);
    const client = `${a.key.srcIp}:${a.key.srcPort}`;
    if (a.action === 'reset') {
      this.stats.idleResets++;
      this.resetBoth(f);
      this.options.events?.({ type: 'idle-reset', flowId: f.id, client, backend: f.backendLabel });
    } else {
      this.stats.idleDrops++;
      f.dropped = true;
      this.stats.blackholed++;
      this.stopReading(f);
      f.holdUntil = this.options.clock.now() + this.options.holdMs;
      this.holds.push(f);
      if (this.holds.length === 1) this.options.wake?.();
      this.options.events?.({ type: 'idle-drop', flowId: f.id, client, backend: f.backendLabel });
    }
  }

  private resetBoth(f: F): void {
    this.stats.rstToClient++;
    this.endSide(f, CLIENT, true);
    if (f.connected) this.stats.rstToBackend++;
    this.endSide(f, BACKEND, f.connected);
  }

  protected closeBoth(f: F): void {
    this.endSide(f, CLIENT, false);
    this.endSide(f, BACKEND, false);
  }

  /** When the first hold ends (Infinity: none). */
  get nextHoldEnd(): number {
    return this.holds.length === 0 ? Infinity : this.holds[0]!.holdUntil;
  }

  /** Lets go of blackholed flows whose hold has ended. */
  releaseHolds(now: number): void {
    let i = 0;
    while (i < this.holds.length && this.holds[i]!.holdUntil <= now) {
      const f = this.holds[i]!;
      this.options.events?.({ type: 'hold-released', flowId: f.id, reason: 'hold-ended' });
      this.closeBoth(f);
      i++;
    }
    if (i > 0) this.holds = this.holds.slice(i);
  }

  /** Ends a live flow now (adminState Down, member removed, shutdown). */
  terminate(flowId: number, action: 'reset' | 'close', reason: CloseReason): void {
    const f = this.flows.get(flowId);
    if (f === undefined) return;
    this.finish(f, reason);
    if (action === 'reset') this.resetBoth(f);
    else this.closeBoth(f);
  }

  flowIds(): number[] {
    return [...this.flows.keys()];
  }

  owns(flowId: number): boolean {
    return this.flows.has(flowId);
  }

  /** Closes both ends of every flow: live flows with a FIN, held ones too. */
  closeAll(): void {
    for (const id of this.flowIds()) this.terminate(id, 'close', 'shutdown');
    for (const f of this.holds) this.closeBoth(f);
    this.holds = [];
  }
}
