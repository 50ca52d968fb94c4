/** Real sockets on loopback for tests: servers, clients and bounded waits. */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

/** A TCP port free on `address` now (the OS picks it). */
export async function freePort(address: string): Promise<number> {
  const s = createServer();
  s.listen(0, address);
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Resolves with `promise`, or rejects after `ms` real milliseconds naming `what`. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` every `everyMs` until it returns a value other than undefined or false, and
 * gives up (rejecting, and polling no more) after `ms` real milliseconds.
 */
export async function waitUntil<T>(
  ms: number,
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  everyMs = 10,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * A backend: on each connection writes `<name>\n`, then echoes. Keeps the accepted sockets
 * and what happened to them, so tests can assert on the backend's side of a flow.
 */
export class EchoBackend {
  readonly sockets: Socket[] = [];
  readonly errors: { socket: Socket; code: string; at: number }[] = [];
  readonly received: Buffer[] = [];
  private server: Server | undefined;

  constructor(
    readonly name: string,
    readonly address: string,
  ) {}

  async listen(port: number): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (s) => {
      this.sockets.push(s);
      s.on('error', (err: NodeJS.ErrnoException) =>
        this.errors.push({ socket: s, code: err.code ?? err.message, at: Date.now() }),
      );
      s.on('data', (d) => {
        this.received.push(d);
        s.write(d);
      });
      s.on('end', () => s.end());
      s.write(`${this.name}\n`);
    });
    server.listen(port, this.address);
    await once(server, 'listening');
    this.server = server;
  }

  bytesReceived(): number {
    return this.received.reduce((n, b) => n + b.length, 0);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise((r) => server.close(r));
  }
}

export interface TestClient {
  readonly socket: Socket;
  /** The first line the backend wrote: its name. */
  readonly greeting: Promise<string>;
  readonly data: Buffer[];
  readonly error: Promise<NodeJS.ErrnoException>;
  readonly ended: Promise<void>;
  readonly events: string[];
}

export function tcpClient(
  address: string,
  port: number,
  localAddress?: string,
  localPort?: number,
): TestClient {
  const socket = connect({
    host: address,
    port,
    ...(localAddress ? { localAddress } : {}),
    ...(localPort ? { localPort } : {}),
    allowHalfOpen: true,
  });
  const data: Buffer[] = [];
  const events: string[] = [];
  const greeting = new Promise<string>((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer): void => {
      text += d.toString();
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        socket.off('data', onData);
        resolve(text.slice(0, nl));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before a greeting')));
  });
  greeting.catch(() => {});
  socket.on('data', (d) => data.push(d));
  const error = new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
  const ended = new Promise<void>((resolve) => socket.once('end', resolve));
  socket.on('error', (e: NodeJS.ErrnoException) => events.push(`error:${e.code ?? e.message}`));
  socket.on('end', () => events.push('end'));
  socket.on('close', () => events.push('close'));
  return { socket, greeting, data, error, ended, events };
}

/** N TCP connections through the balancer that each get the greeting and their own bytes back. */
export async function tcpEchoes(address: string, port: number, n: number): Promise<number> {
  const clients = Array.from({ length: n }, () => tcpClient(address, port));
  try {
    const ok = await Promise.all(
      clients.map(async (c, i) => {
        try {
          await within(5000, 'greeting', c.greeting);
          const payload = `ping-${i}\n`;
          c.socket.write(payload);
          await waitUntil(5000, 'echo', () => Buffer.concat(c.data).toString().includes(payload));
          return true;
        } catch {
          return false;
        }
      }),
    );
    return ok.filter(Boolean).length;
  } finally {
    for (const c of clients) c.socket.destroy();
  }
}
