/**
 * TCP resets Sluice sends itself: at idle timeout to both ends of a flow (B4), and in answer
 * to later segments of an expired or unknown flow (B6). Each is a 40-byte IPv4 + TCP packet with complete
 * checksums, behind a virtio-net header that asks nothing of the kernel.
 */
import { fold, sumBytes } from './checksum.js';
import { ipHeaderChecksum, IPPROTO_TCP } from './ipv4.js';
import { VNET_HDR_LEN } from './tun.js';

export const RST_PACKET_BYTES = VNET_HDR_LEN + 40;

/** Writes a RST at `offset`; returns its length. */
export function writeRst(
  buf: Buffer,
  offset: number,
  src: number,
  srcPort: number,
  dst: number,
  dstPort: number,
  seq: number,
  ack: number,
  flags: number,
): number {
  buf.fill(0, offset, offset + RST_PACKET_BYTES);
  const ip = offset + VNET_HDR_LEN;
  buf[ip] = 0x45;
  buf.writeUInt16BE(40, ip + 2);
  buf.writeUInt16BE(0x4000, ip + 6); // DF
  buf[ip + 8] = 64;
  buf[ip + 9] = IPPROTO_TCP;
  buf.writeUInt32BE(src >>> 0, ip + 12);
  buf.writeUInt32BE(dst >>> 0, ip + 16);
  buf.writeUInt16BE(ipHeaderChecksum(buf, ip), ip + 10);
  const tcp = ip + 20;
  buf.writeUInt16BE(srcPort, tcp);
  buf.writeUInt16BE(dstPort, tcp + 2);
  buf.writeUInt32BE(seq >>> 0, tcp + 4);
  buf.writeUInt32BE(ack >>> 0, tcp + 8);
  buf[tcp + 12] = 5 << 4;
  buf[tcp + 13] = flags;
  // Pseudo-header: addresses, protocol, TCP length.
  const pseudo = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + IPPROTO_TCP + 20;
  buf.writeUInt16BE(~fold(sumBytes(buf, tcp, 20, pseudo)) & 0xffff, tcp + 16);
  return RST_PACKET_BYTES;
}
