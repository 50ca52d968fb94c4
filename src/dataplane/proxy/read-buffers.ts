/**
 * Read buffers for relayed TCP streams.
 *
 * By default Node allocates a fresh 64 KiB buffer for every read of a socket. For a relay
 * that is pure garbage: each chunk is written to the other socket and forgotten. In a bulk
 * stream it is also the bottleneck, because every ~64 MB of such external buffers forces a
 * full mark-compact whose cost grows with the process's live heap (docs/benchmarks.md).
 *
 * Sockets here read into buffers the relay provides (Node's `onread`), in one of two modes:
 * - shared: all quiet sockets read into one process-wide buffer; what a read brings is copied
 *   out before it is written, so the shared buffer is never referenced by a queued write.
 *   A quiet socket therefore holds no buffer of its own (idle flows cost no read memory).
 * - owned: a socket whose reads are large (a stream) gets a buffer of its own from a pool,
 *   and its reads are written without a copy. When such a write cannot complete at once, the
 *   buffer is lent to it: the socket stops reading until the write drains, and the buffer
 *   returns to the pool then. A small read, or a quiet spell seen by `sweep()`, puts the
 *   socket back on the shared buffer.
 *
 * Node offers `onread` as a public option only for sockets it connects. Accepted sockets are
 * switched with the same fields Node's own constructor sets (found by their symbol
 * descriptions on a probe socket) and the handle's `useUserBuffer()`. When either is missing
 * (another Node version), `userReadSupported` is false and the relay reads the default way.
 */
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';

/** Size of a read buffer: libuv's suggested read size, Node's default. */
export const READ_BUFFER_BYTES = 64 * 1024;
/** A read at least this large moves a socket to a buffer of its own. */
export const OWN_AT_BYTES = 16 * 1024;
/** Free buffers the pool keeps; more go to the garbage collector. */
const POOL_MAX = 64;

interface HandleWithUserBuffer {
  useUserBuffer(buf: Uint8Array): void;
}

interface OnreadFields {
  readonly buffer: symbol;
  readonly callback: symbol;
  readonly generator: symbol;
}

function findOnreadFields(): OnreadFields | undefined {
  const probe = new Socket();
  const bySymbol = new Map(Object.getOwnPropertySymbols(probe).map((s) => [s.description, s]));
  probe.destroy();
  const buffer = bySymbol.get('kBuffer');
  const callback = bySymbol.get('kBufferCb');
  const generator = bySymbol.get('kBufferGen');
  if (buffer === undefined || callback === undefined || generator === undefined) return undefined;
  return { buffer, callback, generator };
}

const fields = findOnreadFields();

/** Whether this Node lets accepted sockets read into relay-provided buffers. */
export const userReadSupported = fields !== undefined;

/**
 * Called by Node after each read of a socket in user-buffer mode, with the number of bytes
 * read into that socket's current buffer; `this` is the socket. Returning false pauses it.
 */
export type UserReadCallback = (this: Socket, nread: number) => boolean;

let nextReadBuffer: Buffer | undefined;

/** Node asks for the buffer of a socket's next read right after each read callback. */
function nextBuffer(): Buffer | undefined {
  return nextReadBuffer;
}

/** Sets the buffer the socket whose read callback is running will read into next. */
export function readNextInto(buf: Buffer): void {
  nextReadBuffer = buf;
}

/**
 * Constructor options for a socket the relay will connect: it reads into `first` from its
 * first read on (Node's constructor takes `onread` although its types list it only for
 * `connect()`).
 */
export function userReadSocketOptions(first: Buffer, callback: UserReadCallback): SocketConstructorOpts {
  nextReadBuffer = first;
  const onread: OnReadOpts = {
    buffer: nextBuffer as () => Buffer,
    callback: callback as (bytesWritten: number, buf: Uint8Array) => boolean,
  };
  const options: SocketConstructorOpts & { onread: OnReadOpts } = { allowHalfOpen: true, onread };
  return options;
}

/**
 * Switches an accepted socket that is not reading yet (created paused) to user-buffer mode.
 * Returns false, leaving the socket as it was, when this Node or socket does not allow it.
 */
export function useUserReads(socket: Socket, first: Buffer, callback: UserReadCallback): boolean {
  const handle = (socket as unknown as { _handle?: Partial<HandleWithUserBuffer> | null })._handle;
  if (fields === undefined || typeof handle?.useUserBuffer !== 'function') return false;
  const s = socket as unknown as Record<symbol, unknown>;
  s[fields.buffer] = first;
  s[fields.callback] = callback;
  s[fields.generator] = nextBuffer;
  handle.useUserBuffer(first);
  return true;
}

/**
 * Points a socket in user-buffer mode at another buffer outside its read callback (to take
 * back an owned buffer from a socket that went quiet).
 */
export function swapReadBuffer(socket: Socket, buf: Buffer): void {
  const handle = (socket as unknown as { _handle?: HandleWithUserBuffer | null })._handle;
  if (handle === null || handle === undefined) return;
  handle.useUserBuffer(buf);
  if (fields !== undefined) (socket as unknown as Record<symbol, unknown>)[fields.buffer] = buf;
}

/** Free read buffers, reused so that streaming allocates nothing per read. */
export class ReadBufferPool {
  /** The buffer every quiet socket reads into; its contents are copied out at once. */
  readonly shared: Buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  private readonly free: Buffer[] = [];
  /** Buffers handed out since start (a measure of how much streaming allocated). */
  allocated = 0;

  take(): Buffer {
    const b = this.free.pop();
    if (b !== undefined) return b;
    this.allocated++;
    return Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  }

  give(b: Buffer): void {
    if (this.free.length < POOL_MAX) this.free.push(b);
  }

  get freeCount(): number {
    return this.free.length;
  }
}
