/** Reading a running Sluice from outside: its metrics, its descriptors, raw HTTP exchanges. */
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';

/** The text of GET /metrics from the API at `api` (`host:port`). */
export async function scrape(api: string): Promise<string> {
  const res = await fetch(`http://${api}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return res.text();
}

/** The value of a series whose labels include `labels`, summed over the matching lines (0 when none). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const pair of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) have.set(pair[1]!, pair[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

/** Descriptors the process `pid` holds now (Linux). */
export function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export interface RawExchange {
  /** Everything the server wrote before the connection closed. */
  readonly text: string;
  /** Real milliseconds from connecting (or trying to) to the close. */
  readonly closedAfterMs: number;
  /** The HTTP status of the answer, or undefined when there was none. */
  readonly status: number | undefined;
}

export interface RawConnection {
  /** The status line's code once the server wrote one, or undefined when it closed first. */
  readonly status: Promise<number | undefined>;
  /** Resolves when the connection has closed (by the server, or by `destroy`). */
  readonly closed: Promise<RawExchange>;
  destroy(): void;
}

function statusOf(text: string): number | undefined {
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * A TCP connection to `host:port` that writes `request` (possibly nothing) and then only
 * listens. `ms` bounds its life: then it is destroyed and reported as it stands.
 */
export function rawConnection(host: string, port: number, request: string, ms: number): RawConnection {
  const started = Date.now();
  const socket = connect({ host, port });
  const chunks: Buffer[] = [];
  const timer = setTimeout(() => socket.destroy(), ms);
  let gotStatus: (s: number | undefined) => void = () => {};
  const status = new Promise<number | undefined>((resolve) => (gotStatus = resolve));
  socket.on('connect', () => {
    if (request !== '') socket.write(request);
  });
  socket.on('data', (d) => {
    chunks.push(d);
    const s = statusOf(Buffer.concat(chunks).toString());
    if (s !== undefined) gotStatus(s);
  });
  socket.on('error', () => {});
  const closed = new Promise<RawExchange>((resolve) =>
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString();
      gotStatus(statusOf(text));
      resolve({ text, closedAfterMs: Date.now() - started, status: statusOf(text) });
    }),
  );
  return { status, closed, destroy: () => socket.destroy() };
}
