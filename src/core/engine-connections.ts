/**
 * The connection-level entry of the flow engine (the proxy plane's, which sees sockets and
 * bytes rather than segments): a connection opened, bytes relayed, a half-close, a close.
 */
import type { EngineState } from './engine-state.js';
import type { Records } from './engine-records.js';
import { refused } from './engine-records.js';
import type { Direction } from './engine-views.js';
import type { CloseReason, RefuseReason } from './events.js';
import { FlowKey } from './flow-key.js';
import { DIR_ORIG, DIR_REPLY } from './flow-table.js';
import { protocolNumber } from './rule-table.js';
import type { BackendMember, InboundRule, Protocol } from './snapshot.js';
import {
  META_NO_SEQ,
  ST_TIME_WAIT,
  ST_TOMBSTONE,
  ST_UDP,
  halfCloseAccepted,
  trackAccepted,
} from './tcp-state.js';

export type OpenResult =
  | {
      readonly ok: true;
      readonly flowId: number;
      readonly rule: InboundRule;
      readonly member: BackendMember;
      readonly backendAddress: string;
      readonly backendPort: number;
    }
  | { readonly ok: false; readonly reason: RefuseReason };

export class Connections {
  private readonly scratchKey = new FlowKey();

  constructor(
    private readonly s: EngineState,
    private readonly records: Records,
  ) {}

  /**
   * A connection the proxy accepted (TCP) or a first datagram from a client (UDP): creates
   * the flow, established, and chooses its backend. A finished flow on the same 5-tuple
   * gives way; a live one is superseded, since a socket layer never has two.
   */
  open(
    protocol: Protocol,
    clientIp: string,
    clientPort: number,
    frontendIp: string,
    frontendPort: number,
  ): OpenResult {
    const s = this.s;
    const now = s.clock.now();
    const proto = protocolNumber(protocol);
    const key = this.scratchKey.set(proto, clientIp, clientPort, frontendIp, frontendPort);
    const t = s.table;
    const e = t.find(key.words, 0);
    if (e !== -1) {
      const slot = e >> 1;
      if ((e & 1) === DIR_REPLY) return this.refuse('tuple-in-use', proto, key, now);
      if (t.state(slot) === ST_TOMBSTONE) this.records.removeSlot(slot);
      else this.records.endFlow(slot, 'superseded', now);
    }
    const match = s.paths.rules.lookup(proto, key.words, 4, key.family, frontendPort);
    if (match === undefined) return this.refuse('no-rule', proto, key, now);
    const slot = this.records.createInbound(match, key.words, now);
    if (refused(slot)) return { ok: false, reason: slot };
    if (protocol === 'Tcp') trackAccepted(t, slot);
    else {
      t.setState(slot, ST_UDP);
      t.setMeta(slot, t.meta(slot) | META_NO_SEQ);
    }
    this.records.emitCreated(slot, now);
    const m = s.members.member(t.memberOf(slot));
    return {
      ok: true,
      flowId: t.idOf(slot),
      rule: match.rule,
      member: m,
      backendAddress: m.address,
      backendPort: t.backendPortOf(slot),
    };
  }

  private refuse(reason: RefuseReason, proto: number, key: FlowKey, now: number): OpenResult {
    this.records.refuse(reason, proto, key.words, now, undefined);
    return { ok: false, reason };
  }

  /** Bytes relayed on a flow: refreshes its idle timer (B7). False when the flow is gone. */
  activity(flowId: number, direction: Direction, bytes: number): boolean {
    const t = this.s.table;
    const slot = t.slotOf(flowId);
    if (slot < 0 || t.state(slot) === ST_TOMBSTONE) return false;
    this.records.touch(slot, this.s.clock.now());
    this.s.count(slot, direction === 'toBackend' ? DIR_ORIG : DIR_REPLY, bytes);
    return true;
  }

  /**
   * A FIN from one side (`toBackend`: the client half-closed). The flow leaves ESTABLISHED,
   * so at idle it is dropped without a RST (B5).
   */
  halfClose(flowId: number, direction: Direction): boolean {
    const t = this.s.table;
    const slot = t.slotOf(flowId);
    if (slot < 0 || t.state(slot) === ST_TOMBSTONE || t.state(slot) === ST_UDP) return false;
    const before = t.state(slot);
    halfCloseAccepted(t, slot, direction === 'toBackend' ? DIR_ORIG : DIR_REPLY);
    this.records.touch(slot, this.s.clock.now());
    if (t.state(slot) !== before && t.state(slot) === ST_TIME_WAIT) {
      this.s.wheel.schedule(slot, this.s.deadlineOf(slot));
    }
    return true;
  }

  /** The flow ended (both sides closed, a reset, an unreachable backend...): forget it. */
  close(flowId: number, reason: CloseReason): boolean {
    const t = this.s.table;
    const slot = t.slotOf(flowId);
    if (slot < 0) return false;
    if (t.state(slot) === ST_TOMBSTONE) {
      this.records.removeSlot(slot);
      return true;
    }
    this.records.endFlow(slot, reason, this.s.clock.now());
    return true;
  }
}
