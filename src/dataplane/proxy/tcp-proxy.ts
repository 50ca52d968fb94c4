/**
 * TCP through `net.Socket`s: the relay where Node does not hand out libuv's TCP handles
 * (handle-proxy.ts is the default), and with `--tcp-relay sockets`. The flow engine decides (backend, idle expiry); this file
 * moves bytes and turns the engine's decisions into what endpoints can observe:
 * - reset: `resetAndDestroy()` on both sockets, so both endpoints get ECONNRESET (B4);
 * - drop: both sockets are paused and kept, unread and unwritten, so neither endpoint hears
 *   a FIN or a RST (B3); they are let go after a hold, or when an endpoint goes away.
 *
 * Handlers are shared functions that find their flow through a symbol on the socket:
 * no closures per connection, which is where Node's connection set-up time goes.
 */
import { Socket } from 'node:net';
import type { Clock } from '../../core/clock.js';
import type { ExpiryAction, FlowEngine } from '../../core/engine.js';
import type { CloseReason } from '../../core/events.js';
import type { ProxyEventSink, ProxyStats, TcpRelay } from './events.js';
import { NO_READ_BUFFERS, type ReadBufferStats } from './read-buffers.js';

const FLOW = Symbol('sluice.flow');
const SIDE = Symbol('sluice.side');
const CLIENT = 0;
const BACKEND = 1;

interface FlowSocket extends Socket {
  [FLOW]?: TcpFlow;
  [SIDE]?: typeof CLIENT | typeof BACKEND;
}

class TcpFlow {
  connected = false;
  /** Blackholed by a silent drop: nothing is relayed any more. */
  dropped = false;
  /** The engine has been told the flow ended (or ended it itself). */
  finished = false;
  holdUntil = 0;
  closed = 0;

  constructor(
    readonly proxy: TcpProxy,
    readonly id: number,
    readonly client: FlowSocket,
    readonly backend: FlowSocket,
    readonly backendLabel: string,
  ) {}

  peer(s: FlowSocket): FlowSocket {
    return s === this.client ? this.backend : this.client;
  }
}

function onData(this: FlowSocket, chunk: Buffer): void {
  const f = this[FLOW]!;
  if (f.dropped) return;
  f.proxy.relayed(f, this[SIDE] === CLIENT, chunk.length);
  if (!f.peer(this).write(chunk)) this.pause();
}

function onDrain(this: FlowSocket): void {
  const f = this[FLOW]!;
  if (!f.dropped) f.peer(this).resume();
}

function onEnd(this: FlowSocket): void {
  const f = this[FLOW]!;
  if (f.dropped) return;
  // A FIN is passed on as a FIN: the other side may keep sending (half-close).
  f.proxy.halfClosed(f, this[SIDE] === CLIENT);
  const peer = f.peer(this);
  if (this[SIDE] === CLIENT && !f.connected) peer.destroy();
  else peer.end();
}

function onError(this: FlowSocket, err: NodeJS.ErrnoException): void {
  const f = this[FLOW]!;
  if (this[SIDE] === BACKEND && !f.connected) {
    f.proxy.backendFailed(f, err);
    return;
  }
  f.proxy.socketFailed(f, this);
}

function onClose(this: FlowSocket): void {
  const f = this[FLOW]!;
  f.closed++;
  f.proxy.socketClosed(f, this);
}

function onBackendConnect(this: FlowSocket): void {
  const f = this[FLOW]!;
  f.connected = true;
  if (!f.dropped && !f.finished) f.client.resume();
}

export interface TcpProxyOptions {
  readonly engine: FlowEngine;
  readonly clock: Clock;
  readonly stats: ProxyStats;
  readonly events?: ProxyEventSink;
  /** How long blackholed sockets are kept after a silent drop, in load-balancer time. */
  readonly holdMs: number;
  /** Live and held TCP flows at most (each holds two descriptors); none when undefined. */
  readonly maxFlows?: number;
}

export class TcpProxy implements TcpRelay {
  private readonly engine: FlowEngine;
  private readonly flows = new Map<number, TcpFlow>();
  /** Blackholed flows in order of their hold deadline (the hold is the same for all). */
  private holds: TcpFlow[] = [];
  private readonly stats: ProxyStats;

  constructor(private readonly options: TcpProxyOptions) {
    this.engine = options.engine;
    this.stats = options.stats;
  }

  get activeFlows(): number {
    return this.flows.size;
  }

  get heldFlows(): number {
    return this.holds.length;
  }

  /** Node allocates this relay's read buffers itself. */
  get readBuffers(): ReadBufferStats {
    return NO_READ_BUFFERS;
  }

  sweepReadBuffers(): void {}

  /**
   * An accepted client connection, paused (the server is created with pauseOnConnect). The
   * listener's own address and port are passed in: asking the socket costs a system call.
   */
  accept(client: FlowSocket, frontendAddress: string, frontendPort: number): void {
    const { remoteAddress, remotePort } = client;
    client.on('error', noop);
    if (remoteAddress === undefined) {
      // The client was gone before it could be handled.
      client.destroy();
      return;
    }
    const ceiling = this.options.maxFlows;
    if (ceiling !== undefined && this.flows.size + this.holds.length >= ceiling) {
      this.stats.refused++;
      this.stats.refusedDescriptors++;
      this.stats.rstToClient++;
      this.options.events?.({
        type: 'descriptors-exhausted',
        client: `${remoteAddress}:${remotePort ?? 0}`,
        ceiling,
      });
      client.resetAndDestroy();
      return;
    }
    const open = this.engine.open('Tcp', remoteAddress, remotePort ?? 0, frontendAddress, frontendPort);
    if (!open.ok) {
      this.stats.refused++;
      this.stats.rstToClient++;
      client.resetAndDestroy();
      return;
    }
    client.off('error', noop);
    this.stats.accepted++;
    client.setNoDelay(true);
    const backend: FlowSocket = new Socket({ allowHalfOpen: true });
    const flow = new TcpFlow(
      this,
      open.flowId,
      client,
      backend,
      `${open.backendAddress}:${open.backendPort}`,
    );
    this.flows.set(open.flowId, flow);
    for (const [s, side] of [
      [client, CLIENT],
      [backend, BACKEND],
    ] as const) {
      s[FLOW] = flow;
      s[SIDE] = side;
      s.on('data', onData);
      s.on('drain', onDrain);
      s.on('end', onEnd);
      s.on('error', onError);
      s.on('close', onClose);
    }
    backend.once('connect', onBackendConnect);
    backend.setNoDelay(true);
    backend.connect(open.backendPort, open.backendAddress);
  }

  relayed(f: TcpFlow, fromClient: boolean, bytes: number): void {
    this.engine.activity(f.id, fromClient ? 'toBackend' : 'toClient', bytes);
    if (fromClient) this.stats.bytesToBackend += bytes;
    else this.stats.bytesToClient += bytes;
  }

  halfClosed(f: TcpFlow, fromClient: boolean): void {
    if (!f.finished) this.engine.halfClose(f.id, fromClient ? 'toBackend' : 'toClient');
  }

  backendFailed(f: TcpFlow, err: NodeJS.ErrnoException): void {
    if (f.finished) return;
    this.stats.backendUnreachable++;
    this.options.events?.({
      type: 'backend-unreachable',
      flowId: f.id,
      backend: f.backendLabel,
      code: err.code ?? err.message,
    });
    this.finish(f, 'backend-unreachable');
    this.stats.rstToClient++;
    f.client.resetAndDestroy();
  }

  /** A socket failed (usually a RST from its endpoint): the other endpoint gets a RST too. */
  socketFailed(f: TcpFlow, s: FlowSocket): void {
    if (f.dropped) {
      // An endpoint of a blackholed flow went away; the other one still hears nothing.
      s.destroy();
      return;
    }
    if (f.finished) return;
    this.finish(f, 'rst');
    const peer = f.peer(s);
    if (peer === f.client) this.stats.rstToClient++;
    else this.stats.rstToBackend++;
    peer.resetAndDestroy();
    s.destroy();
  }

  socketClosed(f: TcpFlow, s: FlowSocket): void {
    if (f.dropped) {
      if (f.closed === 1) {
        this.options.events?.({ type: 'hold-released', flowId: f.id, reason: 'endpoint-closed' });
      }
      if (f.closed === 2) this.holds = this.holds.filter((x) => x !== f);
      return;
    }
    if (f.closed === 2 && !f.finished) this.finish(f, 'fin');
    else if (!f.finished && s === f.backend && !f.connected) this.finish(f, 'backend-unreachable');
  }

  private finish(f: TcpFlow, reason: CloseReason): void {
    f.finished = true;
    this.flows.delete(f.id);
    this.engine.close(f.id, reason);
  }

  /** Carries out the engine's idle expiry for a TCP flow of this proxy. */
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
      this.blackhole(f);
      this.options.events?.({ type: 'idle-drop', flowId: f.id, client, backend: f.backendLabel });
    }
  }

  private resetBoth(f: TcpFlow): void {
    this.stats.rstToClient++;
    f.client.resetAndDestroy();
    if (f.connected) {
      this.stats.rstToBackend++;
      f.backend.resetAndDestroy();
    } else {
      f.backend.destroy();
    }
  }

  private blackhole(f: TcpFlow): void {
    f.dropped = true;
    this.stats.blackholed++;
    f.client.pause();
    f.backend.pause();
    f.holdUntil = this.options.clock.now() + this.options.holdMs;
    this.holds.push(f);
  }

  /** Lets go of blackholed sockets whose hold has ended. */
  releaseHolds(now: number): void {
    let i = 0;
    while (i < this.holds.length && this.holds[i]!.holdUntil <= now) {
      const f = this.holds[i]!;
      this.options.events?.({ type: 'hold-released', flowId: f.id, reason: 'hold-ended' });
      f.client.destroy();
      f.backend.destroy();
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
    else {
      f.client.destroy();
      f.backend.destroy();
    }
  }

  flowIds(): number[] {
    return [...this.flows.keys()];
  }

  owns(flowId: number): boolean {
    return this.flows.has(flowId);
  }

  /** Closes every socket: live flows with a FIN, held ones too. */
  closeAll(): void {
    for (const id of this.flowIds()) this.terminate(id, 'close', 'shutdown');
    for (const f of this.holds) {
      f.client.destroy();
      f.backend.destroy();
    }
    this.holds = [];
  }
}

function noop(): void {}
