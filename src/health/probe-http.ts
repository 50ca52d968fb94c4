/**
 * Http and Https probes: GET requestPath; only status 200 is a success.
 *
 * As Azure documents for its HTTP(S) probes, a status other than 200, or a TCP reset
 * (refused or reset connection), takes the member out at once whatever the threshold
 * (`fastDown`); only a probe left unanswered counts toward the threshold. Https does not
 * verify the backend's certificate: Azure describes its HTTPS probe as the HTTP probe inside
 * TLS, with no certificate check, and backends commonly serve self-signed or internal
 * certificates that no public chain would accept.
 */
import http from 'node:http';
import https from 'node:https';
import type { ProbeOutcome, ProbeRunner, ProbeTarget } from './types.js';
import { describeSocketError } from './probe-tcp.js';
import { settleOnce } from './settle-once.js';

/** How long the rest of an answered response may take before its connection is destroyed. */
const DRAIN_GRACE_MS = 1_000;
const USER_AGENT = 'Sluice-Health-Probe/1.0';

function runHttp(secure: boolean, target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const settle = settleOnce(resolve, signal);
    if (settle === undefined) return;
    const options: https.RequestOptions = {
      host: target.address,
      port: target.port,
      path: target.requestPath ?? '/',
      method: 'GET',
      // A fresh connection per probe: a pooled one could hide a listener that stopped accepting.
      agent: false,
      headers: { 'user-agent': USER_AGENT, connection: 'close' },
    };
    if (secure) options.rejectUnauthorized = false;
    const req = secure ? https.request(options) : http.request(options);
    let grace: ReturnType<typeof setTimeout> | undefined;
    const onAbort = (): void => {
      req.destroy();
      settle({ ok: false, fastDown: false, reason: 'aborted' });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.once('close', () => {
      signal.removeEventListener('abort', onAbort);
      if (grace !== undefined) clearTimeout(grace);
      settle({ ok: false, fastDown: false, reason: 'connection closed without a response' });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      const reset = err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET';
      settle({ ok: false, fastDown: reset, reason: describeSocketError(err) });
    });
    req.once('response', (res: http.IncomingMessage) => {
      const latencyMs = performance.now() - started;
      const status = res.statusCode ?? 0;
      if (status === 200) settle({ ok: true, latencyMs, detail: 'HTTP 200' });
      else settle({ ok: false, fastDown: true, reason: `HTTP ${status}`, latencyMs });
      // Read the body away so the backend can finish; a body that never ends is cut off.
      res.resume();
      res.on('error', () => undefined);
      grace = setTimeout(() => req.destroy(), DRAIN_GRACE_MS);
      grace.unref();
    });
    req.end();
  });
}

export const httpProbe: ProbeRunner = (target, signal) => runHttp(false, target, signal);
export const httpsProbe: ProbeRunner = (target, signal) => runHttp(true, target, signal);

/** ARM accepts paths without a leading slash ("healthcheck.aspx"); the request line needs one. */
export function normalizeRequestPath(path: string | undefined): string {
  if (path === undefined || path === '') return '/';
  return path.startsWith('/') ? path : `/${path}`;
}
