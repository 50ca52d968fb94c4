/**
 * UDP through user-space sockets: per client address and port, one upstream socket to the
 * backend the engine chose; replies leave from the frontend's own address and port. UDP
 * flows live by the engine's fixed UDP flow timeout, never the rule's TCP idle timeout (B8).
 *
 * Each flow's upstream socket is a descriptor, so flows come out of the UDP share of the
 * budget, and each client address out of its own part of it: a datagram that would start a
 * flow beyond them is dropped and counted, as a load balancer out of room drops it.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { UdpFlowBudget } from '../../core/budget.js';
import type { ExpiryAction, FlowEngine } from '../../core/engine.js';
import type { ProxyEventSink, ProxyStats } from './events.js';

const FLOW = Symbol('sluice.udp-flow');

interface UpstreamSocket extends UdpSocket {
  [FLOW]?: UdpFlow;
}

interface UdpFlow {
  readonly id: number;
  readonly key: string;
  readonly frontend: UdpFrontend;
  readonly upstream: UpstreamSocket;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly backendAddress: string;
  readonly backendPort: number;
}

/** One frontend address and port receiving UDP for a rule. */
export class UdpFrontend {
  readonly flows = new Map<string, UdpFlow>();

  constructor(
    readonly proxy: UdpProxy,
    readonly socket: UdpSocket,
    readonly address: string,
    readonly port: number,
  ) {
    socket.on('message', (msg, rinfo) => proxy.fromClient(this, msg, rinfo));
  }
}

function onUpstreamMessage(this: UpstreamSocket, msg: Buffer, rinfo: RemoteInfo): void {
  const f = this[FLOW]!;
  // Only the chosen backend may answer through this flow.
  if (rinfo.port !== f.backendPort || rinfo.address !== f.backendAddress) return;
  f.frontend.proxy.fromBackend(f, msg);
}

function onUpstreamError(this: UpstreamSocket): void {
  // ICMP port unreachable and the like: the datagram is lost, as it would be on the wire.
  const f = this[FLOW]!;
  f.frontend.proxy.stats.udpDatagramsDropped++;
}

export class UdpProxy {
  private readonly flows = new Map<number, UdpFlow>();

  constructor(
    private readonly engine: FlowEngine,
    readonly stats: ProxyStats,
    /** The UDP share and each client's part of it; unbounded when not given. */
    private readonly budget: UdpFlowBudget = new UdpFlowBudget({
      udpFlows: undefined,
      udpFlowsPerClient: undefined,
    }),
    private readonly events?: ProxyEventSink,
  ) {}

  get activeFlows(): number {
    return this.flows.size;
  }

  frontend(socket: UdpSocket, address: string, port: number): UdpFrontend {
    return new UdpFrontend(this, socket, address, port);
  }

  fromClient(fe: UdpFrontend, msg: Buffer, rinfo: RemoteInfo): void {
    const key = `${rinfo.address}|${rinfo.port}`;
    let f = fe.flows.get(key);
    if (f === undefined || !this.engine.activity(f.id, 'toBackend', msg.length)) {
      if (f !== undefined) this.remove(f);
      f = this.open(fe, key, rinfo, msg.length);
      if (f === undefined) {
        this.stats.udpDatagramsDropped++;
        return;
      }
    }
    this.stats.udpDatagramsToBackend++;
    this.stats.bytesToBackend += msg.length;
    f.upstream.send(msg, f.backendPort, f.backendAddress);
  }

  fromBackend(f: UdpFlow, msg: Buffer): void {
    if (!this.engine.activity(f.id, 'toClient', msg.length)) return;
    this.stats.udpDatagramsToClient++;
    this.stats.bytesToClient += msg.length;
    f.frontend.socket.send(msg, f.clientPort, f.clientAddress);
  }

  private open(fe: UdpFrontend, key: string, rinfo: RemoteInfo, bytes: number): UdpFlow | undefined {
    const full = this.budget.take(rinfo.address);
    if (full !== undefined) {
      this.stats.refused++;
      this.stats.udpRefusedShare++;
      this.events?.({
        type: 'share-full',
        reason: full,
        client: `${rinfo.address}:${rinfo.port}`,
        capacity: (full === 'udp-flows' ? this.budget.flows.capacity : this.budget.perClient.perKey) ?? 0,
      });
      return undefined;
    }
    const open = this.engine.open('Udp', rinfo.address, rinfo.port, fe.address, fe.port);
    if (!open.ok) {
      this.budget.give(rinfo.address);
      this.stats.refused++;
      return undefined;
    }
    this.engine.activity(open.flowId, 'toBackend', bytes);
    const upstream: UpstreamSocket = createSocket(isIPv6(open.backendAddress) ? 'udp6' : 'udp4');
    const f: UdpFlow = {
      id: open.flowId,
      key,
      frontend: fe,
      upstream,
      clientAddress: rinfo.address,
      clientPort: rinfo.port,
      backendAddress: open.backendAddress,
      backendPort: open.backendPort,
    };
    upstream[FLOW] = f;
    upstream.on('message', onUpstreamMessage);
    upstream.on('error', onUpstreamError);
    fe.flows.set(key, f);
    this.flows.set(f.id, f);
    return f;
  }

  private remove(f: UdpFlow): void {
    f.frontend.flows.delete(f.key);
    this.flows.delete(f.id);
    f.upstream.close();
    this.budget.give(f.clientAddress);
  }

  /** The engine's UDP flow timeout passed: forget the flow, silently. */
  expire(a: ExpiryAction): void {
    const f = this.flows.get(a.flowId);
    if (f !== undefined) this.remove(f);
  }

  /** Ends a flow now (member removed, shutdown). */
  terminate(flowId: number): void {
    const f = this.flows.get(flowId);
    if (f === undefined) return;
    this.remove(f);
    this.engine.close(flowId, 'terminated');
  }

  flowIds(): number[] {
    return [...this.flows.keys()];
  }

  closeAll(): void {
    for (const f of [...this.flows.values()]) {
      this.remove(f);
      this.engine.close(f.id, 'shutdown');
    }
  }
}
