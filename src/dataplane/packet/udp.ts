/** UDP headers: ports and the payload length, validated against the IP length. */
import type { DropReason, ParsedPacket } from './ipv4.js';

/** Offset of the checksum field within the UDP header. */
export const UDP_CHECKSUM = 6;

/** Fills the packet's ports; returns the payload length, or the drop reason. */
export function parseUdp(buf: Buffer, p: ParsedPacket): number | DropReason {
  if (p.l4Len < 8) return 'bad-udp-header';
  const len = buf.readUInt16BE(p.l4 + 4);
  // GSO UDP super-packets carry the length of one segment; the IP length is the truth then.
  if (p.gsoType === 0 && (len < 8 || len > p.l4Len)) return 'bad-udp-header';
  p.srcPort = buf.readUInt16BE(p.l4);
  p.dstPort = buf.readUInt16BE(p.l4 + 2);
  return p.l4Len - 8;
}
