/** Builds and checks IPv4 packets (behind a virtio-net header) for the packet plane's tests. */
import { fold, sumBytes } from '../../../src/dataplane/packet/checksum.js';
import { SLOT_BYTES, VNET_HDR_LEN, MAX_BATCH, type TunDevice } from '../../../src/dataplane/packet/tun.js';
import { parseIpv4 as ip4 } from '../../../src/core/flow-key.js';

export const addr = (text: string): number => ip4(text);

export interface TcpSpec {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags: number;
  payload?: Buffer;
  window?: number;
  /** Write the checksum as a partial pseudo-header sum, as with VIRTIO_NET_HDR_F_NEEDS_CSUM. */
  partial?: boolean;
}

function pseudo(buf: Buffer, ip: number, proto: number, l4len: number): number {
  return sumBytes(buf, ip + 12, 8) + proto + l4len;
}

export function tcpPacket(s: TcpSpec): Buffer {
  const payload = s.payload ?? Buffer.alloc(0);
  const total = 20 + 20 + payload.length;
  const b = Buffer.alloc(VNET_HDR_LEN + total);
  const ip = VNET_HDR_LEN;
  b[ip] = 0x45;
  b.writeUInt16BE(total, ip + 2);
  b.writeUInt16BE(0x4000, ip + 6);
  b[ip + 8] = 64;
  b[ip + 9] = 6;
  b.writeUInt32BE(addr(s.src), ip + 12);
  b.writeUInt32BE(addr(s.dst), ip + 16);
  b.writeUInt16BE(~fold(sumBytes(b, ip, 20)) & 0xffff, ip + 10);
  const t = ip + 20;
  b.writeUInt16BE(s.sport, t);
  b.writeUInt16BE(s.dport, t + 2);
  b.writeUInt32BE((s.seq ?? 1000) >>> 0, t + 4);
  b.writeUInt32BE((s.ack ?? 0) >>> 0, t + 8);
  b[t + 12] = 5 << 4;
  b[t + 13] = s.flags;
  b.writeUInt16BE(s.window ?? 65535, t + 14);
  payload.copy(b, t + 20);
  if (s.partial) {
    b[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    b.writeUInt16LE(20, 6); // csum_start and csum_offset: little-endian, as the kernel writes them
    b.writeUInt16LE(16, 8);
    b.writeUInt16BE(fold(pseudo(b, ip, 6, total - 20)), t + 16);
  } else {
    b.writeUInt16BE(~fold(sumBytes(b, t, total - 20, pseudo(b, ip, 6, total - 20))) & 0xffff, t + 16);
  }
  return b;
}

export function udpPacket(s: {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
}): Buffer {
  const total = 20 + 8 + s.payload.length;
  const b = Buffer.alloc(VNET_HDR_LEN + total);
  const ip = VNET_HDR_LEN;
  b[ip] = 0x45;
  b.writeUInt16BE(total, ip + 2);
  b[ip + 8] = 64;
  b[ip + 9] = 17;
  b.writeUInt32BE(addr(s.src), ip + 12);
  b.writeUInt32BE(addr(s.dst), ip + 16);
  b.writeUInt16BE(~fold(sumBytes(b, ip, 20)) & 0xffff, ip + 10);
  const u = ip + 20;
  b.writeUInt16BE(s.sport, u);
  b.writeUInt16BE(s.dport, u + 2);
  b.writeUInt16BE(8 + s.payload.length, u + 4);
  s.payload.copy(b, u + 8);
  const c = ~fold(sumBytes(b, u, total - 20, pseudo(b, ip, 17, total - 20))) & 0xffff;
  b.writeUInt16BE(c === 0 ? 0xffff : c, u + 6);
  return b;
}

/** A written packet, decoded, with whether its checksums verify. */
export interface Decoded {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  protocol: number;
  seq: number;
  ack: number;
  flags: number;
  ipChecksumOk: boolean;
  /** Full checksum verifies; or, for a partial one, it equals the pseudo-header sum. */
  l4ChecksumOk: boolean;
  partial: boolean;
}

const text = (a: number): string => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;

export function decode(pkt: Buffer): Decoded {
  const ip = VNET_HDR_LEN;
  const ihl = (pkt[ip]! & 15) * 4;
  const total = pkt.readUInt16BE(ip + 2);
  const protocol = pkt[ip + 9]!;
  const l4 = ip + ihl;
  const l4len = total - ihl;
  const partial = (pkt[0]! & 1) === 1;
  const ps = pseudo(pkt, ip, protocol, l4len);
  const csumAt = l4 + (protocol === 6 ? 16 : 6);
  const l4ChecksumOk = partial
    ? pkt.readUInt16BE(csumAt) === fold(ps)
    : fold(sumBytes(pkt, l4, l4len, ps)) === 0xffff;
  return {
    src: text(pkt.readUInt32BE(ip + 12)),
    dst: text(pkt.readUInt32BE(ip + 16)),
    sport: pkt.readUInt16BE(l4),
    dport: pkt.readUInt16BE(l4 + 2),
    protocol,
    seq: protocol === 6 ? pkt.readUInt32BE(l4 + 4) : 0,
    ack: protocol === 6 ? pkt.readUInt32BE(l4 + 8) : 0,
    flags: protocol === 6 ? pkt[l4 + 13]! : 0,
    ipChecksumOk: fold(sumBytes(pkt, ip, ihl)) === 0xffff,
    l4ChecksumOk,
    partial,
  };
}

/** A TUN device in memory: tests put packets in, and read what the plane wrote. */
export class FakeTun implements TunDevice {
  readonly buffer = Buffer.alloc(SLOT_BYTES * MAX_BATCH);
  readonly lengths = new Int32Array(MAX_BATCH);
  readonly written: Buffer[] = [];
  closed = false;
  private onBatch: ((n: number) => void) | undefined;

  constructor(readonly name = 'fake0') {}

  start(onBatch: (count: number) => void): void {
    this.onBatch = onBatch;
  }

  /** Delivers packets as one batch. */
  inject(...packets: Buffer[]): void {
    packets.forEach((p, i) => {
      p.copy(this.buffer, i * SLOT_BYTES);
      this.lengths[i] = p.length;
    });
    this.onBatch?.(packets.length);
  }

  write(buffer: Buffer, offset: number, length: number): number {
    this.written.push(Buffer.from(buffer.subarray(offset, offset + length)));
    return length;
  }

  take(): Decoded[] {
    const out = this.written.map(decode);
    this.written.length = 0;
    return out;
  }

  close(): void {
    this.closed = true;
  }
}
