/**
 * The servers `sluice demo` puts behind the load balancer, so a user can watch idle timeouts
 * act on real connections without bringing servers of their own. Every answer names the
 * backend, which makes the distribution visible.
 *
 * A TCP port speaks HTTP when the first bytes are an HTTP request (so `curl` works), and
 * otherwise echoes each line prefixed with the backend's name (so `nc` works). UDP ports
 * answer each datagram the same way.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';

export interface DemoBackendOptions {
  readonly name: string;
  readonly address: string;
  readonly tcpPorts: readonly number[];
  readonly udpPorts: readonly number[];
  /** Every connection's start and end, for the demo's narration. */
  readonly onEvent?: (event: DemoBackendEvent) => void;
}

export type DemoBackendEvent =
  | { readonly type: 'connection'; readonly backend: string; readonly port: number; readonly peer: string }
  | {
      readonly type: 'closed';
      readonly backend: string;
      readonly port: number;
      readonly peer: string;
      /** The error that ended the connection (ECONNRESET when the load balancer reset it). */
      readonly error?: string;
    };

const HTTP_REQUEST = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) \S+ HTTP\/1\.[01]\r?\n/;

export class DemoBackend {
  private readonly tcpServers: TcpServer[] = [];
  private readonly udpSockets: UdpSocket[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly http: HttpServer;

  constructor(readonly options: DemoBackendOptions) {
    this.http = createHttpServer((req, res) => {
      const body = `${options.name} (${options.address}) answered ${req.method ?? 'GET'} ${req.url ?? '/'}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  }

  async start(): Promise<void> {
    try {
      for (const port of this.options.tcpPorts) {
        const server = createTcpServer((socket) => this.accept(socket, port));
        server.listen(port, this.options.address);
        await once(server, 'listening');
        this.tcpServers.push(server);
      }
      for (const port of this.options.udpPorts) {
        const socket = createSocket('udp4');
        socket.on('message', (msg, peer) => {
          socket.send(`${this.options.name}: ${msg.toString().trimEnd()}\n`, peer.port, peer.address);
        });
        socket.bind(port, this.options.address);
        await once(socket, 'listening');
        this.udpSockets.push(socket);
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private accept(socket: Socket, port: number): void {
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const backend = this.options.name;
    this.sockets.add(socket);
    let error: string | undefined;
    let spoke = false;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () => {
      this.sockets.delete(socket);
      // Health probes connect and leave without a word; they are not worth narrating.
      if (spoke || error)
        this.options.onEvent?.({ type: 'closed', backend, port, peer, ...(error ? { error } : {}) });
    });
    socket.once('data', (first: Buffer) => {
      spoke = true;
      this.options.onEvent?.({ type: 'connection', backend, port, peer });
      if (HTTP_REQUEST.test(first.toString('latin1', 0, Math.min(first.length, 256)))) {
        socket.pause();
        socket.unshift(first);
        this.http.emit('connection', socket);
        socket.resume();
        return;
      }
      this.echo(socket, first);
      socket.on('data', (d: Buffer) => this.echo(socket, d));
      socket.on('end', () => socket.end());
    });
  }

  private echo(socket: Socket, data: Buffer): void {
    const text = data.toString().replace(/\r?\n$/, '');
    for (const line of text.split(/\r?\n/)) socket.write(`${this.options.name}: ${line}\n`);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const closing: Promise<unknown>[] = [];
    for (const server of this.tcpServers) closing.push(new Promise((resolve) => server.close(resolve)));
    for (const socket of this.udpSockets)
      closing.push(new Promise<void>((resolve) => socket.close(() => resolve())));
    this.tcpServers.length = 0;
    this.udpSockets.length = 0;
    await Promise.all(closing);
  }
}
