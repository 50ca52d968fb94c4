import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BudgetPlan } from '../../src/core/budget.js';
import { lbDocument } from '../helpers/arm.js';
import { sluice } from '../helpers/cli.js';
import { EchoBackend, freePort, tcpEchoes, waitUntil, within } from '../helpers/net.js';
import { startSluice, type RunningSluice } from '../helpers/process.js';
import { metricValue, rawConnection, scrape, type RawConnection } from '../helpers/scrape.js';

/**
 * API connections hold descriptors too: idle connections and open event streams take only the
 * API's share of the open-files limit, so flows go on while the API is flooded, and idle
 * connections are closed by the headers timeout.
 */

interface Balancer {
  readonly run: RunningSluice;
  readonly api: { host: string; port: number; text: string };
  readonly budget: BudgetPlan;
  readonly frontend: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** `sluice run` under `ulimit -n 1024` with one TCP rule to an echo backend, the API on `apiHost`. */
async function balancer(net: string): Promise<Balancer> {
  const frontend = `${net}.10`;
  const backend = new EchoBackend('b', `${net}.2`);
  const backendPort = await freePort(`${net}.2`);
  await backend.listen(backendPort);
  const port = await freePort(frontend);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-budget-api-'));
  const file = join(dir, 'lb.json');
  writeFileSync(
    file,
    JSON.stringify(
      lbDocument({
        frontend,
        backends: [`${net}.2`],
        rules: [{ name: 'web', frontendPort: port, backendPort, idleTimeoutInMinutes: 30 }],
      }),
    ),
  );
  const run = startSluice(['run', file, '--api', `${net}.1:0`, '--state-dir', join(dir, 'state')], {
    openFilesLimit: 1024,
  });
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    const text = String(ready.api);
    const [host, p] = text.split(':') as [string, string];
    return {
      run,
      api: { host, port: Number(p), text },
      budget: ready.budget as BudgetPlan,
      frontend,
      port,
      stop: async () => {
        await run.stop();
        await backend.close();
      },
    };
  } catch (err) {
    await run.stop();
    await backend.close();
    throw err;
  }
}

test('1,000 idle API connections: the API share holds 32, the rest are dropped, flows go on, the idle ones close at the headers timeout', async (t) => {
  const lb = await balancer('127.0.62');
  const conns: RawConnection[] = [];
  try {
    assert.equal(lb.budget.apiConnections, 32);
    for (let i = 0; i < 1000; i++) conns.push(rawConnection(lb.api.host, lb.api.port, '', 15_000));
    // The share fills at once: held connections are those not closed yet.
    const closed = new Set<number>();
    conns.forEach((c, i) => void c.closed.then(() => closed.add(i)));
    await waitUntil(5000, 'all but the share to be dropped', () => closed.size >= 1000 - 32, 20);
    assert.equal(closed.size, 1000 - 32, 'exactly the share is held');
    // While the API share is full: new flows are served, and a new API connection is dropped.
    const echoed = await tcpEchoes(lb.frontend, lb.port, 100);
    assert.equal(echoed, 100, 'every TCP connection during the API flood was served');
    const extra = await within(
      3000,
      'the extra API connection to close',
      rawConnection(lb.api.host, lb.api.port, `GET /healthz HTTP/1.1\r\nHost: ${lb.api.host}\r\n\r\n`, 5000)
        .closed,
    );
    assert.equal(extra.status, undefined, 'over the share, a connection gets no answer');
    const all = await within(
      10_000,
      'every idle connection to be closed',
      Promise.all(conns.map((c) => c.closed)),
    );
    const held = all.filter((r) => r.status !== undefined);
    assert.equal(held.length, 32);
    for (const r of held) {
      assert.equal(r.status, 408, 'the headers timeout answers 408');
      assert.match(r.text, /SLUICE_API_TIMEOUT/);
      assert.ok(r.closedAfterMs >= 4500 && r.closedAfterMs <= 6500, `closed after ${r.closedAfterMs} ms`);
    }
    const dropped = all.filter((r) => r.status === undefined);
    t.diagnostic(
      `dropped connections closed within ${Math.max(...dropped.map((r) => r.closedAfterMs))} ms; ` +
        `idle ones after ${Math.min(...held.map((r) => r.closedAfterMs))}-${Math.max(...held.map((r) => r.closedAfterMs))} ms`,
    );
    // The share is free again: the API answers, and counted what it refused.
    const healthz = await fetch(`http://${lb.api.text}/healthz`);
    assert.equal(healthz.status, 200);
    const m = await scrape(lb.api.text);
    assert.equal(
      metricValue(m, 'sluice_api_connections_refused_total', { reason: 'connections' }),
      1000 - 32 + 1,
    );
    assert.equal(metricValue(m, 'sluice_api_connections_refused_total', { reason: 'event-streams' }), 0);
    assert.equal(metricValue(m, 'sluice_flow_refused_total', { reason: 'tcp-descriptors' }), 0);
    const logged = lb.run.lines.filter((l) => l.reason === 'connections');
    assert.ok(logged.length >= 1 && logged.length <= 3, `logged at most once a second: ${logged.length}`);
    assert.match(String(logged[0]!.msg), /--max-api-connections/);
  } finally {
    for (const c of conns) c.destroy();
    await lb.stop();
  }
});

test('1,000 GET /sluice/v1/events: 8 streams open, the others get 503 or are dropped, flows and the API go on', async (t) => {
  const lb = await balancer('127.0.63');
  const conns: RawConnection[] = [];
  try {
    assert.equal(lb.budget.eventStreams, 8);
    const request = `GET /sluice/v1/events HTTP/1.1\r\nHost: ${lb.api.host}\r\n\r\n`;
    for (let i = 0; i < 1000; i++) conns.push(rawConnection(lb.api.host, lb.api.port, request, 20_000));
    const statuses = await within(
      10_000,
      'an outcome for every stream request',
      Promise.all(conns.map((c) => c.status)),
    );
    const streams = conns.filter((_, i) => statuses[i] === 200);
    assert.equal(streams.length, 8, 'the event-stream share');
    const refused = statuses.filter((s) => s === 503).length;
    const dropped = statuses.filter((s) => s === undefined).length;
    assert.equal(refused + dropped, 992, `503: ${refused}, dropped: ${dropped}`);
    assert.ok(refused > 0, 'some were answered 503');
    t.diagnostic(`8 streams, ${refused} answered 503, ${dropped} dropped on accept`);
    const answer = await conns[statuses.indexOf(503)]!.closed;
    assert.match(answer.text, /retry-after: 5/i);
    assert.match(answer.text, /connection: close/i);
    const body = JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4)) as {
      error: { code: string; message: string };
    };
    assert.equal(body.error.code, 'SLUICE_API_TOO_MANY_EVENT_STREAMS');
    assert.match(body.error.message, /All 8 event streams/);
    // The refused connections close, so the streams hold 8 of the 32 API connections.
    await within(
      5000,
      'the refused connections to close',
      Promise.all(conns.filter((_, i) => statuses[i] !== 200).map((c) => c.closed)),
    );
    // A connection kept alive after its answer is closed 5 s later (Node's checks add up to 0.5 s).
    const keptAlive = rawConnection(
      lb.api.host,
      lb.api.port,
      `GET /healthz HTTP/1.1\r\nHost: ${lb.api.host}\r\n\r\n`,
      10_000,
    );
    const [echoed, healthz] = await Promise.all([
      tcpEchoes(lb.frontend, lb.port, 100),
      fetch(`http://${lb.api.text}/healthz`).then((r) => r.status),
    ]);
    assert.equal(echoed, 100, 'every TCP connection during the stream flood was served');
    assert.equal(healthz, 200, 'the API answers beside the streams');
    const m = await scrape(lb.api.text);
    assert.equal(
      metricValue(m, 'sluice_api_connections_refused_total', { reason: 'event-streams' }),
      refused,
    );
    assert.equal(metricValue(m, 'sluice_api_connections_refused_total', { reason: 'connections' }), dropped);
    // A stream that ends gives its place back.
    streams[0]!.destroy();
    await streams[0]!.closed;
    const again = await waitUntil(3000, 'a stream again', async () => {
      const c = rawConnection(lb.api.host, lb.api.port, request, 5000);
      const s = await c.status;
      if (s === 200) return c;
      c.destroy();
      return undefined;
    });
    again.destroy();
    const kept = await within(10_000, 'the kept-alive connection to close', keptAlive.closed);
    assert.equal(kept.status, 200);
    assert.ok(
      kept.closedAfterMs >= 4500 && kept.closedAfterMs <= 6500,
      `closed after ${kept.closedAfterMs} ms`,
    );
  } finally {
    for (const c of conns) c.destroy();
    await lb.stop();
  }
});

test('run: share flags that are bad or do not fit in the open-files limit exit 2 and say which', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'sluice-budget-flags-')), 'lb.json');
  writeFileSync(
    file,
    JSON.stringify(lbDocument({ frontend: '127.0.64.10', backends: ['127.0.64.2'], rules: [] })),
  );
  const bad = await sluice('run', file, '--api', 'off', '--max-udp-flows', 'many');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--max-udp-flows expects a whole number >= 0, got 'many'/);
  const big = await sluice('run', file, '--api', 'off', '--max-tcp-flows', '10000000');
  assert.equal(big.code, 2);
  assert.match(
    big.stderr,
    /the shares need \d+ descriptors but the open-files limit is \d+: reserve 64 \+ TCP flows 2 x 10000000 \(--max-tcp-flows\)/,
  );
  assert.match(big.stderr, /lower --max-tcp-flows \[SLUICE_HOST_BUDGET\]/);
  const streams = await sluice(
    'run',
    file,
    '--api',
    '127.0.64.1:0',
    '--max-api-connections',
    '10',
    '--max-event-streams',
    '10',
  );
  assert.equal(streams.code, 2);
  assert.match(streams.stderr, /--max-event-streams 10 leaves no API connection for other requests/);
  const perClient = await sluice(
    'run',
    file,
    '--api',
    'off',
    '--max-udp-flows',
    '10',
    '--max-udp-flows-per-client',
    '11',
  );
  assert.equal(perClient.code, 2);
  assert.match(perClient.stderr, /--max-udp-flows-per-client 11 is more than the whole UDP share/);
  const packet = await sluice('run', file, '--api', 'off', '--dataplane', 'packet', '--max-udp-flows', '10');
  assert.equal(packet.code, 2);
  assert.match(packet.stderr, /--max-udp-flows: only the proxy data plane holds descriptors per flow/);
});
