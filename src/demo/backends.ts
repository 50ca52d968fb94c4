/**
 * The servers `sluice demo` puts behind the load balancer, so a user can watch idle
 * timeouts act on real connections without bringing servers of their own. Each backend
 * names itself in every answer, which makes the distribution visible.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';

export interface DemoBackendOptions {
  readonly name: string;
  readonly address: string;
  /** TCP ports that echo every byte back, after a greeting line naming the backend. */
  readonly echoPorts: readonly number[];
  /** UDP ports that answer each datagram with `<name>: <datagram>`. */
  readonly udpPorts: readonly number[];
  /** TCP ports that answer HTTP requests with the backend's name (also a Tcp/Http probe target). */
  readonly httpPorts: readonly number[];
  /** Called for every connection event, for the demo's own narration. */
  readonly onEvent?: (event: DemoBackendEvent) => void;
}

export type DemoBackendEvent =
  | { readonly type: 'connection'; readonly backend: string; readonly port: number; readonly peer: string }
  | {
      readonly type: 'closed';
      readonly backend: string;
      readonly port: number;
      readonly peer: string;
      readonly error?: string;
    };

export class DemoBackend {
  private readonly tcpServers: TcpServer[] = [];
  private readonly httpServers: HttpServer[] = [];
  private readonly udpSockets: UdpSocket[] = [];
  private readonly sockets = new Set<Socket>();

  constructor(readonly options: DemoBackendOptions) {}

  async start(): Promise<void> {
    const { address, name } = this.options;
    try {
      for (const port of this.options.echoPorts) {
        const server = createTcpServer((socket) => this.echo(socket, port));
        server.listen(port, address);
        await once(server, 'listening');
        this.tcpServers.push(server);
      }
      for (const port of this.options.httpPorts) {
        const server = createHttpServer((req, res) => {
          res.setHeader('content-type', 'text/plain');
          res.end(`${name} (${address}) answered ${req.method ?? 'GET'} ${req.url ?? '/'}\n`);
        });
        server.keepAliveTimeout = 0;
        server.listen(port, address);
        await once(server, 'listening');
        this.httpServers.push(server);
      }
      for (const port of this.options.udpPorts) {
        const socket = createSocket('udp4');
        socket.on('message', (msg, peer) => {
          socket.send(Buffer.concat([Buffer.from(`${name}: `), msg]), peer.port, peer.address);
        });
        socket.bind(port, address);
        await once(socket, 'listening');
        this.udpSockets.push(socket);
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private echo(socket: Socket, port: number): void {
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const backend = this.options.name;
    this.sockets.add(socket);
    this.options.onEvent?.({ type: 'connection', backend, port, peer });
    socket.write(`hello from ${backend} (${this.options.address}:${port})\n`);
    socket.pipe(socket);
    let error: string | undefined;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.options.onEvent?.({ type: 'closed', backend, port, peer, ...(error ? { error } : {}) });
    });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const closing: Promise<unknown>[] = [];
    for (const server of [...this.tcpServers, ...this.httpServers]) {
      if (server.listening) closing.push(new Promise((resolve) => server.close(resolve)));
    }
    for (const server of this.httpServers) server.closeAllConnections();
    for (const socket of this.udpSockets) closing.push(new Promise<void>((resolve) => socket.close(() => resolve())));
    this.tcpServers.length = 0;
    this.httpServers.length = 0;
    this.udpSockets.length = 0;
    await Promise.all(closing);
  }
}
