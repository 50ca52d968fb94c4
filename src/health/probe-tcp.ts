/**
 * Tcp probe: the attempt succeeds when the three-way handshake completes. The connection is
 * then closed with a FIN, as Azure's probe does, so backends do not log resets for every probe.
 */
import net from 'node:net';
import type { ProbeOutcome, ProbeRunner, ProbeTarget } from './types.js';
import { settleOnce } from './settle-once.js';

/** How long a closing probe connection may wait for the backend's FIN before it is destroyed. */
const CLOSE_GRACE_MS = 1_000;

export const tcpProbe: ProbeRunner = (target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> =>
  new Promise((resolve) => {
    const started = performance.now();
    const settle = settleOnce(resolve, signal);
    if (settle === undefined) return;
    const socket = net.connect({ host: target.address, port: target.port });
    let grace: ReturnType<typeof setTimeout> | undefined;
    const onAbort = (): void => {
      socket.destroy();
      settle({ ok: false, fastDown: false, reason: 'aborted' });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => {
      signal.removeEventListener('abort', onAbort);
      if (grace !== undefined) clearTimeout(grace);
      settle({ ok: false, fastDown: false, reason: 'connection closed before it was established' });
    });
    // A probe connection never carries data; anything the backend sends is ignored.
    socket.on('data', () => undefined);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      settle({ ok: false, fastDown: false, reason: describeSocketError(err) });
    });
    socket.once('connect', () => {
      settle({ ok: true, latencyMs: performance.now() - started });
      socket.end();
      grace = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
      grace.unref();
    });
  });

export function describeSocketError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'unreachable';
    default:
      return err.code !== undefined ? `${err.code}: ${err.message}` : err.message;
  }
}
