/**
 * Parsing of what the TUN device hands over: a virtio-net header, then an IPv4 packet. One
 * ParsedPacket is refilled per packet. A packet that cannot be handled gets a drop reason;
 * the caller counts drops by reason, so malformed input is visible and never fatal.
 */
import { VNET_HDR_LEN } from './tun.js';
import { fold, sumBytes, updateFull32 } from './checksum.js';

export const VNET_F_NEEDS_CSUM = 1;
export const GSO_NONE = 0;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Why a packet was dropped. Parsing reasons first, then the flow engine's. */
export type DropReason =
  | 'truncated'
  | 'bad-vnet-header'
  | 'not-ipv4'
  | 'ipv6'
  | 'bad-ip-header'
  | 'bad-ip-length'
  | 'fragment'
  | 'protocol'
  | 'bad-tcp-header'
  | 'bad-udp-header'
  | 'no-rule'
  | 'no-flow'
  | 'no-backend'
  | 'member-down'
  | 'capacity'
  | 'tuple-in-use'
  | 'expired'
  | 'snat-ports'
  | 'other';

export const DROP_REASONS: readonly DropReason[] = [
  'truncated',
  'bad-vnet-header',
  'not-ipv4',
  'ipv6',
  'bad-ip-header',
  'bad-ip-length',
  'fragment',
  'protocol',
  'bad-tcp-header',
  'bad-udp-header',
  'no-rule',
  'no-flow',
  'no-backend',
  'member-down',
  'capacity',
  'tuple-in-use',
  'expired',
  'snat-ports',
  'other',
];

export class ParsedPacket {
  /** Offset of the virtio-net header in the buffer. */
  base = 0;
  /** Offset of the IP header. */
  ip = 0;
  /** IP total length (bytes from `ip`). */
  ipLen = 0;
  /** Offset of the transport header. */
  l4 = 0;
  l4Len = 0;
  protocol = 0;
  src = 0;
  dst = 0;
  srcPort = 0;
  dstPort = 0;
  vnetFlags = 0;
  gsoType = 0;
}

/**
 * Reads the virtio-net and IPv4 headers of the `length` bytes at `offset`. Returns null when
 * the packet is usable, else the drop reason.
 */
export function parseIpv4(buf: Buffer, offset: number, length: number, p: ParsedPacket): DropReason | null {
  if (length < VNET_HDR_LEN + 20)
    return length > VNET_HDR_LEN && buf[offset + VNET_HDR_LEN]! >> 4 === 6 ? 'ipv6' : 'truncated';
  p.base = offset;
  p.vnetFlags = buf[offset]!;
  p.gsoType = buf[offset + 1]!;
  if (p.vnetFlags & ~0x07) return 'bad-vnet-header';
  const ip = offset + VNET_HDR_LEN;
  const version = buf[ip]! >> 4;
  if (version === 6) return 'ipv6';
  if (version !== 4) return 'not-ipv4';
  const ihl = (buf[ip]! & 0x0f) * 4;
  if (ihl < 20) return 'bad-ip-header';
  const total = buf.readUInt16BE(ip + 2);
  if (total < ihl || total > length - VNET_HDR_LEN) return 'bad-ip-length';
  // Fragments carry no transport header past the first; Sluice does not reassemble.
  if ((buf.readUInt16BE(ip + 6) & 0x3fff) !== 0) return 'fragment';
  p.ip = ip;
  p.ipLen = total;
  p.protocol = buf[ip + 9]!;
  p.src = buf.readUInt32BE(ip + 12);
  p.dst = buf.readUInt32BE(ip + 16);
  p.l4 = ip + ihl;
  p.l4Len = total - ihl;
  return null;
}

/** Header checksum of a fresh IPv4 header (its checksum field must be zero). */
export function ipHeaderChecksum(buf: Buffer, ip: number, ihl = 20): number {
  return ~fold(sumBytes(buf, ip, ihl)) & 0xffff;
}

/** Writes a new source or destination address and updates the header checksum. */
export function setIpAddress(buf: Buffer, p: ParsedPacket, which: 'src' | 'dst', addr: number): void {
  const at = p.ip + (which === 'src' ? 12 : 16);
  const old = which === 'src' ? p.src : p.dst;
  buf.writeUInt16BE(updateFull32(buf.readUInt16BE(p.ip + 10), old, addr), p.ip + 10);
  buf.writeUInt32BE(addr >>> 0, at);
  if (which === 'src') p.src = addr >>> 0;
  else p.dst = addr >>> 0;
}

/** Dotted-quad text of an address held as a number. */
export function ipText(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}
