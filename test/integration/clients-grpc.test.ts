import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectivityState, type Client } from '@grpc/grpc-js';
import { callEcho, echoClient, startEchoServer, type EchoServer } from '../helpers/grpc-echo.js';
import { sluiceInFront, type InFront } from '../helpers/in-front.js';
import { freePort, waitUntil } from '../helpers/net.js';

/**
 * @grpc/grpc-js through the proxy plane, on a manual clock. An HTTP/2 PING is bytes on the
 * connection, so unlike a kernel keepalive probe it refreshes the proxy plane's idle timer.
 * Each call's answer names the connection it came on (the server's peer).
 */

const FRONTEND = '127.0.90.40';
const SERVER = '127.0.90.41';

let server: EchoServer;
let lb: InFront;

before(async () => {
  server = await startEchoServer(SERVER, await freePort(SERVER));
  lb = await sluiceInFront(FRONTEND, { host: SERVER, port: server.port });
});

after(async () => {
  await lb?.stop();
  await server?.stop();
});

const KEEPALIVE = {
  'grpc.keepalive_time_ms': 100,
  'grpc.keepalive_timeout_ms': 1000,
  'grpc.keepalive_permit_without_calls': 1,
};

function channel(port: number, options = {}): Client {
  return echoClient(`${FRONTEND}:${port}`, options);
}

/** The client port of the flow a first call just opened: the one of `rule` not in `before`. */
function newFlowPort(rule: string, before: ReadonlySet<number>): number {
  const f = lb.app.engine.flows().find((x) => x.ruleName === rule && !before.has(x.id));
  assert.ok(f, `a new flow on ${rule}`);
  return f.client.port;
}

const flowIds = (): Set<number> => new Set(lb.app.engine.flows().map((f) => f.id));

test('keepalive_time_ms below the timeout: the PINGs keep a quiet channel on its connection past 6 minutes', async () => {
  const client = channel(lb.ports.drop, KEEPALIVE);
  try {
    const before = flowIds();
    const first = await callEcho(client, 'first', 2000);
    assert.equal(first.ok, true, JSON.stringify(first));
    const port = newFlowPort('drop', before);
    const drops = lb.app.plane.stats.idleDrops;
    // 100 ms of real time stands for at most a minute of the balancer's: the clock is moved a
    // minute at a time, and only once a PING went through since the last move.
    for (let minute = 1; minute <= 6; minute++) {
      lb.advance(60_000);
      await lb.activeNow(port, `a PING after minute ${minute}`);
    }
    const later = await callEcho(client, 'later', 1000);
    assert.equal(later.ok, true, JSON.stringify(later));
    assert.ok(first.ok && later.ok && later.peer === first.peer, 'the same connection');
    assert.equal(lb.app.plane.stats.idleDrops, drops, 'nothing was dropped');
  } finally {
    client.close();
  }
});

test('no keepalive, drop: the next call fails only at its deadline, and so does the one after', async () => {
  const DEADLINE = 500;
  const client = channel(lb.ports.drop);
  try {
    const first = await callEcho(client, 'first', 2000);
    assert.equal(first.ok, true, JSON.stringify(first));
    lb.idle();
    for (const attempt of [1, 2]) {
      const r = await callEcho(client, `attempt ${attempt}`, DEADLINE);
      assert.equal(r.ok ? 'OK' : r.codeName, 'DEADLINE_EXCEEDED', `attempt ${attempt}`);
      assert.ok(
        r.ms >= DEADLINE - 50 && r.ms < DEADLINE + 1000,
        `attempt ${attempt} failed after ${r.ms} ms`,
      );
    }
  } finally {
    client.close();
  }
});

test('keepalive, drop without PINGs through it: the unanswered PING closes the connection and the next call reconnects', async () => {
  const client = channel(lb.ports.drop, {
    'grpc.keepalive_time_ms': 100,
    'grpc.keepalive_timeout_ms': 300,
    'grpc.keepalive_permit_without_calls': 1,
  });
  try {
    const first = await callEcho(client, 'first', 2000);
    assert.equal(first.ok, true, JSON.stringify(first));
    // The whole timeout passes between two PINGs: the flow is dropped, the next PING is held.
    lb.idle();
    // Within 100 ms the next PING is sent, 300 ms later the channel gives the connection up.
    await waitUntil(
      2000,
      'the channel to leave READY',
      () => client.getChannel().getConnectivityState(false) !== connectivityState.READY,
    );
    const next = await callEcho(client, 'next', 1000);
    assert.equal(next.ok, true, JSON.stringify(next));
    assert.ok(first.ok && next.ok && next.peer !== first.peer, 'a new connection');
  } finally {
    client.close();
  }
});

test('reset: a call in the same turn as the reset fails UNAVAILABLE; the next one reconnects', async () => {
  const client = channel(lb.ports.reset);
  try {
    const first = await callEcho(client, 'first', 2000);
    assert.equal(first.ok, true, JSON.stringify(first));
    lb.idle();
    const raced = await callEcho(client, 'raced', 1000);
    assert.equal(raced.ok ? 'OK' : raced.codeName, 'UNAVAILABLE', JSON.stringify(raced));
    const next = await callEcho(client, 'next', 1000);
    assert.equal(next.ok, true, JSON.stringify(next));
    assert.ok(first.ok && next.ok && next.peer !== first.peer, 'a new connection');
  } finally {
    client.close();
  }
});
