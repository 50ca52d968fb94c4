import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceApp } from '../../src/app.js';
import { compileLb, type TestRule } from '../helpers/arm.js';
import { EchoBackend, freePort, sleep, tcpClient, waitUntil, within } from '../helpers/net.js';

/** Live reconfiguration through the proxy plane: what happens to flows of a rule that goes away. */

const FRONTEND = '127.0.10.10';
const BACKEND = '127.0.10.2';

test('removing rules: flows of a reset rule get ECONNRESET at once, flows of a drop rule are blackholed', async () => {
  const backend = new EchoBackend('b', BACKEND);
  const backendPort = await freePort(BACKEND);
  await backend.listen(backendPort);
  const keep: TestRule = {
    name: 'keep',
    frontendPort: await freePort(FRONTEND),
    backendPort,
    idleTimeoutInMinutes: 30,
  };
  const resetRule: TestRule = {
    name: 'goes-with-reset',
    frontendPort: await freePort(FRONTEND),
    backendPort,
    enableTcpReset: true,
    idleTimeoutInMinutes: 30,
  };
  const dropRule: TestRule = {
    name: 'goes-silently',
    frontendPort: await freePort(FRONTEND),
    backendPort,
    idleTimeoutInMinutes: 30,
  };
  const app = await SluiceApp.start(
    compileLb({ frontend: FRONTEND, backends: [BACKEND], rules: [keep, resetRule, dropRule] }),
    { timeScale: 1, logLevel: 'silent' },
  );
  try {
    const kept = tcpClient(FRONTEND, keep.frontendPort);
    const reset = tcpClient(FRONTEND, resetRule.frontendPort);
    const dropped = tcpClient(FRONTEND, dropRule.frontendPort);
    for (const c of [kept, reset, dropped]) assert.equal(await within(2000, 'greeting', c.greeting), 'b');
    const droppedBackend = backend.sockets[backend.sockets.length - 1]!;
    const droppedBackendEvents: string[] = [];
    droppedBackend.on('end', () => droppedBackendEvents.push('end'));
    droppedBackend.on('error', (e: NodeJS.ErrnoException) => droppedBackendEvents.push(`error:${e.code}`));

    await app.apply(compileLb({ frontend: FRONTEND, backends: [BACKEND], rules: [keep] }));

    assert.equal((await within(2000, 'reset of the removed reset rule', reset.error)).code, 'ECONNRESET');
    const before = backend.bytesReceived();
    dropped.socket.write('hello?');
    await sleep(300);
    assert.deepEqual(dropped.events, [], 'the client of the removed drop rule hears nothing');
    assert.deepEqual(droppedBackendEvents, [], 'and neither does its backend');
    assert.equal(backend.bytesReceived(), before, 'nothing is relayed any more');
    kept.socket.write('still on');
    await waitUntil(2000, 'the kept rule to relay', () =>
      Buffer.concat(kept.data).toString().includes('still on'),
    );
    assert.deepEqual(kept.events, [], 'the kept flow is undisturbed');
    assert.equal(app.plane.listening().length, 1);
    for (const c of [kept, dropped]) c.socket.destroy();
  } finally {
    await app.stop();
    await backend.close();
  }
});
