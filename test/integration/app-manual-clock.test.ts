import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceApp } from '../../src/app.js';
import { ManualClock } from '../../src/core/clock.js';
import { compileLb } from '../helpers/arm.js';
import { EchoBackend, freePort, sleep, tcpClient, waitUntil, within } from '../helpers/net.js';

/**
 * The whole app (proxy plane, real sockets on loopback) on a manual clock: nothing expires
 * until the clock is moved, and then exactly at the idle timeout, with no timer of its own
 * firing in between.
 */

const FRONTEND = '127.0.13.10';
const BACKEND = '127.0.13.2';

test('manual clock: a flow survives advance(239_999) and is reset on both sockets by advance(1)', async () => {
  const backendPort = await freePort(BACKEND);
  const backend = new EchoBackend('b1', BACKEND);
  await backend.listen(backendPort);
  const port = await freePort(FRONTEND);
  const clock = new ManualClock(0);
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: [BACKEND],
      rules: [{ name: 'reset', frontendPort: port, backendPort, enableTcpReset: true }],
    }),
    { clock, logLevel: 'silent' },
  );
  try {
    assert.equal(clock.pending(), 0, 'no flow: nothing armed, no tick');
    const c = tcpClient(FRONTEND, port);
    await within(2000, 'greeting', c.greeting);
    // The greeting was relayed at load-balancer time 0: the deadline is 4 minutes from it.
    const backendSocket = backend.sockets[backend.sockets.length - 1]!;
    const backendError = new Promise<string>((resolve) =>
      backendSocket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '')),
    );
    // Real time passes; load-balancer time does not.
    await sleep(300);
    assert.equal(app.engine.flowCount, 1);
    clock.advance(239_999);
    await sleep(100);
    assert.deepEqual(c.events, [], 'no reset before the timeout');
    assert.equal(app.engine.flowCount, 1);
    clock.advance(1);
    const clientError = await within(2000, 'client ECONNRESET', c.error);
    assert.equal(clientError.code, 'ECONNRESET');
    assert.equal(await within(2000, 'backend ECONNRESET', backendError), 'ECONNRESET');
    await waitUntil(1000, 'the flow gone', () => app.engine.flowCount === 0);
  } finally {
    await app.stop();
    await backend.close();
  }
  assert.equal(clock.pending(), 0, 'stopping leaves nothing armed');
});
