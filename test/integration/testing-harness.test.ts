import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EchoBackend, freePort, sleep, tcpClient, waitUntil, within } from '../helpers/net.js';
import { idleDrop, idleReset, inFront, startSluice } from '../../src/testing/index.js';

/**
 * `sluice/testing` as a test suite uses it: a balancer in this process in front of a backend
 * of the test's own, on a manual clock, driven by its handles. Real sockets on loopback; no
 * child process; no sleep for a timeout.
 */

const BACKEND = '127.0.91.2';
const OTHER = '127.0.91.3';
const FRONTEND = '127.0.91.10';

async function echoBackend(name: string, address = BACKEND): Promise<{ backend: EchoBackend; port: number }> {
  const port = await freePort(address);
  const backend = new EchoBackend(name, address);
  await backend.listen(port);
  return { backend, port };
}

test('idle reset: advance(4m) resolves with the flow ended, and the client already has its ECONNRESET', async () => {
  const { backend, port } = await echoBackend('db');
  const lb = await startSluice(await idleReset(`${BACKEND}:${port}`, { frontendAddress: FRONTEND }));
  try {
    const { host, port: fport } = lb.frontend();
    assert.equal(host, FRONTEND);
    const c = tcpClient(host, fport);
    assert.equal(await within(2000, 'greeting', c.greeting), 'db');
    const created = await lb.waitFor('flow.created');
    assert.equal(created.type, 'flow.created');
    assert.equal(lb.flows().length, 1);
    assert.equal(lb.flows()[0]!.msLeft, 240_000);
    const early = await lb.advance('3m59.999s');
    assert.deepEqual(early.ended, []);
    const moved = await lb.advance(1);
    assert.deepEqual(
      moved.ended.map((f) => [f.action, f.rule, f.cause]),
      [['reset', 'rule', 'idle-timeout']],
    );
    // The RST was sent before advance resolved: the client's error is at most a tick away.
    const t0 = Date.now();
    const err = await within(100, 'ECONNRESET within 100 ms of the answer', c.error);
    assert.equal(err.code, 'ECONNRESET');
    assert.ok(Date.now() - t0 <= 100);
    const expired = await lb.waitFor('flow.expired');
    assert.equal(expired.type, 'flow.expired');
    assert.deepEqual(lb.flows(), []);
  } finally {
    await lb.stop();
    await backend.close();
  }
});

test('idle drop: after advance the next write gets no answer, no FIN, no RST, and never reaches the backend', async () => {
  const { backend, port } = await echoBackend('cache');
  const lb = await startSluice(await idleDrop({ host: BACKEND, port }, { frontendAddress: FRONTEND }));
  try {
    const c = tcpClient(lb.frontend().host, lb.frontend().port);
    await within(2000, 'greeting', c.greeting);
    const moved = await lb.advance(4 * 60_000);
    assert.deepEqual(
      moved.ended.map((f) => f.action),
      ['drop'],
    );
    const before = backend.bytesReceived();
    c.socket.write('anyone?\n');
    await sleep(300);
    assert.deepEqual(c.events, [], 'the client saw nothing: no data, no end, no error');
    assert.equal(backend.bytesReceived(), before, 'the backend never heard the write');
    c.socket.destroy();
  } finally {
    await lb.stop();
    await backend.close();
  }
});

test('expire one flow now; flows() lists what the API lists; bad durations are refused', async () => {
  const { backend, port } = await echoBackend('api');
  const lb = await startSluice(await idleReset(`${BACKEND}:${port}`, { frontendAddress: FRONTEND }));
  try {
    const a = tcpClient(lb.frontend().host, lb.frontend().port);
    const b = tcpClient(lb.frontend().host, lb.frontend().port);
    await within(2000, 'greetings', Promise.all([a.greeting, b.greeting]));
    await waitUntil(2000, 'two flows', () => lb.flows().length === 2);
    const [first] = lb.flows();
    assert.equal(first!.rule, 'rule');
    assert.equal(first!.lb, 'test-lb');
    const ended = await lb.expire(first!);
    assert.equal(ended?.action, 'reset');
    assert.equal(ended?.cause, 'request');
    assert.equal(lb.flows().length, 1);
    assert.equal(await lb.expire(first!.id), undefined, 'an ended flow is no live flow');
    assert.throws(() => lb.advance('soon'), /advance\("soon"\)/);
  } finally {
    await lb.stop();
    await backend.close();
  }
});

test('backend down: a probe marked down sends new flows to the other member; cleared, it gets them again', async () => {
  const one = await echoBackend('one', BACKEND);
  const two = await echoBackend('two', OTHER);
  const doc = await inFront(`${BACKEND}:${one.port}`, {
    frontendAddress: FRONTEND,
    probe: true,
    enableTcpReset: true,
  });
  // Two members, one port each: the harness takes any document.
  const pool = (
    doc['properties'] as {
      backendAddressPools: { properties: { loadBalancerBackendAddresses: unknown[] } }[];
    }
  ).backendAddressPools[0]!.properties.loadBalancerBackendAddresses;
  pool.push({ name: 'second', properties: { ipAddress: OTHER } });
  // Both listen on their own port: make the rule's backend port the same on both.
  await two.backend.close();
  const twoAgain = new EchoBackend('two', OTHER);
  await twoAgain.listen(one.port);
  const lb = await startSluice(doc);
  try {
    await lb.advance('5s');
    await waitUntil(3000, 'both members probed up', () => lb.health().every((h) => h.state === 'up'));
    lb.markDown('backend');
    const names = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const c = tcpClient(lb.frontend().host, lb.frontend().port);
      names.add(await within(2000, 'greeting', c.greeting));
      c.socket.destroy();
    }
    assert.deepEqual([...names], ['two']);
    lb.clearMark('backend');
    await waitUntil(3000, 'member up again', () => lb.health().every((h) => h.state === 'up'));
    const seen = new Set<string>();
    for (let i = 0; i < 16 && seen.size < 2; i++) {
      const c = tcpClient(lb.frontend().host, lb.frontend().port);
      seen.add(await within(2000, 'greeting', c.greeting));
      c.socket.destroy();
    }
    assert.deepEqual([...seen].sort(), ['one', 'two']);
  } finally {
    await lb.stop();
    await one.backend.close();
    await twoAgain.close();
  }
});

test('drain: a member removed from its pool keeps its flow for drainPeriodInSeconds of the balancer, then it is reset', async () => {
  const { backend, port } = await echoBackend('old');
  const lb = await startSluice(
    await idleReset(`${BACKEND}:${port}`, { frontendAddress: FRONTEND, drainPeriodInSeconds: 30 }),
  );
  try {
    const c = tcpClient(lb.frontend().host, lb.frontend().port);
    await within(2000, 'greeting', c.greeting);
    await lb.drain('backend');
    c.socket.write('still\n');
    await waitUntil(2000, 'echo while draining', () => Buffer.concat(c.data).toString().includes('still'));
    const during = await lb.advance('29s');
    assert.deepEqual(during.ended, []);
    const after = await lb.advance('1s');
    assert.deepEqual(
      after.ended.map((f) => f.cause),
      ['drain'],
    );
    assert.equal((await within(1000, 'the reset at the drain end', c.error)).code, 'ECONNRESET');
  } finally {
    await lb.stop();
    await backend.close();
  }
});

test('adminState Down takes a member out at once: its flow is reset without the clock moving', async () => {
  const { backend, port } = await echoBackend('admin');
  const lb = await startSluice(await idleDrop(`${BACKEND}:${port}`, { frontendAddress: FRONTEND }));
  try {
    const c = tcpClient(lb.frontend().host, lb.frontend().port);
    await within(2000, 'greeting', c.greeting);
    await lb.setAdminState('Down', 'backend');
    assert.equal((await within(1000, 'reset', c.error)).code, 'ECONNRESET');
    await lb.setAdminState('None', BACKEND);
    const again = tcpClient(lb.frontend().host, lb.frontend().port);
    assert.equal(await within(2000, 'greeting', again.greeting), 'admin');
    again.socket.destroy();
  } finally {
    await lb.stop();
    await backend.close();
  }
});

test('live timeout change: a flow reaches the new 10 minutes with its next packet', async () => {
  const { backend, port } = await echoBackend('live');
  const lb = await startSluice(await idleReset(`${BACKEND}:${port}`, { frontendAddress: FRONTEND }));
  try {
    const c = tcpClient(lb.frontend().host, lb.frontend().port);
    await within(2000, 'greeting', c.greeting);
    await lb.setIdleTimeout(10);
    c.socket.write('ping\n');
    await waitUntil(2000, 'echo', () => Buffer.concat(c.data).toString().includes('ping'));
    assert.equal(lb.flows()[0]!.timeoutMs, 600_000);
    assert.deepEqual((await lb.advance('9m')).ended, []);
    assert.deepEqual(
      (await lb.advance('1m')).ended.map((f) => f.action),
      ['reset'],
    );
    assert.equal((await within(1000, 'reset', c.error)).code, 'ECONNRESET');
    await assert.rejects(lb.setIdleTimeout(101), /SLUICE_CONFIG_IDLE_TIMEOUT_RANGE/);
    assert.equal(lb.rules.length, 1, 'a refused change leaves the configuration as it was');
  } finally {
    await lb.stop();
    await backend.close();
  }
});

test('startSluice refuses an invalid document with every error', async () => {
  const doc = await idleReset('127.0.91.2:80', { frontendAddress: FRONTEND, idleTimeoutInMinutes: 101 });
  await assert.rejects(startSluice(doc), /SLUICE_CONFIG_IDLE_TIMEOUT_RANGE/);
  await assert.rejects(idleReset('db:5432'), /is not ADDRESS:PORT/);
});
