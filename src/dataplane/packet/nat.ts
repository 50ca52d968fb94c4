/**
 * Address and port rewrites of a forwarded packet, with incremental checksum updates. With a
 * partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM) the transport field holds only the
 * pseudo-header sum, which covers the addresses but not the ports: the kernel or the NIC
 * completes it over the header and payload later, GSO super-packets included.
 */
import { updateFull16, updateFull32, updatePartial32 } from './checksum.js';
import { IPPROTO_UDP, VNET_F_NEEDS_CSUM, setIpAddress, type ParsedPacket } from './ipv4.js';
import { TCP_CHECKSUM } from './tcp.js';
import { UDP_CHECKSUM } from './udp.js';

/** Rewrites the source or destination address and port of a TCP or UDP packet. */
export function rewrite(
  buf: Buffer,
  p: ParsedPacket,
  which: 'src' | 'dst',
  addr: number,
  port: number,
): void {
  const oldAddr = which === 'src' ? p.src : p.dst;
  const oldPort = which === 'src' ? p.srcPort : p.dstPort;
  addr = addr >>> 0;
  if (oldAddr === addr && oldPort === port) return;
  const udp = p.protocol === IPPROTO_UDP;
  const at = p.l4 + (udp ? UDP_CHECKSUM : TCP_CHECKSUM);
  let check = buf.readUInt16BE(at);
  if (p.vnetFlags & VNET_F_NEEDS_CSUM) {
    if (oldAddr !== addr) check = updatePartial32(check, oldAddr, addr);
  } else if (!(udp && check === 0)) {
    // A UDP checksum of 0 means "none" and stays so.
    if (oldAddr !== addr) check = updateFull32(check, oldAddr, addr);
    if (oldPort !== port) check = updateFull16(check, oldPort, port);
    if (udp && check === 0) check = 0xffff;
  }
  buf.writeUInt16BE(check, at);
  if (oldAddr !== addr) setIpAddress(buf, p, which, addr);
  if (oldPort !== port) {
    buf.writeUInt16BE(port, p.l4 + (which === 'src' ? 0 : 2));
    if (which === 'src') p.srcPort = port;
    else p.dstPort = port;
  }
}
