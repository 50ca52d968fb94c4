/**
 * Plays both TCP endpoints of one flow through the engine's packet API, keeping each side's
 * next sequence number and last ACK like a real stack would, so tests read as conversations.
 */
import { FlowKey, PROTO_TCP } from '../../../src/core/flow-key.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpSegment } from '../../../src/core/tcp-state.js';
import type { ExpiryAction, FlowEngine, PacketVerdict } from '../../../src/core/engine.js';

export interface Copied {
  flowId: number;
  action: string;
  protocol: string;
  toClient: { seq: number; ack: number };
  toBackend: { seq: number; ack: number };
  key: string;
  backendPort: number;
  memberAddress: string;
}

export function copyAction(a: ExpiryAction): Copied {
  return {
    flowId: a.flowId,
    action: a.action,
    protocol: a.protocol,
    toClient: { ...a.toClient },
    toBackend: { ...a.toBackend },
    key: a.key.toString(),
    backendPort: a.backendPort,
    memberAddress: a.member.address,
  };
}

/** Runs `advance` and returns copies of the actions. */
export function advance(engine: FlowEngine): Copied[] {
  const out: Copied[] = [];
  engine.advance((a) => out.push(copyAction(a)));
  return out;
}

export interface VerdictCopy {
  action: string;
  direction: string;
  flowId: number;
  created: boolean;
  trusted: boolean;
  reason: string;
  member: string | null;
  backendPort: number;
  rstSeq: number;
  rstAck: number;
  rstFlags: number;
}

export function copyVerdict(v: PacketVerdict): VerdictCopy {
  return {
    action: v.action,
    direction: v.direction,
    flowId: v.flowId,
    created: v.created,
    trusted: v.trusted,
    reason: v.reason,
    member: v.member?.address ?? null,
    backendPort: v.backendPort,
    rstSeq: v.rstSeq,
    rstAck: v.rstAck,
    rstFlags: v.rstFlags,
  };
}

export class TcpConversation {
  /** Next sequence number each side will send. */
  clientNext: number;
  backendNext: number;
  /** What each side has received (its RCV.NXT) and what it last acknowledged. */
  clientRcv = 0;
  backendRcv = 0;
  backendAddress = '';
  backendPort = 0;
  flowId = -1;

  constructor(
    readonly engine: FlowEngine,
    readonly client = '192.0.2.10',
    readonly clientPort = 40000,
    readonly frontend = '10.0.0.1',
    readonly frontendPort = 80,
    clientIsn = 1000,
    backendIsn = 5000,
  ) {
    this.clientNext = clientIsn;
    this.backendNext = backendIsn;
  }

  origKey(): FlowKey {
    return new FlowKey().set(PROTO_TCP, this.client, this.clientPort, this.frontend, this.frontendPort);
  }

  replyKey(): FlowKey {
    return new FlowKey().set(PROTO_TCP, this.backendAddress, this.backendPort, this.client, this.clientPort);
  }

  fromClient(seg: Partial<TcpSegment> & { flags: number }): VerdictCopy {
    const full: TcpSegment = { seq: this.clientNext, ack: this.clientRcv, len: 0, window: 502, ...seg };
    const v = copyVerdict(this.engine.tcp(this.origKey(), full));
    if (v.member !== null && this.backendAddress === '') {
      this.backendAddress = v.member;
      this.backendPort = v.backendPort;
    }
    if (v.flowId >= 0 && v.created) this.flowId = v.flowId;
    return v;
  }

  fromBackend(seg: Partial<TcpSegment> & { flags: number }): VerdictCopy {
    const full: TcpSegment = { seq: this.backendNext, ack: this.backendRcv, len: 0, window: 502, ...seg };
    return copyVerdict(this.engine.tcp(this.replyKey(), full));
  }

  /** SYN, SYN-ACK, ACK with window scaling on both sides. */
  handshake(): void {
    this.fromClient({ flags: TCP_SYN, window: 64240, wscale: 7, ack: 0 });
    this.clientNext = (this.clientNext + 1) >>> 0;
    this.backendRcv = this.clientNext;
    this.fromBackend({ flags: TCP_SYN | TCP_ACK, window: 65160, wscale: 7 });
    this.backendNext = (this.backendNext + 1) >>> 0;
    this.clientRcv = this.backendNext;
    this.fromClient({ flags: TCP_ACK });
  }

  /** The client sends `len` bytes; the backend receives them and, if `ack`, acknowledges. */
  clientSends(len: number, ack = true): VerdictCopy {
    const v = this.fromClient({ flags: TCP_ACK, len });
    this.clientNext = (this.clientNext + len) >>> 0;
    this.backendRcv = this.clientNext;
    if (ack) this.fromBackend({ flags: TCP_ACK });
    return v;
  }

  backendSends(len: number, ack = true): VerdictCopy {
    const v = this.fromBackend({ flags: TCP_ACK, len });
    this.backendNext = (this.backendNext + len) >>> 0;
    this.clientRcv = this.backendNext;
    if (ack) this.fromClient({ flags: TCP_ACK });
    return v;
  }

  clientFin(): VerdictCopy {
    const v = this.fromClient({ flags: TCP_FIN | TCP_ACK });
    this.clientNext = (this.clientNext + 1) >>> 0;
    this.backendRcv = this.clientNext;
    return v;
  }

  backendFin(): VerdictCopy {
    const v = this.fromBackend({ flags: TCP_FIN | TCP_ACK });
    this.backendNext = (this.backendNext + 1) >>> 0;
    this.clientRcv = this.backendNext;
    return v;
  }

  clientRst(): VerdictCopy {
    return this.fromClient({ flags: TCP_RST | TCP_ACK });
  }
}
