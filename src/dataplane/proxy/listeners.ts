/** The sockets the proxy plane listens on: one per frontend address, protocol and port. */
import { SluiceError } from '../../core/errors.js';
import { createServer, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { InboundRule, RuntimeSnapshot } from '../../core/snapshot.js';
import type { ListenerRef } from './events.js';
import { errorName, listenHandle, tcpHandles, type TcpHandle } from './tcp-handles.js';

export function listenerKey(l: Pick<ListenerRef, 'protocol' | 'address' | 'port'>): string {
  return `${l.protocol}|${l.address}|${l.port}`;
}

/** Every listener a snapshot calls for, keyed by protocol, address and port. */
export function listenersOf(snapshot: RuntimeSnapshot): Map<string, ListenerRef> {
  const out = new Map<string, ListenerRef>();
  const add = (loadBalancer: string, rule: InboundRule, port: number): void => {
    for (const protocol of rule.protocols) {
      const l: ListenerRef = {
        protocol,
        address: rule.frontend.address,
        port,
        ruleName: rule.name,
        ruleKind: rule.kind,
        loadBalancer,
      };
      const key = listenerKey(l);
      if (!out.has(key)) out.set(key, l);
    }
  };
  for (const lb of snapshot.loadBalancers) {
    for (const r of lb.loadBalancingRules) add(lb.name, r, r.frontendPort);
    for (const r of lb.inboundNatRules) for (const m of r.mappings) add(lb.name, r, m.frontendPort);
  }
  return out;
}

/** What the proxy plane cannot do, one line each, pointing to the packet plane. */
export function proxyUnsupported(snapshot: RuntimeSnapshot): string[] {
  const out: string[] = [];
  for (const lb of snapshot.loadBalancers) {
    for (const r of lb.loadBalancingRules) {
      if (r.haPorts && lb.instancePublicIp !== undefined)
        out.push(
          `public IP '${lb.name}' (instance-level) forwards every port: give the ports to serve with --instance-ports PORTS`,
        );
      else if (r.haPorts) out.push(`load-balancing rule '${r.name}' uses HA ports (frontendPort 0)`);
      if (r.enableFloatingIP) out.push(`load-balancing rule '${r.name}' enables floating IP`);
    }
    for (const r of lb.inboundNatRules) {
      if (r.enableFloatingIP) out.push(`inbound NAT rule '${r.name}' enables floating IP`);
    }
    for (const r of lb.outboundRules)
      out.push(
        lb.instancePublicIp !== undefined
          ? `public IP '${lb.name}' (instance-level) carries the VM's own outbound connections, which need SNAT`
          : `outbound rule '${r.name}' needs SNAT of backend traffic`,
      );
  }
  return out;
}

export type OpenListener =
  | { readonly ref: ListenerRef; readonly kind: 'tcp'; readonly server: Server }
  | { readonly ref: ListenerRef; readonly kind: 'tcp-handle'; readonly handle: TcpHandle }
  | { readonly ref: ListenerRef; readonly kind: 'udp'; readonly socket: UdpSocket };

/** Where accepted TCP connections go: as libuv handles or as `net.Socket`s. */
export type TcpAcceptor = (
  | { readonly relay: 'handles'; readonly onConnection: (h: TcpHandle, ref: ListenerRef) => void }
  | { readonly relay: 'sockets'; readonly onConnection: (s: Socket, ref: ListenerRef) => void }
) & {
  /** An accept failed (EMFILE when descriptors run out): it costs one connection, no more. */
  readonly onAcceptError: (err: NodeJS.ErrnoException, ref: ListenerRef) => void;
};

const BACKLOG = 4096;

/** A listener that cannot open; `errno` is the system's reason (EADDRINUSE...). */
export class ListenError extends SluiceError {
  constructor(
    readonly ref: ListenerRef,
    readonly errno: string,
    message: string,
  ) {
    super('SLUICE_PLANE_LISTEN', message);
  }
}

/** Opens one listener; rejects with a ListenError that names the rule and the address. */
export function openListener(ref: ListenerRef, acceptor: TcpAcceptor): Promise<OpenListener> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => {
      const code = err.code ?? 'ERROR';
      const why =
        code === 'EADDRINUSE'
          ? 'the address and port are already in use'
          : code === 'EADDRNOTAVAIL'
            ? 'the address is not assigned to this host (use --map to run an Azure address locally)'
            : code === 'EACCES'
              ? 'permission denied (ports below 1024 need privileges)'
              : err.message;
      const kind = ref.ruleKind === 'loadBalancingRule' ? 'load-balancing rule' : 'inbound NAT rule';
      reject(
        new ListenError(
          ref,
          code,
          `${kind} '${ref.ruleName}': cannot listen on ${ref.protocol} ${ref.address}:${ref.port}: ${why}`,
        ),
      );
    };
    if (ref.protocol === 'Tcp' && acceptor.relay === 'handles' && tcpHandles !== undefined) {
      const onConnection = acceptor.onConnection;
      const h = listenHandle(tcpHandles, ref.address, ref.port, BACKLOG);
      if (typeof h === 'number') {
        const code = errorName(h);
        fail(Object.assign(new Error(`listen ${code} ${ref.address}:${ref.port}`), { code }));
        return;
      }
      h.onconnection = (err, client) => {
        if (err === 0 && client !== undefined) onConnection(client, ref);
        else {
          const code = errorName(err);
          acceptor.onAcceptError(Object.assign(new Error(`accept ${code}`), { code }), ref);
        }
      };
      resolve({ ref, kind: 'tcp-handle', handle: h });
    } else if (ref.protocol === 'Tcp' && acceptor.relay === 'sockets') {
      const onConnection = acceptor.onConnection;
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
        onConnection(socket, ref),
      );
      server.once('error', fail);
      server.listen({ host: ref.address, port: ref.port, backlog: BACKLOG, exclusive: true }, () => {
        server.off('error', fail);
        server.on('error', (err: NodeJS.ErrnoException) => acceptor.onAcceptError(err, ref));
        resolve({ ref, kind: 'tcp', server });
      });
    } else if (ref.protocol === 'Tcp') {
      reject(new Error('libuv TCP handles are not available in this Node'));
    } else {
      const socket = createSocket({ type: isIPv6(ref.address) ? 'udp6' : 'udp4' });
      socket.once('error', fail);
      socket.bind({ address: ref.address, port: ref.port, exclusive: true }, () => {
        socket.off('error', fail);
        resolve({ ref, kind: 'udp', socket });
      });
    }
  });
}

/**
 * Stops listening. A TCP server's own close callback waits for every connection it accepted,
 * blackholed ones included, so only the listening socket is waited for here.
 */
export function closeListener(l: OpenListener): Promise<void> {
  return new Promise((resolve) => {
    if (l.kind === 'tcp') {
      l.server.close();
      setImmediate(resolve);
    } else if (l.kind === 'tcp-handle') l.handle.close(() => resolve());
    else l.socket.close(() => resolve());
  });
}
