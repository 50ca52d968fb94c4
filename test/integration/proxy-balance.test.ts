import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { SluiceApp } from '../../src/app.js';
import { compileLb } from '../helpers/arm.js';
import { EchoBackend, freePort, tcpClient, waitUntil, within, type TestClient } from '../helpers/net.js';

/** Distribution, health probes and inbound NAT port ranges through the proxy plane. */

const SCALE = 100;
const FRONTEND = '127.0.2.10';
const BACKENDS = ['127.0.2.2', '127.0.2.3', '127.0.2.4'];

let backends: EchoBackend[] = [];
let backendPort = 0;

before(async () => {
  backendPort = await freePort(BACKENDS[0]!);
  backends = BACKENDS.map((ip, i) => new EchoBackend(`backend${i + 1}`, ip));
  for (const b of backends) await b.listen(backendPort);
});

after(async () => {
  for (const b of backends) await b.close();
});

/** Opens `count` connections, at most `parallel` at once; returns the backend each reached. */
async function greetings(
  port: number,
  count: number,
  parallel = 32,
  localAddress?: (i: number) => string,
  localPort?: (i: number) => number,
): Promise<string[]> {
  const names: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const c = tcpClient(FRONTEND, port, localAddress?.(i), localPort?.(i));
      names.push(await within(5000, `greeting ${i}`, c.greeting));
      // A reset leaves no TIME_WAIT behind, so fixed client ports can be used again at once.
      if (localPort) c.socket.resetAndDestroy();
      else c.socket.destroy();
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return names;
}

function tally(names: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const n of names) m.set(n, (m.get(n) ?? 0) + 1);
  return m;
}

/** A TCP probe target on each address: accepts and closes, as a health endpoint would. */
async function probeTargets(addresses: readonly string[], port: number): Promise<Server[]> {
  const servers: Server[] = [];
  for (const ip of addresses) {
    const s = createServer((sock) => sock.destroy());
    s.listen(port, ip);
    await once(s, 'listening');
    servers.push(s);
  }
  return servers;
}

async function closeAll(servers: readonly Server[]): Promise<void> {
  for (const s of servers) if (s.listening) await new Promise((r) => s.close(r));
}

/** Connects until the hash sends a connection to `backend`; returns that connection. */
async function connectionTo(port: number, backend: string): Promise<TestClient> {
  for (let i = 0; i < 200; i++) {
    const c = tcpClient(FRONTEND, port);
    if ((await within(2000, 'greeting', c.greeting)) === backend) return c;
    c.socket.destroy();
  }
  throw new Error(`no connection reached ${backend} in 200 tries`);
}

test('1,000 connections spread over 3 backends within 10% of an even share (5-tuple hash)', async () => {
  // Fixed tuples (frontend port, client address and ports 21000-21999) make the split the same
  // every run: with random ephemeral ports it is binomial, outside 10% about one run in twelve.
  const port = 18080;
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: BACKENDS,
      rules: [{ name: 'web', frontendPort: port, backendPort }],
    }),
    { timeScale: SCALE, logLevel: 'silent' },
  );
  try {
    const counts = tally(
      await greetings(
        port,
        1000,
        32,
        () => '127.0.2.200',
        (i) => 21000 + i,
      ),
    );
    assert.equal(counts.size, 3, `all three backends used: ${[...counts]}`);
    for (const [name, n] of counts) {
      assert.ok(Math.abs(n - 1000 / 3) <= 1000 / 3 / 10, `${name} got ${n} of 1000`);
    }
  } finally {
    await app.stop();
  }
});

test('SourceIP: every connection from one client address reaches one backend', async () => {
  const port = await freePort(FRONTEND);
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: BACKENDS,
      rules: [{ name: 'sticky', frontendPort: port, backendPort, loadDistribution: 'SourceIP' }],
    }),
    { timeScale: SCALE, logLevel: 'silent' },
  );
  try {
    for (const client of ['127.0.2.100', '127.0.2.101', '127.0.2.102']) {
      const counts = tally(await greetings(port, 40, 8, () => client));
      assert.equal(counts.size, 1, `${client} always reaches the same backend: ${[...counts]}`);
    }
    // Different clients do not all land on one backend.
    const spread = new Set<string>();
    for (let i = 0; i < 30; i++) spread.add((await greetings(port, 1, 1, () => `127.0.2.${150 + i}`))[0]!);
    assert.ok(spread.size >= 2, `30 client addresses reached ${spread.size} backend(s)`);
  } finally {
    await app.stop();
  }
});

test('a backend whose probe fails gets no new flows while its established flow goes on (Standard)', async () => {
  const port = await freePort(FRONTEND);
  const probePort = await freePort(BACKENDS[0]!);
  const probeServers = await probeTargets(BACKENDS, probePort);
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: BACKENDS,
      probes: [{ name: 'tcp-probe', port: probePort, intervalInSeconds: 5, probeThreshold: 2 }],
      rules: [
        { name: 'probed', frontendPort: port, backendPort, probe: 'tcp-probe', idleTimeoutInMinutes: 30 },
      ],
    }),
    { timeScale: SCALE, logLevel: 'silent' },
  );
  try {
    // Members start unknown and come up with their first answered probe.
    await waitUntil(
      3000,
      'all members up',
      () => app.prober.list().filter((h) => h.state === 'up').length === 3,
    );
    const onB2 = await connectionTo(port, 'backend2');
    await new Promise((r) => probeServers[1]!.close(r));
    await waitUntil(3000, 'backend2 down', () =>
      app.prober.list().some((h) => h.address === BACKENDS[1] && h.state === 'down'),
    );
    const counts = tally(await greetings(port, 150));
    assert.equal(counts.get('backend2') ?? 0, 0, `no new flow reached backend2: ${[...counts]}`);
    assert.ok((counts.get('backend1') ?? 0) > 0 && (counts.get('backend3') ?? 0) > 0);
    onB2.socket.write('still here');
    await waitUntil(2000, 'the established flow still echoes', () =>
      Buffer.concat(onB2.data).toString().includes('still here'),
    );
    onB2.socket.destroy();
  } finally {
    await app.stop();
    await closeAll(probeServers);
  }
});

test("Basic SKU: when a backend's probe fails, its established flows are ended", async () => {
  const port = await freePort(FRONTEND);
  const probePort = await freePort(BACKENDS[0]!);
  const probeServers = await probeTargets(BACKENDS.slice(0, 2), probePort);
  const app = await SluiceApp.start(
    compileLb({
      sku: 'Basic',
      frontend: FRONTEND,
      backends: BACKENDS.slice(0, 2),
      probes: [{ name: 'tcp-probe', port: probePort, intervalInSeconds: 5, probeThreshold: 1 }],
      rules: [
        { name: 'basic', frontendPort: port, backendPort, probe: 'tcp-probe', idleTimeoutInMinutes: 30 },
      ],
    }),
    { timeScale: SCALE, logLevel: 'silent' },
  );
  try {
    await waitUntil(
      3000,
      'both members up',
      () => app.prober.list().filter((h) => h.state === 'up').length === 2,
    );
    const onB2 = await connectionTo(port, 'backend2');
    await new Promise((r) => probeServers[1]!.close(r));
    const err = await within(3000, 'the flow on the down backend to end', onB2.error);
    assert.equal(err.code, 'ECONNRESET');
  } finally {
    await app.stop();
    await closeAll(probeServers);
  }
});

test('adminState Down: the member takes no new flows', async () => {
  const port = await freePort(FRONTEND);
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: BACKENDS,
      adminDown: [BACKENDS[2]!],
      rules: [{ name: 'web', frontendPort: port, backendPort }],
    }),
    { timeScale: SCALE, logLevel: 'silent' },
  );
  try {
    const counts = tally(await greetings(port, 120));
    assert.equal(counts.get('backend3') ?? 0, 0, `backend3 is administratively down: ${[...counts]}`);
    assert.equal(counts.size, 2);
  } finally {
    await app.stop();
  }
});

test('inbound NAT port range: port start+i reaches the i-th member of the pool', async () => {
  const start = 41000 + Math.floor(Math.random() * 1000) * 3;
  const app = await SluiceApp.start(
    compileLb({
      frontend: FRONTEND,
      backends: BACKENDS,
      natRanges: [{ name: 'per-member', start, end: start + 2, backendPort, enableTcpReset: true }],
    }),
    { timeScale: SCALE, logLevel: 'silent' },
  );
  try {
    for (let i = 0; i < 3; i++) {
      const names = tally(await greetings(start + i, 5, 1));
      assert.deepEqual([...names], [[`backend${i + 1}`, 5]], `port ${start + i}`);
    }
  } finally {
    await app.stop();
  }
});
