import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SystemClock } from '../../src/time/system-clock.js';
import { Prober } from '../../src/health/prober.js';
import type { HealthTransition } from '../../src/health/types.js';
import { member, pool, probe, rule, snapshot } from '../unit/health/fixtures.js';
import { httpServer, tcpServer, waitFor } from './health-servers.js';

// At scale 50 Azure's minimum 5 s interval is 100 ms of real time.
const SCALE = 50;
const INTERVAL_MS = 5_000;
// Real timers may fire a millisecond early and, on a busy machine, late: bounds allow for both.
const EARLY = INTERVAL_MS / 10;
const LATE = INTERVAL_MS;

function transitionsTo(events: readonly HealthTransition[], state: string, after = 0): HealthTransition[] {
  return events.filter((e) => e.to === state && e.from !== state && e.at >= after);
}

test('Tcp probe: a backend going away is marked down after threshold intervals, and up again when it returns', async () => {
  const clock = new SystemClock(SCALE);
  const events: HealthTransition[] = [];
  const prober = new Prober({ clock, sink: (e) => events.push(e) });
  let server = await tcpServer('127.0.0.41');
  const port = server.port;
  const m = member('pool', 'a', '127.0.0.41');
  const r = rule('web', pool('pool', [m]), probe('tcp', { port, intervalMs: INTERVAL_MS, threshold: 3 }));
  try {
    prober.update(snapshot([r]));
    await waitFor('member up', () => prober.health(r, m).state === 'up');

    await server.close();
    const closedAt = clock.now();
    await waitFor('member down', () => prober.health(r, m).state === 'down');
    const down = transitionsTo(events, 'down')[0];
    assert.ok(down !== undefined);
    assert.equal(down.reason, 'connection refused');
    // Three failed attempts: the first one after the close, then two more an interval apart.
    const took = down.at - closedAt;
    assert.ok(took >= 2 * INTERVAL_MS - EARLY && took <= 3 * INTERVAL_MS + LATE, `down after ${took} ms`);

    server = await tcpServer('127.0.0.41', port);
    const backAt = clock.now();
    await waitFor('member up again', () => prober.health(r, m).state === 'up');
    const up = transitionsTo(events, 'up', backAt)[0];
    assert.ok(up !== undefined);
    const back = up.at - backAt;
    assert.ok(back >= 2 * INTERVAL_MS - EARLY && back <= 3 * INTERVAL_MS + LATE, `up after ${back} ms`);
    assert.ok(up.latencyMs !== undefined && up.latencyMs >= 0);
  } finally {
    prober.stop();
    await server.close();
  }
});

test('Http probe: 500 takes the member out at once, silence after threshold timeouts, 200 brings it back', async () => {
  const clock = new SystemClock(SCALE);
  const events: HealthTransition[] = [];
  const prober = new Prober({ clock, sink: (e) => events.push(e) });
  const server = await httpServer('127.0.0.42', 200);
  const m = member('pool', 'a', '127.0.0.42');
  const pr = probe('http', {
    protocol: 'Http',
    port: server.port,
    requestPath: '/health',
    intervalMs: INTERVAL_MS,
    threshold: 2,
  });
  const r = rule('web', pool('pool', [m]), pr);
  try {
    prober.update(snapshot([r]));
    await waitFor('member up', () => prober.health(r, m).state === 'up');
    assert.ok(server.paths.every((p) => p === '/health'));

    server.mode = 500;
    const at500 = clock.now();
    await waitFor('member down on HTTP 500', () => prober.health(r, m).state === 'down');
    const fast = transitionsTo(events, 'down')[0];
    assert.equal(fast?.reason, 'HTTP 500');
    assert.ok(fast.at - at500 <= INTERVAL_MS + LATE, `down ${fast.at - at500} ms after the first 500`);

    server.mode = 200;
    await waitFor('member up after 200s', () => prober.health(r, m).state === 'up');

    server.mode = 'hang';
    const hungAt = clock.now();
    await waitFor('member down on silence', () => prober.health(r, m).state === 'down');
    const slow = transitionsTo(events, 'down', hungAt)[0];
    assert.equal(slow?.reason, 'no answer within 5 s');
    // Two unanswered attempts, each judged one interval after it started.
    assert.ok(
      slow.at - hungAt >= 2 * INTERVAL_MS - EARLY,
      `down ${slow.at - hungAt} ms after the server went silent`,
    );
    await waitFor('timed-out probe connections to be closed', () => server.open <= 1);
  } finally {
    prober.stop();
    await waitFor('every probe connection closed after stop()', () => server.open === 0, 2_000);
    await server.close();
  }
});

test('stop() ends probing: no connection is made afterwards and none is left open', async () => {
  const clock = new SystemClock(SCALE);
  const prober = new Prober({ clock });
  const tcp = await tcpServer('127.0.0.43');
  const hung = await httpServer('127.0.0.44', 'hang');
  const a = member('pool', 'a', '127.0.0.43');
  const b = member('pool2', 'b', '127.0.0.44');
  const r1 = rule('tcp', pool('pool', [a]), probe('t', { port: tcp.port, intervalMs: INTERVAL_MS }), 80);
  const r2 = rule(
    'http',
    pool('pool2', [b]),
    probe('h', { protocol: 'Http', port: hung.port, requestPath: '/', intervalMs: INTERVAL_MS }),
    81,
  );
  try {
    prober.update(snapshot([r1, r2]));
    await waitFor('a request waiting on the silent server', () => hung.open === 1);
    prober.stop();
    await waitFor('the silent server to see its probe connection closed', () => hung.open === 0, 2_000);
    const seen = tcp.connections + hung.connections;
    await new Promise((resolve) => setTimeout(resolve, (3 * INTERVAL_MS) / SCALE));
    assert.equal(tcp.connections + hung.connections, seen, 'no probe after stop()');
    assert.equal(tcp.open, 0);
  } finally {
    await tcp.close();
    await hung.close();
  }
});
