/**
 * TCP through libuv handles (tcp-handles.ts): the proxy plane's relay wherever Node hands the
 * handles out. It carries out the same contract as the `net.Socket` relay (tcp-proxy.ts):
 * - reset: both handles close with a RST, so both endpoints get ECONNRESET (B4);
 * - drop: both handles stop reading and are kept, so neither endpoint hears a FIN or a RST
 *   (B3); they are let go after a hold;
 * - a FIN is passed on as a FIN (half-close), a RST or an error on one side becomes a RST on
 *   the other, a backend that cannot be reached gets the client a RST.
 *
 * Reads go into buffers the relay owns (read-buffers.ts): quiet sockets share one and their
 * bytes are copied out; a socket that streams gets one of its own, written without a copy.
 * Backpressure is one queued write per direction: when a write cannot complete at once, the
 * side it came from stops reading until libuv reports it written.
 */
import { SluiceError } from '../../core/errors.js';
import { OWN_AT_BYTES, ReadBufferPool, type ReadBufferStats } from './read-buffers.js';
import { BACKEND, CLIENT, other, RelayBase, type RelayFlow, type RelayOptions, type Side } from './relay.js';
import {
  connectHandle,
  errorName,
  tcpHandles,
  UV_EOF,
  type ConnectRequest,
  type HandleAddress,
  type TcpHandle,
  type WriteRequest,
} from './tcp-handles.js';

const bindings = tcpHandles;

interface FlowHandle extends TcpHandle {
  flow?: HandleFlow;
  side?: Side;
}

interface FlowRequest {
  flow: HandleFlow;
  side: Side;
}

class HandleFlow implements RelayFlow {
  connected = false;
  dropped = false;
  finished = false;
  holdUntil = 0;
  /** Handles whose close has completed. */
  closed = 0;
  readonly closing: [boolean, boolean] = [false, false];
  /** Per side: it sent its FIN. */
  readonly eof: [boolean, boolean] = [false, false];
  /** Per side: a write of what it sent is queued on the other side (it is not reading). */
  readonly writing: [boolean, boolean] = [false, false];
  /** Per side: the buffer its next read goes into. */
  readonly readBuf: [Buffer, Buffer];
  /** Per side: reads into a buffer of its own since the last sweep. */
  readonly ownedReads: [number, number] = [0, 0];

  constructor(
    readonly proxy: HandleTcpProxy,
    readonly id: number,
    readonly client: FlowHandle,
    readonly backend: FlowHandle,
    readonly backendLabel: string,
    shared: Buffer,
  ) {
    this.readBuf = [shared, shared];
  }

  handle(side: Side): FlowHandle {
    return side === CLIENT ? this.client : this.backend;
  }
}

function onRead(this: FlowHandle): Uint8Array | undefined {
  const f = this.flow!;
  const side = this.side!;
  const n = bindings!.readResult();
  if (n > 0) return f.proxy.relayRead(f, side, n);
  if (n === UV_EOF) f.proxy.endOfStream(f, side);
  else if (n < 0) f.proxy.failed(f, side, n);
  return undefined;
}

function onWritten(this: WriteRequest & FlowRequest, status: number): void {
  this.buffer = null;
  this.flow.proxy.written(this.flow, this.side, status);
}

/** The FIN is on its way; the flow closes when the other side's FIN comes. */
function onShutDown(): void {}

function onConnected(this: ConnectRequest & { flow: HandleFlow }, status: number): void {
  this.flow.proxy.connected(this.flow, status);
}

function noop(): void {}

export class HandleTcpProxy extends RelayBase<HandleFlow> {
  private readonly pool = new ReadBufferPool();
  /** Flows with a side reading into a buffer of its own. */
  private readonly owning = new Set<HandleFlow>();

  constructor(options: RelayOptions) {
    if (bindings === undefined)
      throw new SluiceError('SLUICE_PLANE_UNAVAILABLE', 'libuv TCP handles are not available in this Node');
    super(options);
  }

  get readBuffers(): ReadBufferStats {
    return this.pool.stats(this.owning.size);
  }

  /** An accepted client handle, not reading yet. */
  accept(client: FlowHandle, frontendAddress: string, frontendPort: number): void {
    const peer: HandleAddress = {};
    if (client.getpeername(peer) !== 0 || peer.address === undefined) {
      // The client was gone before it could be handled.
      client.close();
      return;
    }
    const open = this.admit(peer.address, peer.port ?? 0, frontendAddress, frontendPort);
    if (open === undefined) {
      if (client.reset(noop) !== 0) client.close();
      return;
    }
    const backend: FlowHandle = bindings!.newSocket();
    const shared = this.pool.shared;
    const f = new HandleFlow(
      this,
      open.flowId,
      client,
      backend,
      `${open.backendAddress}:${open.backendPort}`,
      shared,
    );
    this.flows.set(f.id, f);
    for (const [h, side] of [
      [client, CLIENT],
      [backend, BACKEND],
    ] as const) {
      h.flow = f;
      h.side = side;
      h.onread = onRead;
      h.useUserBuffer(shared);
      h.setNoDelay(true);
    }
    const req = bindings!.newConnect() as ConnectRequest & { flow: HandleFlow };
    req.oncomplete = onConnected;
    req.flow = f;
    const err = connectHandle(backend, req, open.backendAddress, open.backendPort);
    if (err !== 0) this.backendFailed(f, err);
    // Reading the backend from the start registers it with epoll once, for both the connect and
    // its data, instead of once for each (libuv re-adds a stopped watcher, which fails and is
    // retried as a change).
    else backend.readStart();
  }

  connected(f: HandleFlow, status: number): void {
    if (f.finished || f.dropped) return;
    if (status < 0) {
      this.backendFailed(f, status);
      return;
    }
    f.connected = true;
    f.client.readStart();
  }

  /**
   * Relays `n` bytes that `side` read into its current buffer; returns the buffer of its next
   * read when that changes.
   */
  relayRead(f: HandleFlow, side: Side, n: number): Uint8Array | undefined {
    const from = f.handle(side);
    if (f.dropped || f.finished) {
      from.readStop();
      return undefined;
    }
    this.relayed(f, side === CLIENT, n);
    const pool = this.pool;
    const buf = f.readBuf[side];
    let data: Buffer;
    let next: Buffer | undefined;
    if (buf === pool.shared) {
      // The shared buffer is never handed to a write: its bytes are copied out first.
      data = Buffer.allocUnsafe(n);
      buf.copy(data, 0, 0, n);
      if (n >= OWN_AT_BYTES) {
        next = pool.take();
        f.readBuf[side] = next;
        if (this.owning.size === 0) this.options.wake?.();
        this.owning.add(f);
      }
    } else {
      f.ownedReads[side]++;
      data = n === buf.length ? buf : buf.subarray(0, n);
    }
    const req = bindings!.newWrite() as WriteRequest & FlowRequest;
    req.oncomplete = onWritten;
    req.flow = f;
    req.side = side;
    const err = f.handle(other(side)).writeBuffer(req, data);
    if (err !== 0) {
      this.failed(f, other(side), err);
      return undefined;
    }
    if (bindings!.lastWriteQueued()) {
      // The write points into `data` until it completes: keep it alive, and read nothing
      // more from this side (into an owned buffer or at all) until then.
      req.buffer = data;
      f.writing[side] = true;
      from.readStop();
      return next;
    }
    if (buf !== pool.shared && n < OWN_AT_BYTES) {
      // A small read: the stream has caught up; back to the shared buffer.
      pool.give(buf);
      f.readBuf[side] = pool.shared;
      this.forgetIfShared(f);
      return pool.shared;
    }
    return next;
  }

  /** A queued write of what `side` sent has completed (or failed). */
  written(f: HandleFlow, side: Side, status: number): void {
    f.writing[side] = false;
    if (status < 0) {
      this.failed(f, other(side), status);
      return;
    }
    if (f.finished || f.dropped || f.closing[side] || f.eof[side]) return;
    f.handle(side).readStart();
  }

  /** `side` sent its FIN: pass it on (the other side may keep sending). */
  endOfStream(f: HandleFlow, side: Side): void {
    if (f.dropped || f.finished) return;
    f.eof[side] = true;
    this.halfClosed(f, side === CLIENT);
    const to = other(side);
    if (f.eof[to]) {
      // Both sides have sent their FIN. Nothing is queued to `to` (this side read nothing
      // while a write of its bytes was queued) and nothing is unread, so closing sends `to`
      // its FIN; the other side's FIN went out by its shutdown, or goes out with its close.
      this.finish(f, 'fin');
      this.closeBoth(f);
      return;
    }
    const req = bindings!.newShutdown();
    req.oncomplete = onShutDown;
    // libuv sends the FIN after the writes queued before it.
    f.handle(to).shutdown(req);
  }

  /** `side` failed (usually a RST from its endpoint): the other endpoint gets a RST too. */
  failed(f: HandleFlow, side: Side, err: number): void {
    if (f.dropped) {
      // An endpoint of a blackholed flow went away; the other one still hears nothing.
      if (!f.closing[side]) {
        this.options.events?.({ type: 'hold-released', flowId: f.id, reason: 'endpoint-closed' });
      }
      this.endSide(f, side, false);
      return;
    }
    if (f.finished) {
      this.endSide(f, side, false);
      return;
    }
    if (side === BACKEND && !f.connected) this.backendFailed(f, err);
    else this.mirrorReset(f, side);
  }

  private backendFailed(f: HandleFlow, err: number): void {
    this.backendUnreachable(f, errorName(err));
  }

  protected endSide(f: HandleFlow, side: Side, reset: boolean): void {
    if (f.closing[side]) return;
    f.closing[side] = true;
    const h = f.handle(side);
    this.closeStarted();
    const done = (): void => {
      this.closeDone();
      this.handleClosed(f);
    };
    if (!reset || h.reset(done) !== 0) h.close(done);
  }

  private handleClosed(f: HandleFlow): void {
    f.closed++;
    if (f.closed < 2) return;
    // Both handles are closed, so no read or write points into the flow's buffers any more.
    const shared = this.pool.shared;
    for (const side of [CLIENT, BACKEND] as const) {
      const buf = f.readBuf[side];
      if (buf !== shared) this.pool.give(buf);
      f.readBuf[side] = shared;
    }
    this.owning.delete(f);
    if (f.dropped) this.holds = this.holds.filter((x) => x !== f);
  }

  protected stopReading(f: HandleFlow): void {
    f.client.readStop();
    f.backend.readStop();
    // A blackholed flow reads nothing more: it keeps no buffer of its own while held (one a
    // queued write still points into stays until the flow's handles close).
    for (const side of [CLIENT, BACKEND] as const) if (!f.writing[side]) this.unown(f, side);
    this.forgetIfShared(f);
  }

  /**
   * Moves sides that read nothing since the last sweep back to the shared buffer, so that a
   * stream that went quiet does not keep a buffer. Called about once a second.
   */
  sweepReadBuffers(): void {
    for (const f of this.owning) {
      for (const side of [CLIENT, BACKEND] as const) {
        if (f.ownedReads[side] === 0 && !f.writing[side]) this.unown(f, side);
        f.ownedReads[side] = 0;
      }
      this.forgetIfShared(f);
    }
  }

  /** Points a side that owns a buffer back at the shared one, outside its read callback. */
  private unown(f: HandleFlow, side: Side): void {
    const shared = this.pool.shared;
    const buf = f.readBuf[side];
    if (buf === shared || f.closing[side]) return;
    f.handle(side).useUserBuffer(shared);
    f.readBuf[side] = shared;
    this.pool.give(buf);
  }

  private forgetIfShared(f: HandleFlow): void {
    const shared = this.pool.shared;
    if (f.readBuf[CLIENT] === shared && f.readBuf[BACKEND] === shared) this.owning.delete(f);
  }
}
