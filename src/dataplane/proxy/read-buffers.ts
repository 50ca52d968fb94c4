/**
 * Read buffers for relayed TCP streams (handle-proxy.ts).
 *
 * By default Node allocates a fresh 64 KiB buffer for every read of a socket. For a relay
 * that is pure garbage: each chunk is written to the other socket and forgotten. In a bulk
 * stream it is also the bottleneck, because every ~64 MB of such external buffers forces a
 * full mark-compact whose cost grows with the process's live heap (docs/benchmarks.md).
 *
 * The relay therefore reads into buffers it provides, in one of two modes per socket:
 * - shared: all quiet sockets read into one process-wide buffer; what a read brings is copied
 *   out before it is written, so the shared buffer is never referenced by a queued write.
 *   A quiet socket holds no buffer of its own (idle flows cost no read memory).
 * - owned: a socket whose reads are large (a stream) gets a buffer of its own from a pool,
 *   and its reads are written without a copy. While such a write is queued the socket reads
 *   nothing, so the buffer is not overwritten. A small read, or a quiet spell seen by the
 *   relay's sweep, puts the socket back on the shared buffer.
 */

/** Size of a read buffer: libuv's suggested read size, Node's default. */
const READ_BUFFER_BYTES = 64 * 1024;
/** A read at least this large moves a socket to a buffer of its own. */
export const OWN_AT_BYTES = 16 * 1024;
/** Free buffers the pool keeps; more go to the garbage collector. */
const POOL_MAX = 64;

/** Read buffers: allocated since start, free in the pool, flows holding one of their own. */
export interface ReadBufferStats {
  readonly allocated: number;
  readonly free: number;
  readonly owningFlows: number;
}

export const NO_READ_BUFFERS: ReadBufferStats = { allocated: 0, free: 0, owningFlows: 0 };

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

  stats(owningFlows: number): ReadBufferStats {
    return { allocated: this.allocated, free: this.free.length, owningFlows };
  }
}
