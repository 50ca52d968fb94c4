/**
 * The TUN device through the native addon (native/src/tun.c): open with a virtio-net header
 * and offloads, read packets in batches, write packets. The addon is optional at install, so
 * loading it is a question the CLI asks before choosing the packet plane.
 */
import { SluiceError } from '../../core/errors.js';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** virtio-net header length (struct virtio_net_hdr without num_buffers). */
export const VNET_HDR_LEN = 10;
/** Bytes per packet in the read buffer: the header plus the largest IPv4 (GSO) packet. */
export const SLOT_BYTES = 65_552;
/** Packets read per JS call at most. */
export const MAX_BATCH = 64;

// Offload flags of TUNSETOFFLOAD (linux/if_tun.h): checksums and TCP segmentation are left to
// the kernel, which hands over GSO super-packets with partial checksums.
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;

interface TunAddon {
  open(name: string, vnetHdr: boolean, offload: number): { fd: number; name: string };
  startReader(
    fd: number,
    buffer: Buffer,
    slotBytes: number,
    maxBatch: number,
    lengths: Int32Array,
    onBatch: (count: number) => void,
    busyPollMicros: number,
  ): object;
  stopReader(handle: object): void;
  write(fd: number, buffer: Buffer, offset: number, length: number): number;
  writeBatch(fd: number, buffer: Buffer, offsets: Int32Array, lengths: Int32Array, count: number): number;
  close(fd: number): void;
}

/** What the packet plane needs of a TUN device; tests substitute their own. */
export interface TunDevice {
  readonly name: string;
  /** Read buffer: packet i of a batch is at i * SLOT_BYTES, `lengths[i]` long (or -errno). */
  readonly buffer: Buffer;
  readonly lengths: Int32Array;
  /**
   * Calls `onBatch` for each batch read. A device may hold back writes of packets in its own
   * read buffer until `onBatch` returns; a failure among those is reported to `onWriteError`.
   */
  start(onBatch: (count: number) => void, onWriteError?: (errno: number) => void): void;
  /**
   * Writes one packet (virtio-net header first); returns the bytes written (or accepted, when
   * held back until the end of the batch) or -errno.
   */
  write(buffer: Buffer, offset: number, length: number): number;
  close(): void;
}

const ADDON_PATHS = [
  '../../../../native/build/Release/sluice_tun.node',
  '../../../native/build/Release/sluice_tun.node',
];

let cached: TunAddon | string | undefined;

/** The addon, or a one-line reason why it cannot be used. */
export function loadTunAddon(): TunAddon | string {
  if (cached !== undefined) return cached;
  if (process.platform !== 'linux')
    return (cached = `the packet data plane needs Linux (this is ${process.platform})`);
  const require = createRequire(import.meta.url);
  let last = '';
  for (const rel of ADDON_PATHS) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    try {
      return (cached = require(path) as TunAddon);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== 'MODULE_NOT_FOUND') last = e.message.split('\n')[0] ?? '';
    }
  }
  return (cached =
    last !== ''
      ? `the TUN addon does not load: ${last}`
      : 'the TUN addon is not built (run `npm run install`, which needs python3, make and a C compiler)');
}

/** True when the process holds CAP_NET_ADMIN, which creating a TUN device and routes needs. */
export function hasNetAdmin(): boolean {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n;
  } catch {
    return false;
  }
}

/** Why the packet plane cannot run here, or undefined when it can. */
export function packetPlaneUnavailable(): string | undefined {
  const addon = loadTunAddon();
  if (typeof addon === 'string') return addon;
  if (!hasNetAdmin()) return 'the packet data plane needs root or CAP_NET_ADMIN';
  return undefined;
}

/**
 * Busy polling after each batch, by default: on a 2-vCPU VM, alternating it off and on in one
 * run took the request/response p99 from 125-142 us to 82-94 us (docs/benchmarks.md).
 */
export const DEFAULT_BUSY_POLL_MICROS = 50;

export interface TunOpenOptions {
  /**
   * The device is only written to (a floating-IP backend's): it gets no read buffer, which is
   * MAX_BATCH slots of SLOT_BYTES (4 MiB), and cannot be started.
   */
  readonly writeOnly?: boolean;
  /**
   * After each batch, go on reading for this many microseconds without going back to sleep
   * (`--busy-poll`): the answer to what was just forwarded is read without a wake-up's delay,
   * at the price of a core spinning while traffic flows (DEFAULT_BUSY_POLL_MICROS when not
   * given; 0 turns it off).
   */
  readonly busyPollMicros?: number;
}

/** A TUN device that cannot be opened or used; `errno` is the system's reason. */
export class TunError extends SluiceError {
  constructor(
    readonly errno: string,
    message: string,
  ) {
    super('SLUICE_PLANE_TUN', message);
  }
}

/** A TUN device opened with IFF_TUN | IFF_NO_PI | IFF_VNET_HDR; it vanishes when closed. */
export class Tun implements TunDevice {
  readonly buffer: Buffer;
  readonly lengths: Int32Array;
  private reader: object | undefined;
  private fd: number;
  // Packets forwarded in place in the read buffer go out in one addon call at the end of the
  // batch, instead of one JS-to-C call each.
  private inBatch = false;
  private held = 0;
  private readonly heldOffsets = new Int32Array(MAX_BATCH);
  private readonly heldLengths = new Int32Array(MAX_BATCH);
  private onWriteError: ((errno: number) => void) | undefined;

  private constructor(
    private readonly addon: TunAddon,
    fd: number,
    readonly name: string,
    private readonly writeOnly: boolean,
    private readonly busyPollMicros: number,
  ) {
    this.fd = fd;
    const slots = writeOnly ? 0 : MAX_BATCH;
    this.buffer = Buffer.allocUnsafeSlow(SLOT_BYTES * slots);
    this.lengths = new Int32Array(slots);
  }

  static open(name: string, options: TunOpenOptions = {}): Tun {
    const addon = loadTunAddon();
    if (typeof addon === 'string') throw new TunError('ENOADDON', addon);
    try {
      const { fd, name: actual } = addon.open(name, true, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
      return new Tun(
        addon,
        fd,
        actual,
        options.writeOnly ?? false,
        options.busyPollMicros ?? DEFAULT_BUSY_POLL_MICROS,
      );
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why =
        e.code === 'EPERM' || e.code === 'EACCES'
          ? 'permission denied (needs root or CAP_NET_ADMIN)'
          : e.code === 'ENOENT'
            ? '/dev/net/tun does not exist (load the tun module)'
            : e.code === 'EBUSY'
              ? 'the device exists and is in use (another Sluice, or a persistent device of another kind)'
              : e.message;
      throw new TunError(e.code ?? 'EIO', `cannot open TUN device ${name}: ${why}`);
    }
  }

  start(onBatch: (count: number) => void, onWriteError?: (errno: number) => void): void {
    if (this.writeOnly) throw new TunError('EINVAL', `TUN device ${this.name} was opened write-only`);
    if (this.reader !== undefined || this.fd < 0) return;
    this.onWriteError = onWriteError;
    const batch = (count: number): void => {
      this.inBatch = true;
      try {
        onBatch(count);
      } finally {
        this.inBatch = false;
        this.flush();
      }
    };
    this.reader = this.addon.startReader(
      this.fd,
      this.buffer,
      SLOT_BYTES,
      MAX_BATCH,
      this.lengths,
      batch,
      this.busyPollMicros,
    );
  }

  write(buffer: Buffer, offset: number, length: number): number {
    if (this.fd < 0) return -9;
    if (this.inBatch && buffer === this.buffer) {
      if (this.held === MAX_BATCH) this.flush();
      this.heldOffsets[this.held] = offset;
      this.heldLengths[this.held++] = length;
      return length;
    }
    // Anything else (a RST built elsewhere) goes after what the batch already forwarded.
    if (this.held > 0) this.flush();
    return this.addon.write(this.fd, buffer, offset, length);
  }

  private flush(): void {
    const n = this.held;
    if (n === 0) return;
    this.held = 0;
    if (this.fd < 0) return;
    const lengths = this.heldLengths;
    if (this.addon.writeBatch(this.fd, this.buffer, this.heldOffsets, lengths, n) === 0) return;
    for (let i = 0; i < n; i++) if (lengths[i]! < 0) this.onWriteError?.(lengths[i]!);
  }

  close(): void {
    this.held = 0;
    if (this.reader !== undefined) this.addon.stopReader(this.reader);
    this.reader = undefined;
    if (this.fd >= 0) this.addon.close(this.fd);
    this.fd = -1;
  }
}
