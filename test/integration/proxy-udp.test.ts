import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { SluiceApp } from '../../src/app.js';
import { compileLb } from '../helpers/arm.js';
import { sleep, within } from '../helpers/net.js';

/** UDP through the proxy plane: replies from the frontend, and B8's own flow timeout. */

const SCALE = 240;
const FRONTEND = '127.0.3.10';
const BACKENDS = ['127.0.3.2', '127.0.3.3'];

async function udpEcho(address: string, name: string, port = 0): Promise<Socket> {
  const s = createSocket('udp4');
  s.on('message', (msg, peer) =>
    s.send(Buffer.concat([Buffer.from(`${name}:`), msg]), peer.port, peer.address),
  );
  s.bind(port, address);
  await once(s, 'listening');
  return s;
}

function ask(client: Socket, text: string, port: number): Promise<{ text: string; from: string }> {
  const answer = new Promise<{ text: string; from: string }>((resolve) =>
    client.once('message', (m, r) => resolve({ text: m.toString(), from: `${r.address}:${r.port}` })),
  );
  client.send(text, port, FRONTEND);
  return within(2000, `answer to ${text}`, answer);
}

test('a UDP flow quiet longer than the TCP idle timeout keeps working on the same backend', async () => {
  const first = await udpEcho(BACKENDS[0]!, 'backend1');
  const backendPort = first.address().port;
  const second = await udpEcho(BACKENDS[1]!, 'backend2', backendPort);
  const probe = createSocket('udp4');
  probe.bind(0, FRONTEND);
  await once(probe, 'listening');
  const frontendPort = probe.address().port;
  probe.close();
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: BACKENDS,
      rules: [
        {
          name: 'dns',
          protocol: 'Udp',
          frontendPort,
          backendPort,
          idleTimeoutInMinutes: 4,
          enableTcpReset: true,
        },
      ],
    }),
    // UDP flows live 10 minutes here; the rule's TCP idle timeout (4 minutes) must not touch them.
    { timeScale: SCALE, logLevel: 'silent', udpFlowTimeoutMs: 10 * 60_000 },
  );
  const client = createSocket('udp4');
  client.bind(0, '127.0.3.50');
  await once(client, 'listening');
  try {
    const a = await ask(client, 'one', frontendPort);
    assert.equal(a.from, `${FRONTEND}:${frontendPort}`, 'the reply comes from the frontend address and port');
    const backend = a.text.split(':')[0];
    const flowsBefore = app.engine.flows().map((f) => f.id);
    assert.equal(flowsBefore.length, 1);
    await sleep(((4 * 60_000) / SCALE) * 1.5);
    const b = await ask(client, 'two', frontendPort);
    assert.equal(b.text, `${backend}:two`, 'same backend after a quiet period longer than the TCP timeout');
    assert.deepEqual(
      app.engine.flows().map((f) => f.id),
      flowsBefore,
      'still the same flow',
    );
    assert.equal(app.engine.stats().expiredReset, 0, 'UDP is never reset');
    // Past the UDP flow timeout the flow is forgotten silently; the next datagram starts a new one.
    await sleep(((10 * 60_000) / SCALE) * 1.2);
    assert.equal(app.engine.flows().length, 0, 'expired after the UDP flow timeout');
    const c = await ask(client, 'three', frontendPort);
    assert.match(c.text, /:three$/);
  } finally {
    client.close();
    await app.stop();
    first.close();
    second.close();
  }
});
