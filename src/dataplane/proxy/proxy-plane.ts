/**
 * The proxy data plane: listeners on every frontend address and port of the snapshot, TCP and
 * UDP relays, and the timed work the app's scheduler runs when it is due (idle expiry, held
 * sockets let go, read buffers taken back from quiet streams). It reports
 * to injected sinks and never reaches into the control plane or metrics.
 */
import { SluiceError } from '../../core/errors.js';
import { UdpFlowBudget, type BudgetPlan } from '../../core/budget.js';
import type { Clock } from '../../core/clock.js';
import type { ExpiryAction, FlowEngine } from '../../core/engine.js';
import type { RuntimeSnapshot } from '../../core/snapshot.js';
import { endFlowsOfRemovedRules, type DataPlane } from '../plane.js';
import {
  emptyProxyStats,
  type ListenerRef,
  type ProxyEventSink,
  type ProxyStats,
  type TcpRelay,
} from './events.js';
import {
  closeListener,
  listenersOf,
  ListenError,
  openListener,
  type OpenListener,
  type TcpAcceptor,
} from './listeners.js';
import { HandleTcpProxy } from './handle-proxy.js';
import type { ReadBufferStats } from './read-buffers.js';
import { tcpHandles } from './tcp-handles.js';
import { TcpProxy } from './tcp-proxy.js';
import { UdpProxy } from './udp-proxy.js';

export interface ProxyPlaneOptions {
  readonly engine: FlowEngine;
  readonly clock: Clock;
  /** How long blackholed sockets are kept after a silent drop, in load-balancer time. */
  readonly holdMs: number;
  readonly events?: ProxyEventSink;
  /**
   * Load-balancer milliseconds between sweeps that take read buffers back from streams that
   * went quiet (a second of real time: 1000 x the time scale). Default 1000.
   */
  readonly sweepEveryMs?: number;
  /** Called when the plane adds timed work that may be due before the armed wake-up. */
  readonly wake?: () => void;
  /**
   * The flow shares of the process's descriptors (core/budget.ts): TCP flows, UDP flows, UDP
   * flows per client address. Unbounded when not given.
   */
  readonly budget?: Pick<BudgetPlan, 'tcpFlows' | 'udpFlows' | 'udpFlowsPerClient'>;
  /**
   * How TCP is relayed: on libuv's handles with reused read buffers (`handles`, the default
   * where Node hands them out) or through `net.Socket`s (`sockets`).
   */
  readonly tcpRelay?: TcpRelayKind;
}

export const DEFAULT_HOLD_MS = 15 * 60_000;

export type TcpRelayKind = 'handles' | 'sockets';

/** The TCP relay used when none is asked for. */
export const DEFAULT_TCP_RELAY: TcpRelayKind = tcpHandles !== undefined ? 'handles' : 'sockets';

export class ProxyPlane implements DataPlane {
  readonly stats: ProxyStats = emptyProxyStats();
  private readonly engine: FlowEngine;
  private readonly tcp: TcpRelay;
  private readonly acceptor: TcpAcceptor;
  /** Which TCP relay carries this plane's connections. */
  readonly tcpRelay: TcpRelayKind;
  private readonly udp: UdpProxy;
  private readonly listeners = new Map<string, OpenListener>();
  /** When the read buffers were last swept, in load-balancer time. */
  private sweptAt = -Infinity;
  private readonly onExpiry = (a: ExpiryAction): void => {
    if (a.protocol === 'Tcp') this.tcp.expire(a);
    else this.udp.expire(a);
  };

  /** TCP flows the plane will hold at most (undefined: not bounded). */
  readonly tcpCeiling: number | undefined;

  constructor(private readonly options: ProxyPlaneOptions) {
    this.engine = options.engine;
    this.tcpCeiling = options.budget?.tcpFlows;
    const relayOptions = {
      engine: options.engine,
      clock: options.clock,
      stats: this.stats,
      holdMs: options.holdMs,
      ...(options.events ? { events: options.events } : {}),
      ...(options.wake ? { wake: options.wake } : {}),
      ...(this.tcpCeiling !== undefined ? { maxFlows: this.tcpCeiling } : {}),
    };
    const onAcceptError = (err: NodeJS.ErrnoException, ref: ListenerRef): void =>
      this.listenerFailed(ref, err);
    this.tcpRelay = options.tcpRelay ?? DEFAULT_TCP_RELAY;
    if (this.tcpRelay === 'handles') {
      if (tcpHandles === undefined) {
        throw new SluiceError(
          'SLUICE_PLANE_UNAVAILABLE',
          "--tcp-relay handles: this Node does not hand out libuv's TCP handles",
        );
      }
      const relay = new HandleTcpProxy(relayOptions);
      this.tcp = relay;
      this.acceptor = {
        relay: 'handles',
        onConnection: (h, ref) => relay.accept(h, ref.address, ref.port),
        onAcceptError,
      };
    } else {
      const relay = new TcpProxy(relayOptions);
      this.tcp = relay;
      this.acceptor = {
        relay: 'sockets',
        onConnection: (socket, ref) => relay.accept(socket, ref.address, ref.port),
        onAcceptError,
      };
    }
    this.udp = new UdpProxy(
      options.engine,
      this.stats,
      new UdpFlowBudget({
        udpFlows: options.budget?.udpFlows,
        udpFlowsPerClient: options.budget?.udpFlowsPerClient,
      }),
      options.events,
    );
  }

  get activeTcpFlows(): number {
    return this.tcp.activeFlows;
  }

  get heldTcpFlows(): number {
    return this.tcp.heldFlows;
  }

  get activeUdpFlows(): number {
    return this.udp.activeFlows;
  }

  /** Addresses and ports being served, as `protocol|address|port`. */
  listening(): string[] {
    return [...this.listeners.keys()];
  }

  /**
   * Opens what `snapshot` needs and closes what it no longer does. All or nothing: when a
   * listener cannot open, those opened by this call are closed again and the error names the
   * rule and the address. The engine must already hold `snapshot`.
   */
  async apply(snapshot: RuntimeSnapshot): Promise<void> {
    const wanted = listenersOf(snapshot);
    const added: OpenListener[] = [];
    const results = await Promise.allSettled(
      [...wanted]
        .filter(([key]) => !this.listeners.has(key))
        .map(([, ref]) => openListener(ref, this.acceptor)),
    );
    let failure: ListenError | undefined;
    for (const r of results) {
      if (r.status === 'fulfilled') added.push(r.value);
      else failure ??= r.reason instanceof ListenError ? r.reason : undefined;
      if (r.status === 'rejected' && !(r.reason instanceof ListenError)) throw r.reason;
    }
    if (failure !== undefined) {
      this.stats.listenerErrors++;
      this.options.events?.({
        type: 'listener-error',
        listener: failure.ref,
        code: failure.errno,
        message: failure.message,
      });
      await Promise.all(added.map(closeListener));
      throw failure;
    }
    for (const l of added) this.attach(l);
    const removed = [...this.listeners].filter(([key]) => !wanted.has(key));
    for (const [key] of removed) this.listeners.delete(key);
    await Promise.all(removed.map(([, l]) => closeListener(l)));
    endFlowsOfRemovedRules(this.engine, this.onExpiry);
  }

  private attach(l: OpenListener): void {
    this.listeners.set(`${l.ref.protocol}|${l.ref.address}|${l.ref.port}`, l);
    if (l.kind === 'udp') {
      l.socket.on('error', (err: NodeJS.ErrnoException) => this.listenerFailed(l.ref, err));
      this.udp.frontend(l.socket, l.ref.address, l.ref.port);
    }
  }

  /** A listener's failure (EMFILE on accept when descriptors run out) costs one connection. */
  private listenerFailed(ref: ListenerRef, err: NodeJS.ErrnoException): void {
    this.stats.listenerErrors++;
    this.options.events?.({
      type: 'listener-error',
      listener: ref,
      code: err.code ?? 'ERROR',
      message: err.message,
    });
  }

  /** Ends the flows of a member now: `reset` (adminState Down, Basic SKU probe down) or a plain close. */
  endFlowsOfMember(memberId: string, action: 'reset' | 'close'): number {
    const ids = this.engine.flowsOfMember(memberId);
    for (const id of ids) {
      if (this.tcp.owns(id)) this.tcp.terminate(id, action, 'terminated');
      else this.udp.terminate(id);
    }
    return ids.length;
  }

  expireFlow(flowId: number): boolean {
    return this.engine.expireNow(flowId, this.onExpiry);
  }

  /** Resolves once every socket the plane began to close is closed. */
  settled(): Promise<void> {
    return this.tcp.settled();
  }

  /** TCP read buffers: allocated since start, free, and flows holding one of their own. */
  get readBuffers(): ReadBufferStats {
    return this.tcp.readBuffers;
  }

  /** When the plane next has timed work: an idle expiry, a hold's end, a read-buffer sweep. */
  nextDeadline(): number {
    const sweep =
      this.tcp.readBuffers.owningFlows > 0 ? this.sweptAt + (this.options.sweepEveryMs ?? 1000) : Infinity;
    return Math.min(this.engine.nextDeadline(), this.tcp.nextHoldEnd, sweep);
  }

  /** What is due at `now`: idle flows get their action, ended holds are let go, quiet streams give back their buffers. */
  runDue(now: number): void {
    this.engine.advance(this.onExpiry, now);
    this.tcp.releaseHolds(now);
    if (now >= this.sweptAt + (this.options.sweepEveryMs ?? 1000)) {
      this.sweptAt = now;
      this.sweepReadBuffers();
    }
  }

  /** Streams that read nothing since the last sweep go back to the shared read buffer. */
  sweepReadBuffers(): void {
    this.tcp.sweepReadBuffers();
  }

  /** Stops accepting, ends every flow, releases every socket. */
  async stop(): Promise<void> {
    await Promise.all(this.release());
  }

  /** The proxy plane changes nothing on the host: aborting is stopping without the wait. */
  abort(): void {
    for (const closing of this.release()) closing.catch(() => undefined);
  }

  /** Closes every listener and ends every flow; the listeners' closes are returned. */
  private release(): Promise<void>[] {
    const all = [...this.listeners.values()];
    this.listeners.clear();
    const closing = all.map(closeListener);
    this.tcp.closeAll();
    this.udp.closeAll();
    return closing;
  }
}
