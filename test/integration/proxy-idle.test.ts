import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceApp } from '../../src/app.js';
import type { TcpRelayKind } from '../../src/dataplane/proxy/proxy-plane.js';
import { compileLb } from '../helpers/arm.js';
import { EchoBackend, freePort, sleep, tcpClient, waitUntil, within } from '../helpers/net.js';

/**
 * Idle timeout through the proxy data plane, on real sockets: 4 minutes at --time-scale 240
 * is one real second.
 */

const SCALE = 240;
const IDLE_REAL_MS = (4 * 60_000) / SCALE;
const FRONTEND = '127.0.1.10';
const BACKENDS = ['127.0.1.2', '127.0.1.3'];

// Both TCP relays carry out the same contract: libuv handles (the default) and net.Socket.
for (const tcpRelay of ['handles', 'sockets'] as TcpRelayKind[]) {
  describe(`TCP relay on ${tcpRelay}`, () => {
    let backends: EchoBackend[] = [];
    let backendPort = 0;
    let app: SluiceApp;
    const ports = { reset: 0, drop: 0 };

    before(async () => {
      backendPort = await freePort(BACKENDS[0]!);
      backends = BACKENDS.map((ip, i) => new EchoBackend(`backend${i + 1}`, ip));
      for (const b of backends) await b.listen(backendPort);
      ports.reset = await freePort(FRONTEND);
      ports.drop = await freePort(FRONTEND);
      const snapshot = compileLb({
        frontend: FRONTEND,
        backends: BACKENDS,
        rules: [
          { name: 'with-reset', frontendPort: ports.reset, backendPort, enableTcpReset: true },
          { name: 'silent-drop', frontendPort: ports.drop, backendPort, enableTcpReset: false },
        ],
      });
      app = await SluiceApp.start(snapshot, { timeScale: SCALE, logLevel: 'silent', tcpRelay });
    });

    after(async () => {
      await app?.stop();
      for (const b of backends) await b.close();
    });

    function backendSocketOf(greeting: string, clientPort: number): { b: EchoBackend; index: number } {
      const b = backends.find((x) => x.name === greeting);
      assert.ok(b, `a backend named ${greeting}`);
      // The proxy's own port towards the backend differs from the client's; the newest socket is ours.
      assert.ok(clientPort > 0);
      return { b, index: b.sockets.length - 1 };
    }

    test('reset on: data flows both ways, then at the idle timeout both sockets fail with ECONNRESET', async () => {
      const c = tcpClient(FRONTEND, ports.reset);
      const name = await within(2000, 'greeting', c.greeting);
      const { b, index } = backendSocketOf(name, c.socket.localPort ?? 0);
      c.socket.write('ping');
      await waitUntil(2000, 'echo', () => Buffer.concat(c.data).toString().includes('ping'));
      const lastActivity = Date.now();
      const backendSocket = b.sockets[index]!;
      const backendError = new Promise<string>((resolve) =>
        backendSocket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '')),
      );
      const clientError = await within(IDLE_REAL_MS * 3, 'client ECONNRESET', c.error);
      const clientAt = Date.now() - lastActivity;
      assert.equal(clientError.code, 'ECONNRESET');
      assert.equal(await within(1000, 'backend ECONNRESET', backendError), 'ECONNRESET');
      assert.ok(
        clientAt >= IDLE_REAL_MS * 0.95,
        `reset after ${clientAt} ms, not before the ${IDLE_REAL_MS} ms timeout`,
      );
      assert.ok(
        clientAt <= IDLE_REAL_MS * 1.1 + 200,
        `reset after ${clientAt} ms: at most timeout + 10% + 200 ms`,
      );
      assert.equal(app.engine.flowCount, 0, 'the flow is gone from the engine');
      assert.ok(app.plane.stats.rstToClient >= 1 && app.plane.stats.rstToBackend >= 1);
    });

    test('reset off: after the timeout a write never reaches the backend and the client hears nothing', async () => {
      const c = tcpClient(FRONTEND, ports.drop);
      const name = await within(2000, 'greeting', c.greeting);
      const { b, index } = backendSocketOf(name, c.socket.localPort ?? 0);
      const backendSocket = b.sockets[index]!;
      const backendEvents: string[] = [];
      backendSocket.on('end', () => backendEvents.push('end'));
      backendSocket.on('error', (e: NodeJS.ErrnoException) => backendEvents.push(`error:${e.code}`));
      const before = b.bytesReceived();
      await waitUntil(IDLE_REAL_MS * 3, 'the flow to expire', () => app.plane.stats.idleDrops > 0);
      assert.equal(app.engine.flowCount, 0, 'the flow is gone from the engine');
      c.socket.write('are you there?');
      await sleep(IDLE_REAL_MS);
      assert.equal(b.bytesReceived(), before, 'the backend received nothing after the drop');
      assert.deepEqual(c.events, [], 'the client got neither FIN nor RST');
      assert.deepEqual(backendEvents, [], 'the backend got neither FIN nor RST');
      assert.equal(app.plane.heldTcpFlows, 1, 'the blackholed sockets are held');
      c.socket.destroy();
    });

    test('data every half timeout keeps a flow alive past three timeouts', async () => {
      const c = tcpClient(FRONTEND, ports.reset);
      await within(2000, 'greeting', c.greeting);
      const start = Date.now();
      let sent = 0;
      while (Date.now() - start < IDLE_REAL_MS * 3.2) {
        c.socket.write('k');
        sent++;
        await sleep(IDLE_REAL_MS / 2);
      }
      assert.deepEqual(c.events, [], 'no reset, no FIN');
      await waitUntil(
        2000,
        'all echoes',
        () => Buffer.concat(c.data).toString().split('k').length - 1 >= sent,
      );
      c.socket.end();
      await within(2000, 'FIN back', c.ended);
    });

    test('FIN is passed on: a half-closed flow still carries data the other way and gets no RST at idle', async () => {
      const c = tcpClient(FRONTEND, ports.reset);
      const name = await within(2000, 'greeting', c.greeting);
      const b = backends.find((x) => x.name === name)!;
      const backendSocket = b.sockets[b.sockets.length - 1]!;
      c.socket.end('last words');
      // The echo backend answers a FIN with its own: the client sees the echo, then the FIN.
      await within(2000, 'FIN from the backend', c.ended);
      assert.match(Buffer.concat(c.data).toString(), /last words/);
      await sleep(IDLE_REAL_MS * 1.5);
      assert.ok(!c.events.some((e) => e.startsWith('error')), `no reset: ${c.events.join(',')}`);
      assert.ok(!b.errors.some((e) => e.socket === backendSocket), 'the backend got no reset');
    });

    test('--hold-time: the sockets of a silently dropped flow are held unread until the hold ends, then closed', async () => {
      const frontend = '127.0.1.12';
      const port = await freePort(frontend);
      // 2 minutes of load-balancer time: half a real second at this scale.
      const holdMs = 2 * 60_000;
      const held = await SluiceApp.start(
        compileLb({
          frontend,
          backends: [BACKENDS[0]!],
          rules: [{ name: 'drop', frontendPort: port, backendPort, enableTcpReset: false }],
        }),
        { timeScale: SCALE, logLevel: 'silent', tcpRelay, holdMs },
      );
      try {
        const c = tcpClient(frontend, port);
        await within(2000, 'greeting', c.greeting);
        await waitUntil(IDLE_REAL_MS * 3, 'the silent drop', () => held.plane.stats.idleDrops > 0);
        const droppedAt = Date.now();
        assert.equal(held.plane.heldTcpFlows, 1, 'held after the drop');
        await sleep((holdMs / SCALE) * 0.6);
        assert.equal(held.plane.heldTcpFlows, 1, 'still held before the hold ends');
        assert.deepEqual(c.events, [], 'the client heard nothing while held');
        await within((holdMs / SCALE) * 3, 'FIN at the end of the hold', c.ended);
        const releasedAfter = Date.now() - droppedAt;
        assert.ok(
          releasedAfter >= (holdMs / SCALE) * 0.9,
          `released ${releasedAfter} ms after the drop, not before the hold ends`,
        );
        await waitUntil(1000, 'the hold released', () => held.plane.heldTcpFlows === 0);
        c.socket.destroy();
      } finally {
        await held.stop();
      }
    });

    test('a backend that refuses the connection: the client gets a RST', async () => {
      const port = await freePort(FRONTEND);
      const snapshot = compileLb({
        frontend: '127.0.1.11',
        backends: ['127.0.1.4'],
        rules: [{ name: 'nobody-home', frontendPort: port, backendPort: await freePort('127.0.1.4') }],
      });
      const other = await SluiceApp.start(snapshot, { timeScale: SCALE, logLevel: 'silent' });
      try {
        const c = tcpClient('127.0.1.11', port);
        const err = await within(2000, 'client error', c.error);
        assert.equal(err.code, 'ECONNRESET');
        assert.equal(other.plane.stats.backendUnreachable, 1);
      } finally {
        await other.stop();
      }
    });
  });
}
