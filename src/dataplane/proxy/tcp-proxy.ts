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
import { NO_READ_BUFFERS, type ReadBufferStats } from './read-buffers.js';
import { BACKEND, CLIENT, RelayBase, type RelayFlow, type Side } from './relay.js';

const FLOW = Symbol('sluice.flow');
const SIDE = Symbol('sluice.side');
/** The relay closed this socket and waits for its 'close'. */
const CLOSING = Symbol('sluice.closing');

interface FlowSocket extends Socket {
  [FLOW]?: TcpFlow;
  [SIDE]?: Side;
  [CLOSING]?: boolean;
}

class TcpFlow implements RelayFlow {
  connected = false;
  dropped = false;
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

export class TcpProxy extends RelayBase<TcpFlow> {
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
    const open = this.admit(remoteAddress, remotePort ?? 0, frontendAddress, frontendPort);
    if (open === undefined) {
      client.resetAndDestroy();
      return;
    }
    client.off('error', noop);
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

  backendFailed(f: TcpFlow, err: NodeJS.ErrnoException): void {
    this.backendUnreachable(f, err.code ?? err.message);
  }

  /** A socket failed (usually a RST from its endpoint): the other endpoint gets a RST too. */
  socketFailed(f: TcpFlow, s: FlowSocket): void {
    if (f.dropped) {
      // An endpoint of a blackholed flow went away; the other one still hears nothing.
      s.destroy();
      return;
    }
    if (!f.finished) this.mirrorReset(f, s[SIDE]!);
  }

  socketClosed(f: TcpFlow, s: FlowSocket): void {
    if (s[CLOSING] === true) {
      s[CLOSING] = false;
      this.closeDone();
    }
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

  protected endSide(f: TcpFlow, side: Side, reset: boolean): void {
    const s = side === CLIENT ? f.client : f.backend;
    // A socket still connecting is reset once it connects, if ever: nothing to wait for now.
    if (!s.destroyed && !s.connecting && s[CLOSING] !== true) {
      s[CLOSING] = true;
      this.closeStarted();
    }
    if (reset) s.resetAndDestroy();
    else s.destroy();
  }

  protected stopReading(f: TcpFlow): void {
    f.client.pause();
    f.backend.pause();
  }
}

function noop(): void {}
