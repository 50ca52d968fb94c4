import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SluiceApp } from '../../src/app.js';
import {
  loadInitialState,
  planControl,
  startApi,
  type RunningApi,
  refuseUnsupported,
} from '../../src/cli/control-setup.js';
import {
  ApiClientError,
  SluiceClient,
  type ResourceAddress,
  type SluiceEvent,
} from '../../src/client/index.js';
import { proxyUnsupported } from '../../src/dataplane/proxy/listeners.js';
import { lbDocument, type TestLb } from '../helpers/arm.js';
import { EchoBackend, freePort, tcpClient, waitUntil, within } from '../helpers/net.js';

/** The API on a running proxy-plane Sluice: live apply, event stream and metrics, over real sockets. */

const ADDR: ResourceAddress = {
  subscription: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'test',
  type: 'loadBalancers',
  name: 'test-lb',
};

interface Running {
  app: SluiceApp;
  api: RunningApi;
  client: SluiceClient;
  stop(): Promise<void>;
}

async function start(lb: TestLb, timeScale = 1): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-api-live-'));
  const file = join(dir, 'lb.json');
  writeFileSync(file, JSON.stringify(lbDocument(lb)));
  const plan = planControl({ api: '127.0.0.1:0', stateDir: join(dir, 'state') });
  assert.ok(typeof plan !== 'string', String(plan));
  const initial = await loadInitialState(file, plan, refuseUnsupported(proxyUnsupported));
  assert.equal(initial.exit, 0);
  const app = await SluiceApp.start(initial.result.snapshot!, {
    logger: pino({ level: 'silent' }),
    timeScale,
  });
  const api = await startApi(plan, initial, app, pino({ level: 'silent' }));
  assert.ok(api !== undefined && typeof api !== 'string', String(api));
  return {
    app,
    api,
    client: new SluiceClient({ base: api.address }),
    stop: async () => {
      await api.close();
      await app.stop();
    },
  };
}

test('a PUT adding a rule while 100 connections stream through another: none disturbed, no byte lost', async () => {
  const backend = new EchoBackend('b', '127.0.6.2');
  const bport = await freePort('127.0.6.2');
  await backend.listen(bport);
  const portA = await freePort('127.0.6.1');
  const portB = await freePort('127.0.6.1');
  const ruleA = { name: 'a', frontendPort: portA, backendPort: bport, enableTcpReset: true };
  const s = await start({ frontend: '127.0.6.1', backends: ['127.0.6.2'], rules: [ruleA] });
  const clients = Array.from({ length: 100 }, () => tcpClient('127.0.6.1', portA));
  const sent = new Array<number>(100).fill(0);
  let streaming = true;
  try {
    await within(5000, 'greetings', Promise.all(clients.map((c) => c.greeting)));
    const pump = setInterval(() => {
      if (!streaming) return;
      clients.forEach((c, i) => {
        const chunk = Buffer.alloc(64, i % 251);
        c.socket.write(chunk);
        sent[i]! += chunk.length;
      });
    }, 5);
    await new Promise((r) => setTimeout(r, 100));
    const put = await s.client.put(
      ADDR,
      lbDocument({
        frontend: '127.0.6.1',
        backends: ['127.0.6.2'],
        rules: [ruleA, { name: 'b', frontendPort: portB, backendPort: bport }],
      }),
    );
    assert.equal(put.created, false);
    // The new rule serves at once.
    const fresh = tcpClient('127.0.6.1', portB);
    assert.equal(await within(2000, 'new rule greeting', fresh.greeting), 'b');
    fresh.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    streaming = false;
    clearInterval(pump);
    const greeting = 'b\n'.length;
    await waitUntil(5000, 'every byte echoed back', () =>
      clients.every((c, i) => c.data.reduce((n, d) => n + d.length, 0) === greeting + sent[i]!),
    );
    for (const [i, c] of clients.entries()) {
      assert.deepEqual(c.events, [], `client ${i} saw ${c.events.join(',')}`);
      assert.ok(sent[i]! > 64 * 10, `client ${i} streamed through the change`);
    }
    const flows = await s.client.flows({ rule: 'a' });
    assert.equal(flows.total, 100);
    assert.ok(flows.flows.every((f) => f.state === 'ESTABLISHED' && !f.ruleRemoved));
  } finally {
    streaming = false;
    for (const c of clients) c.socket.destroy();
    await s.stop();
    await backend.close();
  }
});

test('an invalid PUT is a 400 with its codes and the running load balancer is unchanged', async () => {
  const backend = new EchoBackend('b', '127.0.6.4');
  const bport = await freePort('127.0.6.4');
  await backend.listen(bport);
  const port = await freePort('127.0.6.3');
  const lb = {
    frontend: '127.0.6.3',
    backends: ['127.0.6.4'],
    rules: [{ name: 'web', frontendPort: port, backendPort: bport }],
  };
  const s = await start(lb);
  try {
    const c = tcpClient('127.0.6.3', port);
    assert.equal(await within(2000, 'greeting', c.greeting), 'b');
    const before = await s.client.get(ADDR);
    const other = await freePort('127.0.6.3');
    await assert.rejects(
      s.client.put(
        ADDR,
        lbDocument({
          ...lb,
          rules: [{ name: 'web', frontendPort: other, backendPort: bport, idleTimeoutInMinutes: 2 }],
        }),
      ),
      (err: unknown) => {
        assert.ok(err instanceof ApiClientError);
        assert.equal(err.status, 400);
        assert.equal(err.code, 'SLUICE_API_VALIDATION');
        assert.deepEqual(
          err.body?.error.details.map((d) => d.code),
          ['SLUICE_CONFIG_IDLE_TIMEOUT_RANGE'],
        );
        return true;
      },
    );
    assert.deepEqual(s.app.plane.listening(), [`Tcp|127.0.6.3|${port}`]);
    assert.equal((await s.client.get(ADDR)).etag, before.etag);
    assert.equal((await s.client.health()).generation, 0);
    c.socket.write('still here\n');
    await waitUntil(2000, 'echo after the rejected PUT', () =>
      Buffer.concat(c.data).toString().includes('still here'),
    );
    assert.deepEqual(c.events, []);
    c.socket.destroy();
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('the event stream shows an idle reset within 1 s of it happening, and /metrics counts it', async () => {
  const backend = new EchoBackend('b', '127.0.6.6');
  const bport = await freePort('127.0.6.6');
  await backend.listen(bport);
  const port = await freePort('127.0.6.5');
  // 4 minutes at --time-scale 240: one second.
  const s = await start(
    {
      frontend: '127.0.6.5',
      backends: ['127.0.6.6'],
      rules: [{ name: 'web', frontendPort: port, backendPort: bport, enableTcpReset: true }],
    },
    240,
  );
  const abort = new AbortController();
  const seen: { event: SluiceEvent; at: number }[] = [];
  const reading = (async () => {
    for await (const event of s.client.events({
      signal: abort.signal,
      types: ['flow.created', 'flow.expired'],
    }))
      seen.push({ event, at: Date.now() });
  })();
  try {
    await waitUntil(2000, 'the event stream to subscribe', () => s.app.events.size > 0);
    const c = tcpClient('127.0.6.5', port);
    assert.equal(await within(2000, 'greeting', c.greeting), 'b');
    await waitUntil(2000, 'flow.created on the stream', () =>
      seen.some((e) => e.event.type === 'flow.created'),
    );
    const err = await within(4000, 'idle reset', c.error);
    const resetAt = Date.now();
    assert.equal(err.code, 'ECONNRESET');
    const expired = await waitUntil(1000, 'flow.expired within 1 s', () =>
      seen.find((e) => e.event.type === 'flow.expired'),
    );
    assert.ok(Math.abs(expired.at - resetAt) < 1000, `${expired.at - resetAt} ms apart`);
    assert.equal(expired.event.type === 'flow.expired' && expired.event.action, 'reset');
    assert.equal(expired.event.type === 'flow.expired' && expired.event.flow.rule, 'web');
    const text = await s.client.metrics();
    assert.match(text, /^sluice_flow_idle_expired_total\{lb="test-lb",rule="web",action="reset"\} 1$/m);
    assert.match(text, /^sluice_tcp_rst_sent_total\{lb="test-lb",rule="web",direction="to_client"\} 1$/m);
    assert.match(text, /^sluice_tcp_rst_sent_total\{lb="test-lb",rule="web",direction="to_backend"\} 1$/m);
    assert.match(text, /^sluice_flow_created_total\{lb="test-lb",rule="web",protocol="Tcp"\} 1$/m);
    assert.match(text, /^sluice_flow_bytes_total\{lb="test-lb",rule="web",direction="to_client"\} 2$/m);
  } finally {
    abort.abort();
    await reading.catch(() => {});
    await s.stop();
    await backend.close();
  }
});

test("adminState Down resets a member's flows at once; a removed member drains, then is reset", async () => {
  const b1 = new EchoBackend('one', '127.0.6.8');
  const b2 = new EchoBackend('two', '127.0.6.9');
  const bport = await freePort('127.0.6.8');
  await b1.listen(bport);
  await b2.listen(bport);
  const port = await freePort('127.0.6.7');
  const rules = [{ name: 'web', frontendPort: port, backendPort: bport }];
  const s = await start({ frontend: '127.0.6.7', backends: ['127.0.6.8', '127.0.6.9'], rules }, 60);
  try {
    const byBackend = new Map<string, ReturnType<typeof tcpClient>[]>();
    await waitUntil(5000, 'a connection to each backend', async () => {
      const c = tcpClient('127.0.6.7', port, '127.0.0.1');
      const name = await within(2000, 'greeting', c.greeting);
      byBackend.set(name, [...(byBackend.get(name) ?? []), c]);
      return byBackend.has('one') && byBackend.has('two');
    });
    const doc = lbDocument({ frontend: '127.0.6.7', backends: ['127.0.6.8', '127.0.6.9'], rules });
    const pool = (
      doc['properties'] as {
        backendAddressPools: {
          properties: { loadBalancerBackendAddresses: { properties: Record<string, unknown> }[] };
        }[];
      }
    ).backendAddressPools[0]!.properties;
    pool.loadBalancerBackendAddresses[0]!.properties['adminState'] = 'Down';
    await s.client.put(ADDR, doc);
    for (const c of byBackend.get('one')!)
      assert.equal((await within(2000, 'reset of Down member', c.error)).code, 'ECONNRESET');
    for (const c of byBackend.get('two')!) assert.deepEqual(c.events, [], 'member two untouched');
    // Remove member two with a 60 s drain: one real second at --time-scale 60.
    const drained = lbDocument({ frontend: '127.0.6.7', backends: ['127.0.6.8'], rules });
    const p2 = (drained['properties'] as { backendAddressPools: { properties: Record<string, unknown> }[] })
      .backendAddressPools[0]!.properties;
    p2['drainPeriodInSeconds'] = 60;
    const removedAt = Date.now();
    await s.client.put(ADDR, drained);
    await new Promise((r) => setTimeout(r, 400));
    for (const c of byBackend.get('two')!) assert.deepEqual(c.events, [], 'still draining');
    for (const c of byBackend.get('two')!) {
      assert.equal((await within(3000, 'reset at drain end', c.error)).code, 'ECONNRESET');
      assert.ok(Date.now() - removedAt >= 900, 'not before the drain period');
    }
  } finally {
    await s.stop();
    await b1.close();
    await b2.close();
  }
});
