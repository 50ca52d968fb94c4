/**
 * A TCP client for the pool's system tests, run inside the lab's client namespace
 * (`ip netns exec NS node dist/test/helpers/pool-client.js run`). It holds many connections to an
 * echo port and, on JSON commands read from stdin, opens them or has each send a line and
 * checks that exactly that line comes back, within a bound. It answers with one JSON line per
 * command: every connection's result.
 *
 *   {"cmd":"open","host":"198.18.100.10","port":7,"count":60}  -> {"ev":"opened","results":[...]}
 *   {"cmd":"echo","timeoutMs":2000,"ids":[0,1]}              -> {"ev":"echoed","results":[...]}
 *   {"cmd":"run","intervalMs":100,"timeoutMs":2000}          -> {"ev":"running"}
 *   {"cmd":"report"}                                          -> {"ev":"report","results":[...]}
 *   {"cmd":"halt"}                                            -> {"ev":"halted","results":[...]}
 *   {"cmd":"status"}                                          -> {"ev":"status","results":[...]}
 *   {"cmd":"close"}                                           -> {"ev":"closed"}
 *
 * `run` has every connection exchange a line every `intervalMs` until `halt`: a connection
 * breaks at its first error (a reset), end, wrong echo, or echo not back within `timeoutMs`,
 * and stops there. `report` and `halt` give each connection's rounds, its slowest round trip
 * and, if it broke, why and when (ms since `run`). `status` sends nothing: whether each
 * connection has seen an error (a reset) or its end.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

interface Conn {
  readonly id: number;
  readonly socket: Socket;
  localPort: number;
  received: string;
  sent: string;
  error?: string;
  ended: boolean;
}

interface Result {
  readonly id: number;
  readonly port: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly rounds?: number;
  readonly brokenAtMs?: number;
  readonly maxRttMs?: number;
  /** For a failed round: how long after the line was sent it failed. */
  readonly afterMs?: number;
}

/** A connection's state in `run`. */
interface Runner {
  rounds: number;
  maxRttMs: number;
  error?: string;
  brokenAtMs?: number;
  timer?: NodeJS.Timeout;
}

const runners = new Map<number, Runner>();
let running = false;
let runStart = 0;

const conns: Conn[] = [];

function emit(o: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

/** Sends `text` on `c` and waits until everything sent so far has come back, or `ms`. */
function roundTrip(c: Conn, text: string, ms: number): Promise<Result> {
  const sentAt = performance.now();
  return new Promise((resolve) => {
    const done = (ok: boolean, error?: string): void => {
      clearTimeout(timer);
      c.socket.off('data', check);
      c.socket.off('close', closed);
      resolve({
        id: c.id,
        port: c.localPort,
        ok,
        ...(error !== undefined ? { error, afterMs: Math.round(performance.now() - sentAt) } : {}),
      });
    };
    // A reset (or an end) fails the round at once.
    const closed = (): void => done(false, c.error ?? 'ended');
    const check = (): void => {
      if (c.received.length < c.sent.length) return;
      done(c.received === c.sent, c.received === c.sent ? undefined : 'echo differs');
    };
    const timer = setTimeout(
      () => done(false, c.error ?? (c.ended ? 'ended' : `no echo within ${ms} ms`)),
      ms,
    );
    if (c.error !== undefined || c.ended) return done(false, c.error ?? 'ended');
    c.socket.on('data', check);
    c.socket.once('close', closed);
    c.sent += text;
    c.socket.write(text);
  });
}

function open(host: string, port: number, id: number, ms: number): Promise<Result> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const c: Conn = { id, socket, localPort: 0, received: '', sent: '', ended: false };
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      c.received += d;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      c.error = err.code ?? err.message;
    });
    socket.on('end', () => {
      c.ended = true;
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ id, port: 0, ok: false, error: `no connection within ${ms} ms` });
    }, ms);
    socket.once('connect', () => {
      clearTimeout(timer);
      c.localPort = socket.localPort ?? 0;
      conns.push(c);
      void roundTrip(c, `hello ${id}\n`, ms).then(resolve);
    });
    socket.once('error', () => {
      if (c.localPort === 0) {
        clearTimeout(timer);
        resolve({ id, port: 0, ok: false, error: c.error });
      }
    });
  });
}

/** Runs `jobs` with at most `limit` at once. */
async function bounded<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return out;
}

let round = 0;

function runOne(c: Conn, intervalMs: number, timeoutMs: number): void {
  const r: Runner = { rounds: 0, maxRttMs: 0 };
  runners.set(c.id, r);
  const next = (): void => {
    if (!running) return;
    const sentAt = performance.now();
    void roundTrip(c, `run ${r.rounds} ${c.id}\n`, timeoutMs).then((res) => {
      if (!res.ok) {
        r.error = res.error ?? 'failed';
        r.brokenAtMs = Math.round(performance.now() - runStart);
        return;
      }
      r.rounds++;
      r.maxRttMs = Math.max(r.maxRttMs, Math.round(performance.now() - sentAt));
      r.timer = setTimeout(next, Math.max(0, intervalMs - (performance.now() - sentAt)));
    });
  };
  // Spread the connections over the interval.
  r.timer = setTimeout(next, Math.random() * intervalMs);
}

function runResults(): Result[] {
  return conns.map((c) => {
    const r = runners.get(c.id);
    return {
      id: c.id,
      port: c.localPort,
      ok: r !== undefined && r.error === undefined,
      ...(r?.error !== undefined ? { error: r.error, brokenAtMs: r.brokenAtMs } : {}),
      rounds: r?.rounds ?? 0,
      maxRttMs: r?.maxRttMs ?? 0,
    };
  });
}

// Only when started as the agent: the test runner also runs every file under dist/test.
if (process.argv[2] === 'run') {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const c = JSON.parse(line) as {
      cmd: string;
      host?: string;
      port?: number;
      count?: number;
      timeoutMs?: number;
      intervalMs?: number;
      ids?: number[];
    };
    const ms = c.timeoutMs ?? 3000;
    if (c.cmd === 'open') {
      const base = conns.length;
      const count = Math.min(c.count ?? 1, 1000);
      void bounded(
        Array.from({ length: count }, (_, i) => () => open(c.host!, c.port!, base + i, ms)),
        32,
      ).then((results) => emit({ ev: 'opened', results }));
    } else if (c.cmd === 'echo') {
      round++;
      const which = c.ids === undefined ? conns : conns.filter((k) => c.ids!.includes(k.id));
      void bounded(
        which.map((k) => () => roundTrip(k, `ping ${round} ${k.id}\n`, ms)),
        64,
      ).then((results) => emit({ ev: 'echoed', results }));
    } else if (c.cmd === 'run') {
      running = true;
      runStart = performance.now();
      runners.clear();
      for (const k of conns) runOne(k, c.intervalMs ?? 100, ms);
      emit({ ev: 'running', count: conns.length });
    } else if (c.cmd === 'report') {
      emit({ ev: 'report', results: runResults() });
    } else if (c.cmd === 'halt') {
      running = false;
      for (const r of runners.values()) clearTimeout(r.timer);
      // A round under way finishes (or times out) before the results are final.
      setTimeout(() => emit({ ev: 'halted', results: runResults() }), ms + 50);
    } else if (c.cmd === 'status') {
      emit({
        ev: 'status',
        results: conns.map((k) => ({
          id: k.id,
          port: k.localPort,
          ok: k.error === undefined && !k.ended,
          ...(k.error !== undefined ? { error: k.error } : k.ended ? { error: 'ended' } : {}),
        })),
      });
    } else if (c.cmd === 'close') {
      for (const k of conns) k.socket.destroy();
      conns.length = 0;
      emit({ ev: 'closed' });
    }
  });
  process.stdin.on('end', () => process.exit(0));
}
