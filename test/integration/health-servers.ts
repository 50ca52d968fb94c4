/** Real backends on loopback for the health tests: TCP listeners, HTTP(S) servers with a switchable answer. */
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type HttpMode = number | 'hang';

export interface TestServer {
  readonly address: string;
  readonly port: number;
  /** Requests seen, by path. */
  readonly paths: string[];
  /** Connections accepted so far. */
  connections: number;
  /** Connections currently open on the server side. */
  open: number;
  mode: HttpMode;
  close(): Promise<void>;
}

function listen(server: net.Server, address: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function track(
  server: net.Server,
  state: { connections: number; open: number },
  sockets: Set<net.Socket>,
): void {
  server.on('connection', (s: net.Socket) => {
    state.connections++;
    state.open++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => {
      state.open--;
      sockets.delete(s);
    });
  });
}

async function start(
  server: net.Server,
  address: string,
  port: number,
  state: TestServer,
): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  track(server, state, sockets);
  const bound = await listen(server, address, port);
  Object.assign(state, { port: bound });
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}

function blank(address: string, mode: HttpMode): TestServer {
  return { address, port: 0, paths: [], connections: 0, open: 0, mode, close: () => Promise.resolve() };
}

/** A TCP listener that accepts and keeps connections open until the client closes them. */
export function tcpServer(address: string, port = 0): Promise<TestServer> {
  const server = net.createServer((s) => {
    s.resume();
    s.on('end', () => s.end());
  });
  return start(server, address, port, blank(address, 200));
}

function handler(state: TestServer): http.RequestListener {
  return (req, res) => {
    state.paths.push(req.url ?? '');
    if (state.mode === 'hang') return;
    res.writeHead(state.mode, { 'content-type': 'text/plain' });
    res.end(`status ${state.mode}\n`);
  };
}

export function httpServer(address: string, mode: HttpMode = 200, port = 0): Promise<TestServer> {
  const state = blank(address, mode);
  return start(http.createServer(handler(state)), address, port, state);
}

export function httpsServer(
  address: string,
  tls: { key: string; cert: string },
  mode: HttpMode = 200,
): Promise<TestServer> {
  const state = blank(address, mode);
  return start(https.createServer(tls, handler(state)), address, 0, state);
}

/** A port on `address` that nothing listens on (bound once, then released). */
export async function closedPort(address: string): Promise<number> {
  const server = net.createServer();
  const port = await listen(server, address, 0);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A throwaway self-signed certificate, or the reason one cannot be made on this machine. */
export function selfSignedCertificate(): { key: string; cert: string } | { skip: string } {
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'sluice-health-tls-'));
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=sluice-backend.invalid',
      ],
      { stdio: 'ignore', timeout: 10_000 },
    );
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { skip: code === 'ENOENT' ? 'openssl is not installed' : `openssl failed: ${String(err)}` };
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolves once `check` holds, polling every few milliseconds; rejects after `timeoutMs` of real time. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
