/**
 * TCP tracking from the segments Sluice forwards, in the manner of Linux conntrack: per
 * direction the highest sequence end sent (td_end), the highest ACK sent (td_maxack) and the
 * largest window (td_maxwin). Those are what an idle reset needs: an endpoint accepts a RST
 * only when its sequence number is exactly the endpoint's RCV.NXT (RFC 5961 section 3), and
 * RCV.NXT is the end of everything forwarded towards that endpoint.
 *
 * A segment far outside the windows is counted and forwarded but not trusted: it neither
 * moves the state nor refreshes the idle timer, so stray or forged packets cannot keep a
 * flow alive or close it.
 */
import {
  DIR_ORIG,
  DIR_REPLY,
  REC,
  R_END,
  R_FINEND,
  R_MAXACK,
  R_MAXWIN,
  type Dir,
  type FlowTable,
} from './flow-table.js';

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/** The fields of a TCP header the engine reads; the packet plane refills one per packet. */
export interface TcpSegment {
  flags: number;
  seq: number;
  ack: number;
  /** Payload bytes (SYN and FIN are counted by the engine). */
  len: number;
  /** The raw 16-bit window field. */
  window: number;
  /** The window scale option; only read on SYN segments. -1 or undefined when absent. */
  wscale?: number;
}

// Slot states. 0 is a free slot.
export const ST_SYN_SENT = 1;
export const ST_SYN_RECV = 2;
export const ST_ESTABLISHED = 3;
/** One side sent a FIN that is not yet acknowledged. */
export const ST_FIN_WAIT = 4;
/** One side's FIN is acknowledged; the other side may still send. */
export const ST_CLOSE_WAIT = 5;
/** Both sides sent a FIN; the last one is not yet acknowledged. */
export const ST_LAST_ACK = 6;
/** Both FINs acknowledged: the flow lingers briefly, then goes. */
export const ST_TIME_WAIT = 7;
/** A RST was accepted: the flow lingers briefly, then goes. */
export const ST_CLOSED = 8;
export const ST_UDP = 9;
/** An expired TCP flow remembered for a while: its later packets are told as its own (B6). */
export const ST_TOMBSTONE = 10;

export type FlowState =
  | 'SYN_SENT'
  | 'SYN_RECV'
  | 'ESTABLISHED'
  | 'FIN_WAIT'
  | 'CLOSE_WAIT'
  | 'LAST_ACK'
  | 'TIME_WAIT'
  | 'CLOSED'
  | 'UDP'
  | 'TOMBSTONE';

const NAMES: readonly (FlowState | 'FREE')[] = [
  'FREE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSED',
  'UDP',
  'TOMBSTONE',
];

export function stateName(state: number): FlowState {
  const n = NAMES[state];
  if (n === undefined || n === 'FREE') throw new RangeError(`not a flow state: ${state}`);
  return n;
}

// Bits of FlowTable.meta.
export const META_FIN_ORIG = 0x01;
export const META_FIN_REPLY = 0x02;
export const META_FIN_ACKED_ORIG = 0x04;
export const META_FIN_ACKED_REPLY = 0x08;
/** Tombstone of a rule with enableTcpReset: later packets get a RST (B6). */
export const META_RESET = 0x10;
export const META_FLOATING_IP = 0x20;
/** Opened through the connection API: no sequence numbers are known. */
export const META_NO_SEQ = 0x40;
/** An outbound flow: a member to a remote peer, SNATed to an outbound path's address. */
export const META_OUTBOUND = 0x80;

export const TRACK_OK = 0;
export const TRACK_UNTRUSTED = 1;

/** Windows below this are treated as this, so tiny or zero windows do not flag retransmissions. */
const MIN_WINDOW = 65535;

/** Signed distance a - b in 32-bit sequence space. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

function segEnd(seg: TcpSegment): number {
  return (seg.seq + seg.len + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0)) >>> 0;
}

function scaledWindow(t: FlowTable, slot: number, dir: Dir, window: number): number {
  const a = t.wscale(slot, DIR_ORIG);
  const b = t.wscale(slot, DIR_REPLY);
  // Scaling is in force only when both SYNs carried the option (RFC 7323 section 2.2).
  return a >= 0 && b >= 0 ? window * 2 ** (dir === DIR_ORIG ? a : b) : window;
}

function synScale(seg: TcpSegment): number {
  return seg.wscale !== undefined && seg.wscale >= 0 ? Math.min(seg.wscale, 14) : -1;
}

/** Starts tracking from a client's SYN. */
export function trackSyn(t: FlowTable, slot: number, seg: TcpSegment): void {
  const r = t.rec;
  const b = slot * REC;
  t.setState(slot, ST_SYN_SENT);
  r.fill(0, b + R_END, b + REC);
  r[b + R_END] = segEnd(seg);
  r[b + R_MAXWIN] = seg.window;
  t.setWscale(slot, DIR_ORIG, synScale(seg));
  t.setWscale(slot, DIR_REPLY, -1);
}

/** Starts a flow opened by the connection API: established, no sequence space. */
export function trackAccepted(t: FlowTable, slot: number): void {
  const b = slot * REC;
  t.setState(slot, ST_ESTABLISHED);
  t.setMeta(slot, t.meta(slot) | META_NO_SEQ);
  t.rec.fill(0, b + R_END, b + REC);
  t.setWscale(slot, DIR_ORIG, -1);
  t.setWscale(slot, DIR_REPLY, -1);
}

/**
 * The window assumed for each side of a flow adopted mid-stream: its SYNs (and so its window
 * scales) were seen by another instance, so any window up to this is taken as possible. Large
 * enough for any scaled window in use, small enough that twice it stays a positive distance in
 * 32-bit sequence space.
 */
export const ADOPTED_WINDOW = 2 ** 29;

/**
 * Starts tracking a flow adopted from a mid-flow segment of its client (`seg`, ACK set, no SYN
 * or RST): another instance of the pool carried it until the router moved it here
 * (docs/scale-out.md); or tracks again, from such a segment, a flow that came back. What the segment tells is taken as the state: the client has sent up to
 * its sequence number and acknowledged the backend up to its ACK. The backend's first segment
 * here moves its side on. Returns what `trackSegment` returns for `seg` itself.
 */
export function trackAdopted(t: FlowTable, slot: number, seg: TcpSegment): number {
  const r = t.rec;
  const b = slot * REC;
  const seq = seg.seq >>> 0;
  const ack = seg.ack >>> 0;
  t.setState(slot, ST_ESTABLISHED);
  t.setMeta(
    slot,
    t.meta(slot) & ~(META_FIN_ORIG | META_FIN_REPLY | META_FIN_ACKED_ORIG | META_FIN_ACKED_REPLY),
  );
  r.fill(0, b + R_END, b + REC);
  r[b + R_END + DIR_ORIG] = seq;
  r[b + R_END + DIR_REPLY] = ack;
  r[b + R_MAXACK + DIR_ORIG] = ack;
  r[b + R_MAXACK + DIR_REPLY] = seq;
  r[b + R_MAXWIN + DIR_ORIG] = ADOPTED_WINDOW;
  r[b + R_MAXWIN + DIR_REPLY] = ADOPTED_WINDOW;
  t.setWscale(slot, DIR_ORIG, -1);
  t.setWscale(slot, DIR_REPLY, -1);
  return trackSegment(t, slot, DIR_ORIG, seg);
}

/**
 * Feeds one segment seen in direction `dir`. Returns TRACK_OK when the segment was trusted
 * (state and sequence space updated), TRACK_UNTRUSTED otherwise.
 */
export function trackSegment(t: FlowTable, slot: number, dir: Dir, seg: TcpSegment): number {
  const r = t.rec;
  const b = slot * REC;
  const od = 1 - dir;
  const flags = seg.flags;
  const state = t.state(slot);
  const endD = r[b + R_END + dir]!;
  const endO = r[b + R_END + od]!;
  const maxAckO = r[b + R_MAXACK + od]!;

  if (flags & TCP_RST) {
    const acceptable =
      state === ST_SYN_SENT
        ? dir === DIR_REPLY && (flags & TCP_ACK) !== 0 && seg.ack >>> 0 === endO
        : seg.seq >>> 0 === endD || seg.seq >>> 0 === maxAckO;
    if (!acceptable) return TRACK_UNTRUSTED;
    t.setState(slot, ST_CLOSED);
    return TRACK_OK;
  }

  if (flags & TCP_SYN) {
    if (!(flags & TCP_ACK)) {
      // A retransmitted SYN of the handshake in progress.
      if (dir === DIR_ORIG && state === ST_SYN_SENT && segEnd(seg) === endD) return TRACK_OK;
      return TRACK_UNTRUSTED;
    }
    if (dir !== DIR_REPLY || (state !== ST_SYN_SENT && state !== ST_SYN_RECV)) return TRACK_UNTRUSTED;
    if (seg.ack >>> 0 !== endO) return TRACK_UNTRUSTED;
    const end = segEnd(seg);
    r[b + R_END + dir] = end;
    r[b + R_MAXACK + dir] = seg.ack >>> 0;
    r[b + R_MAXWIN + dir] = seg.window;
    t.setWscale(slot, dir, synScale(seg));
    // Until the client acknowledges, assume it will: its RCV.NXT is the SYN-ACK's end.
    r[b + R_MAXACK + od] = end;
    t.setState(slot, ST_SYN_RECV);
    return TRACK_OK;
  }

  // Without the SYN-ACK nothing is known about the reply side's sequence space.
  if (state === ST_SYN_SENT) return TRACK_UNTRUSTED;

  const seq = seg.seq >>> 0;
  const end = segEnd(seg);
  const rcvWin = Math.max(r[b + R_MAXWIN + od]!, MIN_WINDOW);
  const sndWin = Math.max(r[b + R_MAXWIN + dir]!, MIN_WINDOW);
  // Not beyond what the receiver allowed, not far behind what was already sent.
  if (seqDiff(end, (maxAckO + rcvWin) >>> 0) > rcvWin) return TRACK_UNTRUSTED;
  if (seqDiff((seq + seg.len) >>> 0, (endD - 2 * rcvWin) >>> 0) < 0) return TRACK_UNTRUSTED;
  if (flags & TCP_ACK) {
    const ack = seg.ack >>> 0;
    // Not acknowledging what the other side never sent, nor far behind it.
    if (seqDiff(ack, endO) > 0) return TRACK_UNTRUSTED;
    if (seqDiff(ack, (endO - 2 * sndWin) >>> 0) < 0) return TRACK_UNTRUSTED;
    if (seqDiff(ack, r[b + R_MAXACK + dir]!) > 0) r[b + R_MAXACK + dir] = ack;
  }
  if (seqDiff(end, endD) > 0) r[b + R_END + dir] = end;
  const win = scaledWindow(t, slot, dir, seg.window);
  if (win > r[b + R_MAXWIN + dir]!) r[b + R_MAXWIN + dir] = win;

  let meta = t.meta(slot);
  if (state === ST_SYN_RECV && dir === DIR_ORIG && flags & TCP_ACK && seg.ack >>> 0 === endO) {
    t.setState(slot, ST_ESTABLISHED);
  }
  const finBit = dir === DIR_ORIG ? META_FIN_ORIG : META_FIN_REPLY;
  if (flags & TCP_FIN && !(meta & finBit)) {
    meta |= finBit;
    r[b + R_FINEND + dir] = end;
  }
  if (!(meta & (META_FIN_ORIG | META_FIN_REPLY))) return TRACK_OK;
  const otherFin = dir === DIR_ORIG ? META_FIN_REPLY : META_FIN_ORIG;
  const otherFinAcked = dir === DIR_ORIG ? META_FIN_ACKED_REPLY : META_FIN_ACKED_ORIG;
  if (flags & TCP_ACK && meta & otherFin && seqDiff(seg.ack >>> 0, r[b + R_FINEND + od]!) >= 0) {
    meta |= otherFinAcked;
  }
  t.setMeta(slot, meta);
  t.setState(slot, closingState(meta));
  return TRACK_OK;
}

function closingState(meta: number): number {
  const both = META_FIN_ORIG | META_FIN_REPLY;
  const bothAcked = META_FIN_ACKED_ORIG | META_FIN_ACKED_REPLY;
  if ((meta & both) === both) return (meta & bothAcked) === bothAcked ? ST_TIME_WAIT : ST_LAST_ACK;
  return meta & bothAcked ? ST_CLOSE_WAIT : ST_FIN_WAIT;
}

/** Records a half-close reported by the connection API (a FIN from one side). */
export function halfCloseAccepted(t: FlowTable, slot: number, dir: Dir): void {
  const bit = dir === DIR_ORIG ? META_FIN_ORIG : META_FIN_REPLY;
  // A proxy relays the FIN and the peer's stack acknowledges it at once.
  const acked = dir === DIR_ORIG ? META_FIN_ACKED_ORIG : META_FIN_ACKED_REPLY;
  const meta = t.meta(slot) | bit | acked;
  t.setMeta(slot, meta);
  t.setState(slot, closingState(meta));
}

export interface RstFields {
  seq: number;
  ack: number;
}

/**
 * Sequence numbers for the two RSTs of an idle reset (B4). Towards each endpoint the RST
 * carries that endpoint's RCV.NXT: the end of what was forwarded towards it, which on an idle
 * flow is also the last ACK it sent, and which stays right mid-stream when the endpoint has
 * received more than it acknowledged. The ACK field carries the endpoint's own SND.NXT.
 */
export function idleResetFields(t: FlowTable, slot: number, toClient: RstFields, toBackend: RstFields): void {
  const fromClient = t.rec[slot * REC + R_END + DIR_ORIG]!;
  const fromBackend = t.rec[slot * REC + R_END + DIR_REPLY]!;
  toClient.seq = fromBackend;
  toClient.ack = fromClient;
  toBackend.seq = fromClient;
  toBackend.ack = fromBackend;
}

/**
 * The answer to a segment that has no connection (RFC 9293 section 3.10.7.1): with an ACK,
 * a RST whose sequence number is that ACK; without, a RST|ACK acknowledging the segment.
 */
export function resetForSegment(seg: TcpSegment, out: { seq: number; ack: number; flags: number }): void {
  if (seg.flags & TCP_ACK) {
    out.seq = seg.ack >>> 0;
    out.ack = 0;
    out.flags = TCP_RST;
  } else {
    out.seq = 0;
    out.ack = segEnd(seg);
    out.flags = TCP_RST | TCP_ACK;
  }
}
