import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { validateDocument } from '../../src/config/index.js';
import { EventHub } from '../../src/control/events.js';
import { buildApi, type ApiOptions } from '../../src/control/server.js';
import { ResourceStore } from '../../src/control/store.js';
import { freePort, within } from '../helpers/net.js';
import { noPlaneRuntime } from '../helpers/api.js';

/**
 * The API's HTTP server over real loopback sockets, for what fastify's inject cannot show:
 * clients too slow to send their request, and the event stream's keep-alive comments.
 */

const HOST = '127.0.5.1';
const LB_PATH =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network/loadBalancers/lb?api-version=2024-05-01';

async function serve(
  options: Partial<Pick<ApiOptions, 'requestTimeoutMs' | 'heartbeatMs'>>,
): Promise<{ api: FastifyInstance; port: number; hub: EventHub }> {
  const hub = new EventHub();
  const store = new ResourceStore({
    compile: (doc) => validateDocument(doc, { outsideReferences: 'error' }),
    apply: async () => {},
  });
  const api = await buildApi({
    store,
    registry: new Registry(),
    runtime: noPlaneRuntime(hub),
    ...options,
  });
  const port = await freePort(HOST);
  await api.listen({ host: HOST, port });
  return { api, port, hub };
}

/** Sends `text` and then nothing more; resolves with all the server wrote once it closes. */
function sendAndStall(port: number, text: string): Promise<{ raw: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect({ host: HOST, port }, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () =>
      resolve({ raw: Buffer.concat(chunks).toString(), closedAfterMs: Date.now() - started }),
    );
  });
}

function parseResponse(raw: string): { status: number; headers: string; body: unknown } {
  const split = raw.indexOf('\r\n\r\n');
  assert.ok(split > 0, `an HTTP response, got ${JSON.stringify(raw)}`);
  const head = raw.slice(0, split);
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]);
  return { status, headers: head.toLowerCase(), body: JSON.parse(raw.slice(split + 4)) };
}

test('a client that stops halfway through its headers gets a 408 with an ARM error body, then the connection closes', async () => {
  const { api, port } = await serve({ requestTimeoutMs: 300 });
  try {
    const r = await within(
      5000,
      'the server to give up',
      sendAndStall(port, `GET /healthz HTTP/1.1\r\nHost: ${HOST}\r\n`),
    );
    const res = parseResponse(r.raw);
    assert.equal(res.status, 408);
    assert.match(res.headers, /content-type: application\/json/);
    assert.match(res.headers, /connection: close/);
    const err = (res.body as { error: { code: string; message: string; details: unknown[] } }).error;
    assert.equal(err.code, 'SLUICE_API_TIMEOUT');
    assert.match(err.message, /300 ms/);
    assert.deepEqual(err.details, []);
    assert.ok(r.closedAfterMs >= 250, `closed after ${r.closedAfterMs} ms, before the timeout`);
  } finally {
    await api.close();
  }
});

test('a client that sends its headers and half its body gets the same 408 ARM error, and nothing is applied', async () => {
  const { api, port } = await serve({ requestTimeoutMs: 300 });
  try {
    const body = '{"sku":{"name":"Standard"},"properties":{';
    const r = await within(
      5000,
      'the server to give up',
      sendAndStall(
        port,
        `PUT ${LB_PATH} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: ${body.length * 2}\r\n\r\n${body}`,
      ),
    );
    const res = parseResponse(r.raw);
    assert.equal(res.status, 408);
    assert.equal((res.body as { error: { code: string } }).error.code, 'SLUICE_API_TIMEOUT');
    const get = await api.inject({ method: 'GET', url: LB_PATH });
    assert.equal(get.statusCode, 404, 'the half-sent PUT stored nothing');
  } finally {
    await api.close();
  }
});

test('headers larger than the server accepts get a 431 with an ARM error body', async () => {
  const { api, port } = await serve({});
  try {
    const r = await within(
      5000,
      'the answer',
      sendAndStall(port, `GET /healthz HTTP/1.1\r\nHost: ${HOST}\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    const res = parseResponse(r.raw);
    assert.equal(res.status, 431);
    assert.equal((res.body as { error: { code: string } }).error.code, 'SLUICE_API_HEADERS_TOO_LARGE');
  } finally {
    await api.close();
  }
});

test('the event stream sends a keep-alive comment every heartbeat interval while no event happens', async () => {
  const { api, port, hub } = await serve({ heartbeatMs: 50 });
  const controller = new AbortController();
  try {
    const res = await fetch(`http://${HOST}:${port}/sluice/v1/events`, { signal: controller.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const started = Date.now();
    await within(
      5000,
      'three keep-alive comments',
      (async () => {
        while ((text.match(/^: keep-alive$/gm) ?? []).length < 3) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`stream ended: ${text}`);
          text += decoder.decode(value, { stream: true });
        }
      })(),
    );
    assert.ok(Date.now() - started >= 100, 'comments come at the interval, not all at once');
    assert.ok(text.startsWith(': sluice events\n\n'), text);
    // Comments only: a client's event parser sees no event until one happens.
    assert.doesNotMatch(text, /^(event|data|id):/m);
    assert.ok(hub.size > 0);
  } finally {
    controller.abort();
    await api.close();
  }
});
