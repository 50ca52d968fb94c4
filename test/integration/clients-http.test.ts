import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { Agent as UndiciAgent, RetryAgent, request, type Dispatcher } from 'undici';
import { sluiceInFront, type InFront } from '../helpers/in-front.js';
import { freePort, waitUntil } from '../helpers/net.js';

/**
 * HTTP keep-alive through the proxy plane, on a manual clock: Node's http.Agent and undici reuse
 * a pooled connection after the 4-minute idle timeout passed in one call. The server answers
 * with the number of the connection it came on, so a test sees which requests shared one.
 */

const FRONTEND = '127.0.90.30';
const SERVER = '127.0.90.31';

let server: http.Server;
let lb: InFront;
const connections = new WeakMap<Socket, number>();

before(async () => {
  let n = 0;
  server = http.createServer((req, res) => {
    if (!connections.has(req.socket)) connections.set(req.socket, ++n);
    res.end(String(connections.get(req.socket)));
  });
  // Longer than any test: the server never closes an idle connection of its own accord.
  server.keepAliveTimeout = 60_000;
  server.listen(await freePort(SERVER), SERVER);
  await once(server, 'listening');
  lb = await sluiceInFront(FRONTEND, { host: SERVER, port: (server.address() as { port: number }).port });
});

after(async () => {
  await lb?.stop();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

interface Outcome {
  readonly ok: boolean;
  /** The server's number for the connection (ok), or the error's code. */
  readonly value: string;
  readonly ms: number;
  /** http.Agent only: the request went on a socket the Agent had pooled. */
  readonly reused?: boolean;
}

/** A GET through `agent`, given up after `timeoutMs` of socket inactivity (req.setTimeout). */
function agentGet(agent: http.Agent, port: number, timeoutMs = 500): Promise<Outcome> {
  const start = performance.now();
  const ms = (): number => performance.now() - start;
  return new Promise((resolve) => {
    const req = http.get({ host: FRONTEND, port, agent, path: '/', timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ ok: true, value: body, ms: ms(), reused: req.reusedSocket }));
    });
    // Node's http client has no timeout of its own: without this the request waits forever.
    req.on('timeout', () => req.destroy(Object.assign(new Error('request timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ ok: false, value: err.code ?? err.message, ms: ms(), reused: req.reusedSocket }),
    );
  });
}

async function undiciGet(dispatcher: Dispatcher, port: number): Promise<Outcome> {
  const start = performance.now();
  try {
    const res = await request(`http://${FRONTEND}:${port}/`, { dispatcher });
    return { ok: true, value: await res.body.text(), ms: performance.now() - start };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, value: e.code ?? e.message, ms: performance.now() - start };
  }
}

const freeSockets = (agent: http.Agent): number =>
  Object.values(agent.freeSockets).reduce((n, list) => n + (list?.length ?? 0), 0);

test('http.Agent, reset: the reset socket leaves the pool and the next request opens a new connection', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await agentGet(agent, lb.ports.reset);
    assert.equal(first.ok, true);
    assert.equal(freeSockets(agent), 1, 'the socket is pooled');
    lb.idle();
    await waitUntil(2000, 'the Agent to drop the reset socket', () => freeSockets(agent) === 0);
    const next = await agentGet(agent, lb.ports.reset);
    assert.deepEqual({ ok: next.ok, reused: next.reused }, { ok: true, reused: false });
    assert.notEqual(next.value, first.value, 'a new connection');
  } finally {
    agent.destroy();
  }
});

test('http.Agent, reset: a request written in the same turn as the reset fails with ECONNRESET; Node does not retry it', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await agentGet(agent, lb.ports.reset);
    lb.idle();
    const raced = await agentGet(agent, lb.ports.reset);
    assert.deepEqual(
      { ok: raced.ok, value: raced.value, reused: raced.reused },
      { ok: false, value: 'ECONNRESET', reused: true },
    );
    const next = await agentGet(agent, lb.ports.reset);
    assert.deepEqual({ ok: next.ok, reused: next.reused }, { ok: true, reused: false });
    assert.notEqual(next.value, first.value);
  } finally {
    agent.destroy();
  }
});

test('http.Agent, drop: the reused socket hangs until the request timeout; the next request opens a new connection', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await agentGet(agent, lb.ports.drop);
    lb.idle();
    const hung = await agentGet(agent, lb.ports.drop, 500);
    assert.deepEqual(
      { ok: hung.ok, value: hung.value, reused: hung.reused },
      { ok: false, value: 'TIMEOUT', reused: true },
    );
    assert.ok(hung.ms >= 450 && hung.ms < 1500, `gave up after ${hung.ms.toFixed(0)} ms`);
    const next = await agentGet(agent, lb.ports.drop);
    assert.deepEqual({ ok: next.ok, reused: next.reused }, { ok: true, reused: false });
    assert.notEqual(next.value, first.value);
  } finally {
    agent.destroy();
  }
});

const connected = (agent: UndiciAgent, port: number): number =>
  Number(agent.stats[`http://${FRONTEND}:${port}`]?.connected ?? 0);

/** One connection per origin, so the second request goes on the first one's connection. */
const undiciAgent = (): UndiciAgent =>
  new UndiciAgent({ connections: 1, keepAliveTimeout: 60_000, headersTimeout: 500 });

test('undici, reset: the reset connection is dropped and the next request opens a new one', async () => {
  const agent = undiciAgent();
  try {
    const first = await undiciGet(agent, lb.ports.reset);
    assert.equal(first.ok, true);
    assert.equal(connected(agent, lb.ports.reset), 1, 'the connection is kept');
    const resets = lb.app.plane.stats.idleResets;
    lb.idle();
    assert.equal(lb.app.plane.stats.idleResets, resets + 1);
    await waitUntil(
      2000,
      'undici to drop the reset connection',
      () => connected(agent, lb.ports.reset) === 0,
    );
    const next = await undiciGet(agent, lb.ports.reset);
    assert.equal(next.ok, true, next.value);
    assert.notEqual(next.value, first.value, 'a new connection');
  } finally {
    await agent.destroy();
  }
});

test('undici, reset: a request written in the same turn as the reset fails with ECONNRESET; undici does not retry it', async () => {
  const agent = undiciAgent();
  try {
    const first = await undiciGet(agent, lb.ports.reset);
    lb.idle();
    const raced = await undiciGet(agent, lb.ports.reset);
    assert.deepEqual({ ok: raced.ok, value: raced.value }, { ok: false, value: 'ECONNRESET' });
    const next = await undiciGet(agent, lb.ports.reset);
    assert.equal(next.ok, true);
    assert.notEqual(next.value, first.value);
  } finally {
    await agent.destroy();
  }
});

test('undici, drop: the reused connection hangs until headersTimeout; the next request opens a new one', async () => {
  const agent = undiciAgent();
  try {
    const first = await undiciGet(agent, lb.ports.drop);
    lb.idle();
    const hung = await undiciGet(agent, lb.ports.drop);
    assert.deepEqual({ ok: hung.ok, value: hung.value }, { ok: false, value: 'UND_ERR_HEADERS_TIMEOUT' });
    // undici's timers are coarse: a 500 ms timeout fires between 500 ms and about 1 s.
    assert.ok(hung.ms >= 450 && hung.ms < 2500, `gave up after ${hung.ms.toFixed(0)} ms`);
    const next = await undiciGet(agent, lb.ports.drop);
    assert.equal(next.ok, true);
    assert.notEqual(next.value, first.value);
  } finally {
    await agent.destroy();
  }
});

test('undici RetryAgent: the GET hit by the reset, and the one that timed out on the drop, succeed on a new connection', async () => {
  const agent = new RetryAgent(undiciAgent(), {
    minTimeout: 10,
    maxRetries: 2,
    // The default codes (ECONNRESET among them) and the timeout a silent drop ends in.
    errorCodes: [
      'ECONNRESET',
      'ECONNREFUSED',
      'ENOTFOUND',
      'ENETDOWN',
      'ENETUNREACH',
      'EHOSTDOWN',
      'EHOSTUNREACH',
      'EPIPE',
      'UND_ERR_SOCKET',
      'UND_ERR_HEADERS_TIMEOUT',
    ],
  });
  try {
    for (const port of [lb.ports.reset, lb.ports.drop]) {
      const first = await undiciGet(agent, port);
      lb.idle();
      const retried = await undiciGet(agent, port);
      assert.equal(retried.ok, true, `port ${port}: ${retried.value}`);
      assert.notEqual(retried.value, first.value, 'retried on a new connection');
    }
  } finally {
    await agent.destroy();
  }
});
