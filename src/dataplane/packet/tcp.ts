/** TCP headers: the fields the flow engine reads, and port rewrites with checksum updates. */
import type { TcpSegment } from '../../core/tcp-state.js';
import { TCP_SYN } from '../../core/tcp-state.js';
import type { DropReason, ParsedPacket } from './ipv4.js';

/** Fills `seg` and the packet's ports from the TCP header; null when usable, else why not. */
export function parseTcp(buf: Buffer, p: ParsedPacket, seg: TcpSegment): DropReason | null {
  const at = p.l4;
  if (p.l4Len < 20) return 'bad-tcp-header';
  const doff = (buf[at + 12]! >> 4) * 4;
  if (doff < 20 || doff > p.l4Len) return 'bad-tcp-header';
  p.srcPort = buf.readUInt16BE(at);
  p.dstPort = buf.readUInt16BE(at + 2);
  seg.seq = buf.readUInt32BE(at + 4);
  seg.ack = buf.readUInt32BE(at + 8);
  seg.flags = buf[at + 13]!;
  seg.window = buf.readUInt16BE(at + 14);
  seg.len = p.l4Len - doff;
  seg.wscale = seg.flags & TCP_SYN ? windowScale(buf, at + 20, at + doff) : -1;
  return null;
}

/** The window scale option of a SYN (RFC 7323), or -1. */
function windowScale(buf: Buffer, from: number, to: number): number {
  let i = from;
  while (i < to) {
    const kind = buf[i]!;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 1 >= to) break;
    const len = buf[i + 1]!;
    if (len < 2 || i + len > to) break;
    if (kind === 3 && len === 3) return buf[i + 2]!;
    i += len;
  }
  return -1;
}

/** Offset of the checksum field within the TCP header. */
export const TCP_CHECKSUM = 16;
