import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { validateDocument } from '../../src/config/index.js';
import { SluiceApp } from '../../src/app.js';
import { ManualClock } from '../../src/core/clock.js';
import type { RuntimeSnapshot } from '../../src/core/snapshot.js';
import { compileLb, lbDocument, type TestLb } from '../helpers/arm.js';
import { EchoBackend, freePort, sleep, tcpClient, waitUntil, within } from '../helpers/net.js';

/**
 * SluiceApp in the test's process on a manual clock (what `sluice run --clock manual` and an
 * in-process harness run): everything timed waits for the clock, the UDP flow timeout, drain
 * periods and probe intervals as much as idle timeouts, and a move of the clock reports every
 * flow it ended with what ended it. Real sockets on 127.0.80.0/24.
 */

const FRONTEND = '127.0.80.40';
const BACKEND_1 = '127.0.80.42';
const BACKEND_2 = '127.0.80.43';

for (const tcpRelay of ['handles', 'sockets'] as const) {
  test(`${tcpRelay} relay: advanceClock resolves once both sockets of an idle flow are reset`, async () => {
    const backendPort = await freePort(BACKEND_1);
    const backend = new EchoBackend('b1', BACKEND_1);
    await backend.listen(backendPort);
    const port = await freePort(FRONTEND);
    const clock = new ManualClock();
    const app = await SluiceApp.start(
      compileLb({
        frontend: FRONTEND,
        backends: [BACKEND_1],
        rules: [{ name: 'reset', frontendPort: port, backendPort, enableTcpReset: true }],
      }),
      { clock, logLevel: 'silent', tcpRelay },
    );
    const c = tcpClient(FRONTEND, port, '127.0.80.46');
    try {
      assert.equal(await within(2000, 'greeting', c.greeting), 'b1');
      const backendSide = backend.sockets.at(-1)!;
      const backendReset = new Promise<string>((resolve) =>
        backendSide.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '')),
      );
      const clientReset = c.error.then((e) => ({ code: e.code, at: performance.now() }));
      const moved = await within(2000, 'advanceClock', app.advanceClock(240_000));
      const answeredAt = performance.now();
      assert.equal(moved.ended.length, 1);
      assert.equal(app.plane.activeTcpFlows, 0, 'the relay let go of the flow');
      const reset = await within(1000, 'the client reset', clientReset);
      assert.equal(reset.code, 'ECONNRESET');
      assert.ok(reset.at - answeredAt <= 100, `reset ${Math.round(reset.at - answeredAt)} ms after`);
      assert.equal(await within(1000, 'the backend reset', backendReset), 'ECONNRESET');
    } finally {
      c.socket.destroy();
      await app.stop();
      await backend.close();
    }
  });
}

test('UDP: the flow timeout waits for the manual clock, and ends the flow without a reset (B8)', async () => {
  const echo: Socket = createSocket('udp4');
  echo.on('message', (m, peer) => echo.send(m, peer.port, peer.address));
  echo.bind(0, BACKEND_1);
  await once(echo, 'listening');
  const backendPort = echo.address().port;
  const probe = createSocket('udp4');
  probe.bind(0, FRONTEND);
  await once(probe, 'listening');
  const frontendPort = probe.address().port;
  probe.close();
  const clock = new ManualClock();
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: [BACKEND_1],
      rules: [{ name: 'dns', protocol: 'Udp', frontendPort, backendPort }],
    }),
    { clock, logLevel: 'silent', udpFlowTimeoutMs: 60_000 },
  );
  const client = createSocket('udp4');
  client.bind(0, '127.0.80.44');
  await once(client, 'listening');
  try {
    const answered = once(client, 'message');
    client.send('hello', frontendPort, FRONTEND);
    await within(2000, 'the echo', answered);
    assert.equal(app.engine.flowCount, 1);
    await sleep(200);
    assert.deepEqual((await app.advanceClock(59_999)).ended, []);
    const [ended] = (await app.advanceClock(1)).ended;
    assert.equal(ended?.protocol, 'Udp');
    assert.equal(ended?.state, 'UDP');
    assert.equal(ended?.action, 'drop');
    assert.equal(ended?.noReset, 'udp');
    assert.equal(ended?.cause, 'idle-timeout');
    assert.equal(app.engine.flowCount, 0);
  } finally {
    client.close();
    echo.close();
    await app.stop();
  }
});

/** The document of `lb` with a drain period, less the members at `without` (the others keep their names). */
function withDrain(lb: TestLb, seconds: number, without: readonly string[] = []): RuntimeSnapshot {
  const doc = lbDocument(lb);
  const pool = (
    doc['properties'] as {
      backendAddressPools: {
        properties: {
          drainPeriodInSeconds?: number;
          loadBalancerBackendAddresses: { properties: { ipAddress: string } }[];
        };
      }[];
    }
  ).backendAddressPools[0]!.properties;
  pool.drainPeriodInSeconds = seconds;
  pool.loadBalancerBackendAddresses = pool.loadBalancerBackendAddresses.filter(
    (m) => !without.includes(m.properties.ipAddress),
  );
  const result = validateDocument(doc);
  assert.ok(result.valid && result.snapshot, JSON.stringify(result.errors));
  return result.snapshot;
}

test('drain: a removed member keeps its flows for the drain period of the manual clock, then they are reset', async () => {
  const backendPort = await freePort(BACKEND_1);
  const b1 = new EchoBackend('b1', BACKEND_1);
  const b2 = new EchoBackend('b2', BACKEND_2);
  await b1.listen(backendPort);
  await b2.listen(backendPort);
  const port = await freePort(FRONTEND);
  const lb: TestLb = {
    frontend: FRONTEND,
    backends: [BACKEND_1, BACKEND_2],
    rules: [{ name: 'web', frontendPort: port, backendPort, enableTcpReset: true }],
  };
  const clock = new ManualClock();
  const app = await SluiceApp.start(withDrain(lb, 30), { clock, logLevel: 'silent' });
  const c = tcpClient(FRONTEND, port, '127.0.80.45');
  try {
    const name = await within(2000, 'greeting', c.greeting);
    await app.apply(withDrain(lb, 30, [name === 'b1' ? BACKEND_1 : BACKEND_2]));
    await sleep(200);
    assert.deepEqual(c.events, [], 'draining, whatever real time passes');
    const early = await app.advanceClock(29_999);
    assert.deepEqual(early.ended, []);
    const due = await app.advanceClock(1);
    assert.equal(due.ended.length, 1, JSON.stringify(due.ended));
    assert.equal(due.ended[0]?.cause, 'drain');
    assert.equal(due.ended[0]?.action, 'reset');
    assert.equal(due.ended[0]?.state, 'ESTABLISHED');
    assert.equal((await within(1000, 'the reset at the drain end', c.error)).code, 'ECONNRESET');
  } finally {
    c.socket.destroy();
    await app.stop();
    await b1.close();
    await b2.close();
  }
});

test('probe intervals follow the manual clock; one move over many intervals starts one attempt and keeps the member up', async () => {
  const backendPort = await freePort(BACKEND_1);
  const b1 = new EchoBackend('b1', BACKEND_1);
  await b1.listen(backendPort);
  const port = await freePort(FRONTEND);
  const clock = new ManualClock();
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: [BACKEND_1],
      probes: [{ name: 'tcp', port: backendPort, intervalInSeconds: 5, probeThreshold: 2 }],
      rules: [
        { name: 'web', frontendPort: port, backendPort, probe: 'tcp' },
        { name: 'plain', frontendPort: await freePort(FRONTEND), backendPort },
      ],
    }),
    { clock, logLevel: 'silent' },
  );
  const probes = (): number => b1.sockets.length;
  const state = (): string | undefined => app.healthView()[0]?.state;
  try {
    await waitUntil(2000, 'the first probe at start', () => state() === 'up');
    assert.equal(probes(), 1);
    await sleep(300);
    assert.equal(probes(), 1, 'no interval passes while the clock stands still');
    await app.advanceClock(5_000);
    await waitUntil(2000, 'the probe of the next interval', () => probes() === 2);
    // Four minutes in one move: 48 intervals, one attempt (its answer comes in real time).
    await sleep(100);
    await app.advanceClock(240_000);
    await waitUntil(2000, 'one more probe', () => probes() === 3);
    await sleep(200);
    assert.equal(probes(), 3, 'the intervals skipped over start nothing more');
    assert.equal(state(), 'up');
    assert.equal(app.healthView()[0]?.since, 0, 'never went down');

    // A member no rule probes has no verdict to set; one that is probed does.
    const marked = app.markProbe({ lb: 'test-lb', pool: 'pool', member: BACKEND_1 }, 'down');
    assert.ok(marked.ok);
    assert.equal(marked.members[0]?.state, 'down');
    assert.equal(app.markProbe({ lb: 'test-lb', pool: 'nope', member: 'member1' }, 'down').ok, false);
  } finally {
    await app.stop();
    await b1.close();
  }
});

test('a member that no rule probes: setting its probe verdict is refused as not probed', async () => {
  const clock = new ManualClock();
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: [BACKEND_1],
      rules: [{ name: 'plain', frontendPort: await freePort(FRONTEND), backendPort: 80 }],
    }),
    { clock, logLevel: 'silent' },
  );
  try {
    const r = app.markProbe({ lb: 'test-lb', pool: 'pool', member: 'member1' }, 'down');
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.problem === 'not-probed', JSON.stringify(r));
    assert.match(!r.ok ? r.message : '', /probed by no rule's probe/);
  } finally {
    await app.stop();
  }
});
