/**
 * libuv TCP handles, as Node's own `net` module drives them.
 *
 * A `net.Socket` is a stream with its state machines, buffers and events; creating two per
 * proxied connection is most of a Node relay's cost per connection (docs/benchmarks.md). The
 * proxy plane's TCP relay uses the handles under those sockets directly: accept, connect,
 * read into buffers it owns, write, shutdown, reset and close, and nothing else. The bindings
 * are Node's internal ones (`process.binding('tcp_wrap')` and `'stream_wrap'`, in Node's list
 * of bindings it still hands out); when they cannot be loaded, `tcpHandles` is undefined and
 * the plane relays through `net.Socket` instead (tcp-proxy.ts).
 */
import { isIPv6 } from 'node:net';
import { getSystemErrorName } from 'node:util';

/** What `getpeername()` fills in. */
export interface HandleAddress {
  address?: string;
  port?: number;
  family?: string;
}

/** A libuv TCP handle (uv_tcp_t) as Node's TCPWrap exposes it. */
export interface TcpHandle {
  /** Called after each read; returning a buffer makes it the next read's buffer. */
  onread: ((this: TcpHandle, arrayBuffer: ArrayBuffer | undefined) => Uint8Array | undefined) | null;
  onconnection: ((err: number, client: TcpHandle | undefined) => void) | null;
  readonly writeQueueSize: number;
  readStart(): number;
  readStop(): number;
  /** Reads go into `buf` (and then into whatever `onread` returns) instead of new buffers. */
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: WriteRequest, buf: Uint8Array): number;
  shutdown(req: ShutdownRequest): number;
  /** Closes with a RST (SO_LINGER 0). */
  reset(callback: () => void): number;
  close(callback?: () => void): void;
  getpeername(out: HandleAddress): number;
  setNoDelay(on: boolean): number;
  bind(address: string, port: number): number;
  bind6(address: string, port: number, flags: number): number;
  listen(backlog: number): number;
  connect(req: ConnectRequest, address: string, port: number): number;
  connect6(req: ConnectRequest, address: string, port: number): number;
}

export interface WriteRequest {
  oncomplete: (this: never, status: number) => void;
  /** Keeps the written buffer alive while the write is queued in libuv. */
  buffer: Uint8Array | null;
}

export interface ShutdownRequest {
  oncomplete: (this: never, status: number) => void;
}

export interface ConnectRequest {
  oncomplete: (this: never, status: number) => void;
}

interface TcpBindings {
  readonly newSocket: () => TcpHandle;
  readonly newServer: () => TcpHandle;
  readonly newWrite: () => WriteRequest;
  readonly newShutdown: () => ShutdownRequest;
  readonly newConnect: () => ConnectRequest;
  /** Bytes read (or a negative error) of the read being reported to `onread`. */
  readonly readResult: () => number;
  /** Whether the last `writeBuffer()` was queued rather than written at once. */
  readonly lastWriteQueued: () => boolean;
}

type Ctor<T> = new (kind?: number) => T;

function loadBindings(): TcpBindings | undefined {
  try {
    const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
    const tcp = binding('tcp_wrap');
    const stream = binding('stream_wrap');
    const TCP = tcp['TCP'] as Ctor<TcpHandle>;
    const TCPConnectWrap = tcp['TCPConnectWrap'] as Ctor<ConnectRequest>;
    const constants = tcp['constants'] as { SOCKET: number; SERVER: number };
    const WriteWrap = stream['WriteWrap'] as Ctor<WriteRequest>;
    const ShutdownWrap = stream['ShutdownWrap'] as Ctor<ShutdownRequest>;
    const state = stream['streamBaseState'] as Int32Array;
    const kRead = stream['kReadBytesOrError'] as number;
    const kAsync = stream['kLastWriteWasAsync'] as number;
    const probe = new TCP(constants.SOCKET);
    const usable =
      typeof probe.useUserBuffer === 'function' &&
      typeof probe.reset === 'function' &&
      typeof probe.writeBuffer === 'function' &&
      state instanceof Int32Array &&
      typeof kRead === 'number' &&
      typeof kAsync === 'number' &&
      typeof TCPConnectWrap === 'function' &&
      typeof ShutdownWrap === 'function';
    probe.close();
    if (!usable) return undefined;
    return {
      newSocket: () => new TCP(constants.SOCKET),
      newServer: () => new TCP(constants.SERVER),
      newWrite: () => new WriteWrap(),
      newShutdown: () => new ShutdownWrap(),
      newConnect: () => new TCPConnectWrap(),
      readResult: () => state[kRead]!,
      lastWriteQueued: () => state[kAsync] !== 0,
    };
  } catch {
    return undefined;
  }
}

/** Node's TCP handle bindings, or undefined when this Node does not hand them out. */
export const tcpHandles: TcpBindings | undefined = loadBindings();

/** libuv's end-of-stream read result. */
export const UV_EOF = -4095;

/** A libuv error number as the name Node gives it (ECONNRESET, EADDRINUSE, ...). */
export function errorName(err: number): string {
  try {
    return getSystemErrorName(err);
  } catch {
    return `E${-err}`;
  }
}

/** A listening TCP handle on address:port; a negative libuv error when it cannot listen. */
export function listenHandle(
  bindings: TcpBindings,
  address: string,
  port: number,
  backlog: number,
): TcpHandle | number {
  const h = bindings.newServer();
  let err = isIPv6(address) ? h.bind6(address, port, 0) : h.bind(address, port);
  if (err === 0) err = h.listen(backlog);
  if (err !== 0) {
    h.close();
    return err;
  }
  return h;
}

/** Starts connecting `h` to address:port; a negative libuv error when it cannot start. */
export function connectHandle(h: TcpHandle, req: ConnectRequest, address: string, port: number): number {
  return isIPv6(address) ? h.connect6(req, address, port) : h.connect(req, address, port);
}
