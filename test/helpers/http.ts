/**
 * HTTP requests over real sockets with exactly the headers a test gives (Host and Authorization
 * included, byte for byte as latin1), for what fetch would normalise or refuse to send.
 */
import { request, type Agent, type IncomingHttpHeaders } from 'node:http';

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

export interface HttpRequest {
  readonly host: string;
  readonly port: number;
  readonly method: string;
  readonly path: string;
  /** Sent as given; a `host` here replaces the one Node would write. */
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** A keep-alive agent to reuse connections; by default one connection per request. */
  readonly agent?: Agent;
  /** On a 2xx, resolve once the status and headers are in, and close (for an event stream). */
  readonly headersOnly?: boolean;
}

export function httpRequest(r: HttpRequest): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...r.headers };
    if (r.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length'))
      headers['content-length'] = String(Buffer.byteLength(r.body));
    const req = request(
      {
        host: r.host,
        port: r.port,
        method: r.method,
        path: r.path,
        headers,
        agent: r.agent ?? false,
        // The test's Host header, if any, goes out as it is.
        setHost: !Object.keys(headers).some((h) => h.toLowerCase() === 'host'),
      },
      (res) => {
        const ok = (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300;
        if (r.headersOnly === true && ok) {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: '' });
          req.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(r.body);
  });
}

/** The ARM error code of an answer, or undefined when its body is not ARM's error body. */
export function errorCode(a: HttpAnswer): string | undefined {
  try {
    const body = JSON.parse(a.text) as { error?: { code?: unknown } };
    return typeof body.error?.code === 'string' ? body.error.code : undefined;
  } catch {
    return undefined;
  }
}
