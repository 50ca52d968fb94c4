/**
 * The packet data plane: IP packets routed into a TUN device are parsed, fed to the flow
 * engine and forwarded with their addresses rewritten (DNAT to the chosen backend, the
 * client's address kept; or full NAT with an inbound SNAT address). At idle timeout Sluice
 * writes the RSTs itself, with the sequence numbers each endpoint accepts, and later segments
 * of an expired or unknown flow are dropped or answered with a RST as the engine decides
 * (B3-B6).
 * Everything the engine sees is a packet, keepalive probes included (B7).
 */
import { readFileSync } from 'node:fs';
import { SluiceError } from '../../core/errors.js';
import type { Clock } from '../../core/clock.js';
import type { ExpiryAction, FlowEngine, PacketVerdict } from '../../core/engine.js';
import { FlowKey, parseIpv4 as parseIpText } from '../../core/flow-key.js';
import type { RuntimeSnapshot } from '../../core/snapshot.js';
import { TCP_ACK, TCP_RST, type TcpSegment } from '../../core/tcp-state.js';
import { endFlowsOfRemovedRules, type DataPlane } from '../plane.js';
import { emptyPacketStats, type PacketEventSink, type PacketStats } from './events.js';
import { HostNetwork, type HostOptions } from './host.js';
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  ParsedPacket,
  VNET_F_NEEDS_CSUM,
  ipText,
  parseIpv4,
  type DropReason,
} from './ipv4.js';
import { rewrite } from './nat.js';
import { RST_PACKET_BYTES, writeRst } from './rst.js';
import { SnatPorts } from './snat.js';
import { parseTcp } from './tcp.js';
import { SLOT_BYTES, Tun, TunError, VNET_HDR_LEN, type TunDevice } from './tun.js';
import { parseUdp } from './udp.js';

export interface PacketPlaneOptions {
  readonly engine: FlowEngine;
  readonly clock: Clock;
  /** TUN device name (`--tun`). */
  readonly tun: string;
  /** Microseconds the TUN reader busy-polls after each batch (`--busy-poll`; 0: off). */
  readonly busyPollMicros?: number;
  /** Full NAT: backends see flows from this address (`--inbound-snat`). */
  readonly inboundSnat?: string;
  /** Set ip_forward and rp_filter instead of refusing to start (`--configure-host`). */
  readonly configureHost?: boolean;
  readonly events?: PacketEventSink;
  /** For tests: a device in place of a real TUN, and host changes left out. */
  readonly device?: TunDevice;
  readonly host?: HostNetwork | null;
  readonly hostOptions?: Partial<HostOptions>;
  /** For tests: opens the device written for a floating-IP backend (a real TUN by default). */
  readonly openDevice?: (name: string) => TunDevice;
}

/** What the packet plane does not do yet: one line each. */
export function packetUnsupported(snapshot: RuntimeSnapshot): string[] {
  const out: string[] = [];
  for (const lb of snapshot.loadBalancers) {
    for (const r of [...lb.loadBalancingRules, ...lb.inboundNatRules]) {
      const kind = r.kind === 'loadBalancingRule' ? 'load-balancing rule' : 'inbound NAT rule';
      if (parseIpText(r.frontend.address) < 0)
        out.push(`${kind} '${r.name}' has an IPv6 frontend (${r.frontend.address})`);
    }
    for (const p of lb.pools) {
      for (const m of p.members) {
        if (parseIpText(m.address) < 0) out.push(`backend '${m.name}' has an IPv6 address (${m.address})`);
      }
    }
  }
  return out;
}

/**
 * Addresses the packet plane would route into its TUN device that are this host's own (any of
 * 127.0.0.0/8, or an address on an interface, in `local`): the kernel answers packets for them
 * itself, with its own RSTs, so nothing would reach Sluice. One line each.
 */
export function localFrontends(snapshot: RuntimeSnapshot, local: ReadonlySet<string>): string[] {
  const isLocal = (a: string): boolean => a.startsWith('127.') || local.has(a);
  const out = new Map<string, string>();
  for (const lb of snapshot.loadBalancers) {
    for (const f of lb.frontends)
      if (isLocal(f.address)) out.set(f.address, `frontend '${f.name}' of load balancer '${lb.name}'`);
    for (const { via } of lb.outboundPaths) {
      const addresses =
        via.kind === 'natGateway'
          ? via.natGateway.publicIpAddresses.map((a) => [a, `NAT gateway '${via.natGateway.name}'`] as const)
          : via.rule.frontends.map((f) => [f.address, `outbound rule '${via.rule.name}'`] as const);
      for (const [a, what] of addresses) if (isLocal(a) && !out.has(a)) out.set(a, what);
    }
  }
  return [...out].map(
    ([address, what]) =>
      `${what} is ${address}, an address of this host: the kernel would answer its packets itself (with its own RSTs) and none would reach Sluice; serve an address that is routed to this host but not assigned to it (use --map)`,
  );
}

/** Read errors in a row after which the plane reports itself failed. */
const FAILED_READS = 16;

/** Whether a network device is up (IFF_UP), undefined when there is none of that name. */
function tunIsUp(name: string): boolean | undefined {
  try {
    return (Number(readFileSync(`/sys/class/net/${name}/flags`, 'utf8').trim()) & 1) === 1;
  } catch {
    return undefined;
  }
}

export class PacketPlane implements DataPlane {
  readonly stats: PacketStats = emptyPacketStats();
  private readonly engine: FlowEngine;
  private device: TunDevice | undefined;
  private host: HostNetwork | null | undefined;
  private started = false;
  private served: string[] = [];
  private readonly snatAddr: number;
  private readonly snat: SnatPorts | undefined;
  private readonly addrCache = new Map<string, number>();
  private readonly reportedErrno = new Set<string>();
  /** Floating-IP backends by address: the device whose packets are routed via that backend. */
  private readonly floating = new Map<string, TunDevice>();
  private floatingSerial = 0;

  private readonly pkt = new ParsedPacket();
  private readonly key = new FlowKey();
  private readonly lookupKey = new FlowKey();
  private readonly seg: TcpSegment = { flags: 0, seq: 0, ack: 0, len: 0, window: 0, wscale: -1 };
  private readonly out = Buffer.alloc(RST_PACKET_BYTES * 2);
  private readonly onExpiry = (a: ExpiryAction): void => this.expire(a);
  private readonly held = (flowId: number, port: number): boolean => this.snatHeld(flowId, port);

  constructor(private readonly options: PacketPlaneOptions) {
    this.engine = options.engine;
    if (options.inboundSnat !== undefined) {
      this.snatAddr = parseIpText(options.inboundSnat);
      if (this.snatAddr < 0)
        throw new TypeError(`--inbound-snat expects an IPv4 address, got '${options.inboundSnat}'`);
      this.snat = new SnatPorts();
    } else this.snatAddr = -1;
    this.device = options.device;
    this.host = options.host;
  }

  packetDrops(): Readonly<Record<string, number>> {
    return this.stats.drops;
  }

  packetsIn(): number {
    return this.stats.packetsIn;
  }

  settleAsk(flowId: number, carried: boolean): boolean {
    return this.engine.settleAsk(flowId, carried, this.onExpiry);
  }

  /** Read errors in a row, with no packet read in between. */
  private failedReads = 0;

  /** The device was closed (the plane stopped). */
  private closed = false;
  /** Why the device stopped carrying traffic for good (its routes went with it). */
  private lost: string | undefined;

  failure(): string | undefined {
    if (!this.started) return undefined;
    const name = this.device?.name ?? '';
    if (this.closed) return `the TUN device ${name} is closed`;
    if (this.lost !== undefined) return this.lost;
    // A device handed in (tests) has no interface of its own to look at.
    if (this.options.device === undefined) {
      const up = tunIsUp(name);
      // The kernel drops the routes into a device that goes down, and Sluice does not put them
      // back: once down, the plane stays failed until Sluice is restarted.
      if (up !== true)
        this.lost = `the TUN device ${name} ${up === undefined ? 'is gone' : 'went down'} (its routes with it): restart Sluice`;
      if (this.lost !== undefined) return this.lost;
    }
    if (this.failedReads >= FAILED_READS) return `reading the TUN device ${name} keeps failing`;
    return undefined;
  }

  get tunName(): string | undefined {
    return this.device?.name;
  }

  listening(): string[] {
    return [...this.served];
  }

  /**
   * Routes what `snapshot` serves into the TUN device (opening it the first time) and
   * releases what it no longer serves. The engine must already hold `snapshot`.
   */
  async apply(snapshot: RuntimeSnapshot): Promise<void> {
    const unsupported = packetUnsupported(snapshot);
    if (unsupported.length > 0)
      throw new SluiceError(
        'SLUICE_PLANE_UNSUPPORTED',
        `${unsupported[0]}: not supported by the packet data plane yet`,
      );
    if (this.device === undefined) {
      this.device = Tun.open(this.options.tun, {
        ...(this.options.busyPollMicros !== undefined ? { busyPollMicros: this.options.busyPollMicros } : {}),
      });
    }
    if (this.host === undefined) {
      const host = new HostNetwork({
        tun: this.device.name,
        configureHost: this.options.configureHost ?? false,
        ...this.options.hostOptions,
      });
      // up() takes back its own steps when one fails; the plane then holds no host state.
      await host.up();
      this.host = host;
    }
    const addresses = new Set<string>();
    const backends = new Set<string>();
    const outboundMembers = new Set<string>();
    const floatingMembers = new Set<string>();
    const floatingFrontends = new Set<string>();
    const served: string[] = [];
    for (const lb of snapshot.loadBalancers) {
      for (const r of lb.loadBalancingRules) {
        addresses.add(r.frontend.address);
        for (const m of r.pool.members) backends.add(m.address);
        if (r.enableFloatingIP) {
          floatingFrontends.add(r.frontend.address);
          for (const m of r.pool.members) floatingMembers.add(m.address);
        }
        for (const p of r.protocols)
          served.push(`${p}|${r.frontend.address}|${r.haPorts ? '*' : r.frontendPort}`);
      }
      // SNAT addresses are routed in like frontends (never made local: the kernel would answer
      // for them), and everything the members send comes in by the source rules.
      for (const path of lb.outboundPaths) {
        outboundMembers.add(path.member.address);
        if (path.via.kind === 'natGateway')
          for (const a of path.via.natGateway.publicIpAddresses) addresses.add(a);
        else for (const f of path.via.rule.frontends) addresses.add(f.address);
      }
      for (const r of lb.inboundNatRules) {
        addresses.add(r.frontend.address);
        for (const m of r.mappings) {
          backends.add(m.member.address);
          for (const p of r.protocols) served.push(`${p}|${r.frontend.address}|${m.frontendPort}`);
        }
        if (r.enableFloatingIP) {
          floatingFrontends.add(r.frontend.address);
          for (const m of r.mappings) floatingMembers.add(m.member.address);
        }
      }
    }
    if (this.options.inboundSnat !== undefined) {
      addresses.add(this.options.inboundSnat);
      // With full NAT the replies come to the SNAT address, routed in like a frontend.
      backends.clear();
    } else {
      // A floating-IP backend answers from the frontend IP it owns: steer those replies in too.
      for (const a of floatingFrontends) backends.add(a);
    }
    for (const m of outboundMembers) backends.add(m);
    const opened = this.openFloating(floatingMembers);
    try {
      // One sync, so a failure (a floating-IP backend not on-link) leaves the host as it was.
      await this.host?.sync(
        addresses,
        backends,
        new Map([...floatingMembers].map((a) => [a, this.floating.get(a)!.name] as const)),
      );
    } catch (err) {
      for (const a of opened) this.closeFloating(a);
      throw err;
    }
    this.served = [...new Set(served)];
    endFlowsOfRemovedRules(this.engine, this.onExpiry);
    // Only now: the flows just ended may have needed their backend's device for a RST.
    for (const a of [...this.floating.keys()]) if (!floatingMembers.has(a)) this.closeFloating(a);
    if (!this.started) {
      this.started = true;
      this.device.start(
        (n) => this.onBatch(n),
        (errno) => {
          this.stats.writeErrors++;
          this.ioError('write', errno);
        },
      );
      this.options.events?.({ type: 'ready', tun: this.device.name, routes: [...addresses] });
    }
  }

  /** Opens a device for each floating-IP backend that has none; returns the addresses opened. */
  private openFloating(members: ReadonlySet<string>): string[] {
    const opened: string[] = [];
    const open =
      this.options.openDevice ?? ((name: string): TunDevice => Tun.open(name, { writeOnly: true }));
    try {
      for (const a of members) {
        if (this.floating.has(a)) continue;
        const name = `${this.device!.name}f${this.floatingSerial++}`;
        if (name.length > 15)
          throw new TunError(
            'ENAMETOOLONG',
            `TUN device name ${name} (for floating IP to ${a}) is longer than 15 characters: choose a shorter --tun`,
          );
        this.floating.set(a, open(name));
        opened.push(a);
      }
    } catch (err) {
      for (const a of opened) this.closeFloating(a);
      throw err;
    }
    return opened;
  }

  private closeFloating(address: string): void {
    this.floating.get(address)?.close();
    this.floating.delete(address);
  }

  /** The RSTs of a reset are written to the TUN device before this returns. */
  expireFlow(flowId: number): boolean {
    return this.engine.expireNow(flowId, this.onExpiry);
  }

  endFlowsOfMember(memberId: string, action: 'reset' | 'close'): number {
    const ids = this.engine.flowsOfMember(memberId);
    // A packet plane cannot close a connection gracefully: anything but a reset is a drop.
    for (const id of ids) this.engine.terminate(id, action === 'reset' ? 'reset' : 'drop', this.onExpiry);
    return ids.length;
  }

  /** When the plane next has timed work: its flows' idle expiries. */
  nextDeadline(): number {
    return this.engine.nextDeadline();
  }

  /** Idle flows due at `now` get their action. */
  runDue(now: number): void {
    this.engine.advance(this.onExpiry, now);
  }

  async stop(): Promise<void> {
    this.abort();
  }

  /** Everything the packet plane holds is released synchronously, so stop and abort are one. */
  abort(): void {
    this.closed = true;
    this.host?.down();
    for (const a of [...this.floating.keys()]) this.closeFloating(a);
    this.device?.close();
  }

  // ---- packets ---------------------------------------------------------------------------

  /** A batch read from the device: packet i at i * SLOT_BYTES. */
  onBatch(count: number): void {
    const dev = this.device!;
    const lengths = dev.lengths;
    for (let i = 0; i < count; i++) {
      const len = lengths[i]!;
      if (len < 0) {
        this.stats.readErrors++;
        this.failedReads++;
        this.ioError('read', len);
        continue;
      }
      this.failedReads = 0;
      try {
        this.handle(dev.buffer, i * SLOT_BYTES, len);
      } catch {
        // A packet that trips the code is one packet lost, never the process.
        this.stats.drops.other++;
      }
    }
  }

  /** Handles one packet (virtio-net header first) of `length` bytes at `offset`. */
  handle(buf: Buffer, offset: number, length: number): void {
    const s = this.stats;
    s.packetsIn++;
    s.bytesIn += length;
    const p = this.pkt;
    const bad = parseIpv4(buf, offset, length, p);
    if (bad !== null) return this.drop(bad);
    if (p.protocol === IPPROTO_TCP) {
      const seg = this.seg;
      const why = parseTcp(buf, p, seg);
      if (why !== null) return this.drop(why);
      const key = this.keyOf(p);
      if (key === null) return this.drop('no-flow');
      const v = this.engine.tcp(key, seg);
      if (v.action === 'forward')
        return this.forward(buf, p, v.direction === 'toBackend', v.created, v.flowId, v);
      if (v.action === 'reset') {
        // Answer the sender from where it sent to: its own view of the flow.
        const n = writeRst(this.out, 0, p.dst, p.dstPort, p.src, p.srcPort, v.rstSeq, v.rstAck, v.rstFlags);
        // A floating-IP backend sent from the frontend IP, which routes back into the TUN device.
        const dev = v.floatingIP && v.direction === 'toClient' ? this.floatingDevice(v.member!) : undefined;
        if (this.send(this.out, 0, n, dev)) s.rstAnswers++;
        return;
      }
      return this.drop(v.reason as DropReason);
    }
    if (p.protocol === IPPROTO_UDP) {
      const payload = parseUdp(buf, p);
      if (typeof payload === 'string') return this.drop(payload);
      const key = this.keyOf(p);
      if (key === null) return this.drop('no-flow');
      const v = this.engine.udp(key, payload);
      if (v.action === 'forward')
        return this.forward(buf, p, v.direction === 'toBackend', v.created, v.flowId, v);
      return this.drop(v.reason as DropReason);
    }
    return this.drop('protocol');
  }

  /** The flow key of a packet as the engine knows it; null for a SNAT port nobody holds. */
  private keyOf(p: ParsedPacket): FlowKey | null {
    if (this.snat !== undefined && p.dst === this.snatAddr) {
      const sn = this.snat;
      if (sn.flowAt(p.dstPort) < 0) return null;
      // A backend's reply to the SNAT port: the engine knows it as addressed to the client.
      return this.key.setV4(
        p.protocol,
        p.src,
        p.srcPort,
        sn.clientAddr[p.dstPort]!,
        sn.clientPort[p.dstPort]!,
      );
    }
    return this.key.setV4(p.protocol, p.src, p.srcPort, p.dst, p.dstPort);
  }

  private forward(
    buf: Buffer,
    p: ParsedPacket,
    toBackend: boolean,
    created: boolean,
    flowId: number,
    v: PacketVerdict,
  ): void {
    if (v.outbound !== null) {
      // Outbound: the member's packets leave from the SNAT address and port; replies to that
      // port go back to the member's own address and port.
      if (toBackend) {
        rewrite(buf, p, 'src', this.addr(v.snatAddress), v.snatPort);
        this.stats.forwardedToBackend++;
      } else {
        rewrite(buf, p, 'dst', this.addr(v.member!.address), v.backendPort);
        this.stats.forwardedToClient++;
      }
      buf[p.base] = buf[p.base]! & VNET_F_NEEDS_CSUM;
      this.send(buf, p.base, VNET_HDR_LEN + p.ipLen);
      return;
    }
    if (toBackend) {
      if (this.snat !== undefined) {
        let port = this.snat.portOf(flowId);
        if (port < 0 && created) {
          port = this.snat.allocate(flowId, p.protocol, p.src, p.srcPort, p.dst, p.dstPort, this.held);
          if (port < 0) {
            this.engine.terminate(flowId, 'drop');
            this.options.events?.({ type: 'snat-exhausted', address: ipText(this.snatAddr) });
          }
        }
        if (port < 0) return this.drop('snat-ports');
        rewrite(buf, p, 'src', this.snatAddr, port);
      }
      if (v.floatingIP) {
        // The backend owns the frontend IP: only the port is mapped, and the packet leaves by the
        // backend's own device, routed via its address.
        rewrite(buf, p, 'dst', p.dst, v.backendPort);
        buf[p.base] = buf[p.base]! & VNET_F_NEEDS_CSUM;
        if (this.send(buf, p.base, VNET_HDR_LEN + p.ipLen, this.floatingDevice(v.member!)))
          this.stats.forwardedToBackend++;
        return;
      }
      rewrite(buf, p, 'dst', this.addr(v.member!.address), v.backendPort);
      this.stats.forwardedToBackend++;
    } else {
      if (this.snat !== undefined && p.dst === this.snatAddr) {
        const port = p.dstPort;
        rewrite(buf, p, 'dst', this.snat.clientAddr[port]!, this.snat.clientPort[port]!);
      }
      rewrite(buf, p, 'src', this.addr(v.rule!.frontend.address), v.frontendPort);
      this.stats.forwardedToClient++;
    }
    // The kernel's "already verified" mark would also cover our rewrite; let the receiver check.
    buf[p.base] = buf[p.base]! & VNET_F_NEEDS_CSUM;
    this.send(buf, p.base, VNET_HDR_LEN + p.ipLen);
  }

  /** An idle flow's end: for `reset`, a RST to each side as that side sees the flow. */
  private expire(a: ExpiryAction): void {
    if (a.action !== 'reset' || a.protocol !== 'Tcp') return;
    const w = a.key.words;
    if (a.outbound !== null) {
      // key is member -> remote. The member hears it from the remote, the remote from the SNAT port.
      let n = writeRst(
        this.out,
        0,
        w[4]!,
        a.key.dstPort,
        w[0]!,
        a.key.srcPort,
        a.toClient.seq,
        a.toClient.ack,
        TCP_RST | TCP_ACK,
      );
      if (this.send(this.out, 0, n)) this.stats.rstToClient++;
      n = writeRst(
        this.out,
        RST_PACKET_BYTES,
        this.addr(a.snatAddress),
        a.snatPort,
        w[4]!,
        a.key.dstPort,
        a.toBackend.seq,
        a.toBackend.ack,
        TCP_RST | TCP_ACK,
      );
      if (this.send(this.out, RST_PACKET_BYTES, n)) this.stats.rstToBackend++;
      return;
    }
    const client = w[0]!;
    const clientPort = a.key.srcPort;
    const frontend = w[4]!;
    let n = writeRst(
      this.out,
      0,
      frontend,
      a.frontendPort,
      client,
      clientPort,
      a.toClient.seq,
      a.toClient.ack,
      TCP_RST | TCP_ACK,
    );
    if (this.send(this.out, 0, n)) this.stats.rstToClient++;
    let src = client;
    let srcPort = clientPort;
    if (this.snat !== undefined) {
      const port = this.snat.portOf(a.flowId);
      if (port >= 0) {
        src = this.snatAddr;
        srcPort = port;
      }
    }
    n = writeRst(
      this.out,
      RST_PACKET_BYTES,
      src,
      srcPort,
      a.floatingIP ? frontend : this.addr(a.member.address),
      a.backendPort,
      a.toBackend.seq,
      a.toBackend.ack,
      TCP_RST | TCP_ACK,
    );
    const dev = a.floatingIP ? this.floatingDevice(a.member) : undefined;
    if (this.send(this.out, RST_PACKET_BYTES, n, dev)) this.stats.rstToBackend++;
  }

  private snatHeld(flowId: number, port: number): boolean {
    const sn = this.snat!;
    const k = this.lookupKey.setV4(
      sn.protocol[port]!,
      sn.clientAddr[port]!,
      sn.clientPort[port]!,
      sn.frontendAddr[port]!,
      sn.frontendPort[port]!,
    );
    return this.engine.lookup(k)?.flowId === flowId;
  }

  /**
   * The device for a floating-IP flow's backend; null when the backend no longer has one (its
   * rule stopped floating while the flow lived), and the packet is then lost.
   */
  private floatingDevice(member: { readonly address: string }): TunDevice | null {
    return this.floating.get(member.address) ?? null;
  }

  private send(buf: Buffer, offset: number, length: number, device?: TunDevice | null): boolean {
    if (device === null) {
      this.stats.drops.other++;
      return false;
    }
    const n = (device ?? this.device!).write(buf, offset, length);
    if (n >= 0) return true;
    this.stats.writeErrors++;
    this.ioError('write', n);
    return false;
  }

  private drop(reason: DropReason): void {
    const d = this.stats.drops;
    if (d[reason] === undefined) d.other++;
    else d[reason]++;
  }

  private addr(text: string): number {
    let a = this.addrCache.get(text);
    if (a === undefined) {
      a = parseIpText(text);
      this.addrCache.set(text, a);
    }
    return a;
  }

  private ioError(op: 'read' | 'write', errno: number): void {
    const k = `${op}${errno}`;
    if (this.reportedErrno.has(k)) return;
    this.reportedErrno.add(k);
    this.options.events?.({ type: 'io-error', op, errno: -errno });
  }
}
