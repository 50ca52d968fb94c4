import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SluiceApp } from '../../src/app.js';
import { loadInitialState, planControl, startApi, refuseUnsupported } from '../../src/cli/control-setup.js';
import { SluiceClient, type FlowView, type ResourceAddress } from '../../src/client/index.js';
import { proxyUnsupported } from '../../src/dataplane/proxy/listeners.js';
import { lbDocument, type TestLb } from '../helpers/arm.js';
import { EchoBackend, freePort, tcpClient, waitUntil, within } from '../helpers/net.js';

/**
 * A PUT that changes a rule's idle timeout while its connections are quiet: each keeps the
 * deadline it had until it next sends, and from then on counts the new timeout (issue 6, live
 * apply). Real sockets through the proxy plane, at --time-scale 240 (a minute is 250 ms).
 */

const ADDR: ResourceAddress = {
  subscription: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'test',
  type: 'loadBalancers',
  name: 'test-lb',
};
const SCALE = 240;
const MIN_REAL = 60_000 / SCALE;
const MIN = 60_000;

test('a PUT lowering idleTimeoutInMinutes: a quiet connection keeps its old deadline, one that sends gets the new timeout from then', async () => {
  const backend = new EchoBackend('b', '127.0.8.2');
  const bport = await freePort('127.0.8.2');
  await backend.listen(bport);
  const port = await freePort('127.0.8.1');
  const lb = (idleTimeoutInMinutes: number): TestLb => ({
    frontend: '127.0.8.1',
    backends: ['127.0.8.2'],
    rules: [
      { name: 'web', frontendPort: port, backendPort: bport, enableTcpReset: true, idleTimeoutInMinutes },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'sluice-idle-change-'));
  const file = join(dir, 'lb.json');
  writeFileSync(file, JSON.stringify(lbDocument(lb(8))));
  const plan = planControl({ api: '127.0.0.1:0', stateDir: join(dir, 'state') });
  assert.ok(typeof plan !== 'string', String(plan));
  const initial = await loadInitialState(file, plan, refuseUnsupported(proxyUnsupported));
  const app = await SluiceApp.start(initial.result.snapshot!, {
    logger: pino({ level: 'silent' }),
    timeScale: SCALE,
  });
  const api = await startApi(plan, initial, app, pino({ level: 'silent' }));
  assert.ok(api !== undefined && typeof api !== 'string', String(api));
  const client = new SluiceClient({ base: api.address });
  const flowOf = async (localPort: number): Promise<FlowView> => {
    const { flows } = await client.flows();
    const f = flows.find((x) => x.client.endsWith(`:${localPort}`));
    assert.ok(f, `flow of client port ${localPort} in ${JSON.stringify(flows)}`);
    return f;
  };
  try {
    const quiet = tcpClient('127.0.8.1', port, '127.0.8.3');
    const talker = tcpClient('127.0.8.1', port, '127.0.8.4');
    await within(2000, 'greetings', Promise.all([quiet.greeting, talker.greeting]));
    // The greeting is each flow's last activity: the old 8 minutes count from it.
    const quietLastByte = Date.now();
    const quietPort = quiet.socket.localPort!;
    const talkerPort = talker.socket.localPort!;

    await client.put(ADDR, lbDocument(lb(4)));
    for (const p of [quietPort, talkerPort]) {
      const f = await flowOf(p);
      assert.equal(f.timeoutMs, 8 * MIN, 'the PUT moves no deadline');
      assert.ok(f.msLeft > 4 * MIN, `msLeft ${f.msLeft} still counts the old 8 minutes`);
    }

    talker.socket.write('ping\n');
    await waitUntil(2000, 'the echo', () => Buffer.concat(talker.data).toString().includes('ping'));
    const talkerLastByte = Date.now();
    const t = await flowOf(talkerPort);
    assert.equal(t.timeoutMs, 4 * MIN, 'from its next bytes the flow counts the new timeout');
    assert.ok(t.msLeft > 3 * MIN && t.msLeft <= 4 * MIN, `msLeft ${t.msLeft}`);
    assert.equal((await flowOf(quietPort)).timeoutMs, 8 * MIN);

    // The talker is reset 4 minutes after its echo, the quiet one 8 minutes after its greeting.
    const talkerErr = await within(8 * MIN_REAL, 'the talker reset', talker.error);
    const talkerAfter = Date.now() - talkerLastByte;
    assert.equal(talkerErr.code, 'ECONNRESET');
    assert.ok(
      talkerAfter >= 4 * MIN_REAL - 150 && talkerAfter < 6 * MIN_REAL,
      `talker reset ${talkerAfter} ms after its last bytes`,
    );
    assert.ok(
      !quiet.events.some((e) => e.startsWith('error')),
      `the quiet connection outlived the new timeout: ${quiet.events.join(',')}`,
    );
    const quietErr = await within(8 * MIN_REAL, 'the quiet reset', quiet.error);
    const quietAfter = Date.now() - quietLastByte;
    assert.equal(quietErr.code, 'ECONNRESET');
    assert.ok(
      quietAfter >= 8 * MIN_REAL - 150 && quietAfter < 10 * MIN_REAL,
      `quiet reset ${quietAfter} ms after its last bytes, at its old 8-minute deadline`,
    );
  } finally {
    await api.close();
    await app.stop();
    await backend.close();
  }
});
