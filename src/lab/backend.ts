/**
 * A backend of `sluice lab`: a TCP echo port that sends back every byte it receives, and an
 * HTTP port that names the backend and the client address it sees (the packet plane keeps the
 * client's own address, so it is the client's, not Sluice's).
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { once } from 'node:events';

export interface LabBackendOptions {
  readonly name: string;
  readonly echoPort: number;
  readonly httpPort: number;
  /** Where to listen (every address by default). */
  readonly host?: string;
}

export class LabBackend {
  private readonly echo: TcpServer;
  private readonly http: HttpServer;
  private readonly sockets = new Set<Socket>();
  connections = 0;

  constructor(readonly options: LabBackendOptions) {
    this.echo = createTcpServer((socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => this.sockets.delete(socket));
      socket.pipe(socket);
    });
    this.http = createHttpServer((req, res) => {
      const peer = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
      const body = `${options.name} answered ${req.method ?? 'GET'} ${req.url ?? '/'} from ${peer}\n`;
      res.writeHead(200, {
        'content-type': 'text/plain',
        'content-length': Buffer.byteLength(body),
        'x-backend': options.name,
      });
      res.end(body);
    });
    this.http.keepAliveTimeout = 60_000;
  }

  async start(): Promise<void> {
    this.echo.listen(this.options.echoPort, this.options.host);
    await once(this.echo, 'listening');
    this.http.listen(this.options.httpPort, this.options.host);
    await once(this.http, 'listening');
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.http.closeAllConnections();
    await Promise.all([
      new Promise((resolve) => this.echo.close(resolve)),
      new Promise((resolve) => this.http.close(resolve)),
    ]);
  }
}
