/**
 * TCP through user-space sockets. The flow engine decides (backend, idle expiry); this file
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
import type { ProxyEventSink, ProxyStats } from './events.js';
import {
  OWN_AT_BYTES,
  ReadBufferPool,
  readNextInto,
  swapReadBuffer,
  userReadSocketOptions,
  useUserReads,
} from './read-buffers.js';

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
  /** Sockets read into relay-provided buffers (read-buffers.ts), not Node's own. */
  userReads = false;
  /** Per side (CLIENT, BACKEND): the buffer its next read goes into. */
  readBuf: [Buffer | undefined, Buffer | undefined] = [undefined, undefined];
  /** Per side: its owned buffer is still referenced by a queued write to the other side. */
  lent: [boolean, boolean] = [false, false];
  /** Per side: reads into an owned buffer since the last sweep. */
  ownedReads: [number, number] = [0, 0];

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

function onUserRead(this: FlowSocket, nread: number): boolean {
  const f = this[FLOW]!;
  const side = this[SIDE]!;
  if (f.dropped) {
    readNextInto(f.readBuf[side]!);
    return false;
  }
  return f.proxy.relayRead(f, side, this, nread);
}

function onDrain(this: FlowSocket): void {
  const f = this[FLOW]!;
  // Everything queued on this socket is written: a buffer the other side lent is free.
  f.proxy.returnLent(f, this[SIDE] === CLIENT ? BACKEND : CLIENT);
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
  /** Read into relay-provided buffers where Node allows it (default true). */
  readonly userReads?: boolean;
}

export class TcpProxy {
  private readonly engine: FlowEngine;
  private readonly flows = new Map<number, TcpFlow>();
  /** Blackholed flows in order of their hold deadline (the hold is the same for all). */
  private holds: TcpFlow[] = [];
  private readonly stats: ProxyStats;
  private readonly pool = new ReadBufferPool();
  /** Flows with a side reading into a buffer of its own. */
  private readonly owning = new Set<TcpFlow>();

  constructor(private readonly options: TcpProxyOptions) {
    this.engine = options.engine;
    this.stats = options.stats;
  }

  /** Read buffers: allocated since start, free in the pool, held by streaming flows. */
  get readBuffers(): { allocated: number; free: number; owningFlows: number } {
    return {
      allocated: this.pool.allocated,
      free: this.pool.freeCount,
      owningFlows: this.owning.size,
    };
  }

  get activeFlows(): number {
    return this.flows.size;
  }

  get heldFlows(): number {
    return this.holds.length;
  }

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
    const shared = this.pool.shared;
    const userReads = this.options.userReads !== false && useUserReads(client, shared, onUserRead);
    const backend: FlowSocket = new Socket(
      userReads ? userReadSocketOptions(shared, onUserRead) : { allowHalfOpen: true },
    );
    const flow = new TcpFlow(
      this,
      open.flowId,
      client,
      backend,
      `${open.backendAddress}:${open.backendPort}`,
    );
    if (userReads) {
      flow.userReads = true;
      flow.readBuf[CLIENT] = shared;
      flow.readBuf[BACKEND] = shared;
    }
    this.flows.set(open.flowId, flow);
    for (const [s, side] of [
      [client, CLIENT],
      [backend, BACKEND],
    ] as const) {
      s[FLOW] = flow;
      s[SIDE] = side;
      if (!userReads) s.on('data', onData);
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

  /**
   * Relays `nread` bytes that `from` read into its current buffer (read-buffers.ts), and
   * chooses the buffer of its next read. Returns false to pause `from`.
   */
  relayRead(f: TcpFlow, side: typeof CLIENT | typeof BACKEND, from: FlowSocket, nread: number): boolean {
    this.relayed(f, side === CLIENT, nread);
    const to = f.peer(from);
    const pool = this.pool;
    const buf = f.readBuf[side]!;
    if (buf === pool.shared) {
      // The shared buffer is never handed to a write: its bytes are copied out first.
      const copy = Buffer.allocUnsafe(nread);
      buf.copy(copy, 0, 0, nread);
      if (nread >= OWN_AT_BYTES) {
        const own = pool.take();
        f.readBuf[side] = own;
        this.owning.add(f);
        readNextInto(own);
      } else {
        readNextInto(buf);
      }
      return to.write(copy);
    }
    f.ownedReads[side]++;
    const ok = to.write(nread === buf.length ? buf : buf.subarray(0, nread));
    if (to.writableLength > 0) {
      // The write is queued and still points into this buffer.
      if (!ok) {
        // `drain` will come: read nothing more (into it) until then.
        f.lent[side] = true;
        readNextInto(buf);
        return false;
      }
      // A small queued write gets no `drain`: leave the buffer to it (the garbage collector
      // frees it once written) and go on reading into another.
      const next = pool.take();
      f.readBuf[side] = next;
      readNextInto(next);
      return true;
    }
    if (nread < OWN_AT_BYTES) {
      pool.give(buf);
      f.readBuf[side] = pool.shared;
      readNextInto(pool.shared);
      this.forgetIfShared(f);
    } else {
      readNextInto(buf);
    }
    return true;
  }

  /** A write to the other side has drained: the buffer `side` lent to it is free again. */
  returnLent(f: TcpFlow, side: typeof CLIENT | typeof BACKEND): void {
    f.lent[side] = false;
  }

  private forgetIfShared(f: TcpFlow): void {
    const shared = this.pool.shared;
    if (f.readBuf[CLIENT] === shared && f.readBuf[BACKEND] === shared) this.owning.delete(f);
  }

  /**
   * Moves sides that read nothing since the last sweep back to the shared buffer, so that a
   * stream that went quiet does not keep a buffer. Called about once a second.
   */
  sweepReadBuffers(): void {
    for (const f of this.owning) {
      for (const side of [CLIENT, BACKEND] as const) {
        if (f.ownedReads[side] === 0 && !f.lent[side]) this.unown(f, side);
        f.ownedReads[side] = 0;
      }
      this.forgetIfShared(f);
    }
  }

  /** Points a side that owns a buffer back at the shared one, outside its read callback. */
  private unown(f: TcpFlow, side: typeof CLIENT | typeof BACKEND): void {
    const shared = this.pool.shared;
    const buf = f.readBuf[side];
    if (buf === undefined || buf === shared) return;
    swapReadBuffer(side === CLIENT ? f.client : f.backend, shared);
    f.readBuf[side] = shared;
    this.pool.give(buf);
  }

  /** Both sockets are closed: their buffers can be read into by others. */
  private releaseBuffers(f: TcpFlow): void {
    if (!f.userReads) return;
    const shared = this.pool.shared;
    for (const side of [CLIENT, BACKEND] as const) {
      const buf = f.readBuf[side];
      if (buf !== undefined && buf !== shared) this.pool.give(buf);
      f.readBuf[side] = shared;
      f.lent[side] = false;
    }
    this.owning.delete(f);
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
    if (f.closed === 2) this.releaseBuffers(f);
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
    // A blackholed flow reads nothing more: it keeps no buffer of its own while held (one
    // that a queued write still points into stays until the flow's sockets close).
    if (f.userReads) {
      if (!f.lent[CLIENT]) this.unown(f, CLIENT);
      if (!f.lent[BACKEND]) this.unown(f, BACKEND);
      this.forgetIfShared(f);
    }
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
