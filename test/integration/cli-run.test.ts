import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lbDocument, type TestLb } from '../helpers/arm.js';
import { fixturesPath, sluice } from '../helpers/cli.js';
import { EchoBackend, freePort, tcpClient, within } from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';
import { SluiceClient } from '../../src/client/index.js';

/** `sluice run` as a user runs it: the ready line, the exits, the signals. */

const dir = mkdtempSync(join(tmpdir(), 'sluice-run-'));

function writeConfig(name: string, lb: TestLb | Record<string, unknown>): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify('frontend' in lb ? lbDocument(lb as TestLb) : lb));
  return file;
}

test('run: logs "ready", balances a connection, resets it at idle, and exits 0 on SIGTERM', async () => {
  const backend = new EchoBackend('only', '127.0.4.2');
  const backendPort = await freePort('127.0.4.2');
  await backend.listen(backendPort);
  const port = await freePort('127.0.4.10');
  const file = writeConfig('ok', {
    frontend: '127.0.4.10',
    backends: ['127.0.4.2'],
    rules: [{ name: 'web', frontendPort: port, backendPort, enableTcpReset: true }],
  });
  const run = startSluice(['run', file, '--time-scale', '240']);
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    assert.deepEqual(ready.listeners, [`Tcp|127.0.4.10|${port}`]);
    assert.equal(ready.tcpRelay, 'handles', 'the relay on libuv handles is the default');
    const c = tcpClient('127.0.4.10', port);
    assert.equal(await within(2000, 'greeting', c.greeting), 'only');
    const err = await within(3000, 'idle reset', c.error);
    assert.equal(err.code, 'ECONNRESET');
    await run.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('idle timeout: TCP reset'), 2000);
    assert.equal(await run.stop('SIGTERM'), 0);
  } finally {
    await run.stop('SIGKILL');
    await backend.close();
  }
});

test('run: an invalid document exits 1 with its errors, before opening anything', async () => {
  const r = await sluice('run', join(fixturesPath, 'invalid/idle-timeout-standard.json'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\[SLUICE_CONFIG_IDLE_TIMEOUT_RANGE\]/);
});

test('run: a port in use exits 1 naming the rule and the address, leaving no listener open', async () => {
  const taken = createServer();
  taken.listen(0, '127.0.4.11');
  await once(taken, 'listening');
  const busy = (taken.address() as { port: number }).port;
  const free = await freePort('127.0.4.11');
  const file = writeConfig('busy', {
    frontend: '127.0.4.11',
    backends: ['127.0.4.2'],
    rules: [
      { name: 'fine', frontendPort: free, backendPort: 80 },
      { name: 'clash', frontendPort: busy, backendPort: 80 },
    ],
  });
  try {
    const r = await sluice('run', file);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(
      r.stderr.includes(`load-balancing rule 'clash': cannot listen on Tcp 127.0.4.11:${busy}`),
      r.stderr,
    );
    assert.match(r.stderr, /already in use \[SLUICE_PLANE_LISTEN\]$/m, 'the message ends with its code');
    // The other listener was closed again: the port can be bound.
    const again = createServer();
    again.listen(free, '127.0.4.11');
    await once(again, 'listening');
    await new Promise((resolve) => again.close(resolve));
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});

test('run --strict: what the proxy plane cannot serve (an outbound rule) is refused with a pointer to the packet plane', async () => {
  const r = await sluice(
    'run',
    join(fixturesPath, 'valid/standard-public-outbound.json'),
    '--strict',
    '--api',
    'off',
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /outbound rule 'egress'.*use --dataplane packet \[SLUICE_PLANE_UNSUPPORTED\]/);
  assert.match(r.stderr, /--strict refuses these; without it the rest is served/);
});

test('run: the proxy plane serves the rules it can and warns, once each, about the outbound rules it leaves out', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-partial-'));
  const run = startSluice([
    'run',
    join(fixturesPath, 'valid/standard-public-outbound.json'),
    '--map',
    '20.50.60.70=127.0.4.15',
    '--api',
    '127.0.0.1:0',
    '--state-dir',
    join(dir, 'state'),
  ]);
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    // Its load-balancing rules (80, 443) and inbound NAT rules (2201, 50000-50002) are served.
    assert.deepEqual(
      [...(ready.listeners as string[])].sort(),
      ['2201', '443', '50000', '50001', '50002', '80'].map((p) => `Tcp|127.0.4.15|${p}`),
    );
    for (const name of ['egress', 'egress-nic']) {
      const warned = run.lines.filter(
        (l) => l.level === 40 && typeof l.msg === 'string' && l.msg.includes(`outbound rule '${name}'`),
      );
      assert.equal(warned.length, 1, `one warning for ${name}: ${JSON.stringify(run.lines.slice(0, 6))}`);
      assert.match(
        String(warned[0]!.msg),
        /not served by the proxy data plane \(--dataplane packet serves it\)/,
      );
    }
    // A change through the API is served the same way: accepted, the outbound rules warned about.
    const client = new SluiceClient({ base: String(ready.api) });
    const address = {
      subscription: '00000000-0000-0000-0000-000000000000',
      resourceGroup: 'sluice-test',
      type: 'loadBalancers' as const,
      name: 'public-lb',
    };
    const lb = await client.get(address);
    const rules = lb.properties['loadBalancingRules'] as { properties: Record<string, unknown> }[];
    rules[0]!.properties['idleTimeoutInMinutes'] = 9;
    await client.put(address, lb);
    await run.waitFor((l) => l.msg === 'configuration applied', 5000);
    assert.ok(
      run.lines.filter((l) => l.level === 40 && String(l.msg).includes("outbound rule 'egress'")).length >= 2,
      'warned again for the change',
    );
    assert.equal(await run.stop('SIGTERM'), 0);
  } finally {
    await run.stop('SIGKILL');
  }
});

test('run: usage errors exit 2', async () => {
  const r = await sluice('run', join(fixturesPath, 'valid/hand-written.json'), '--time-scale', 'fast');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--time-scale expects a number > 0/);
  const hold = await sluice('run', join(fixturesPath, 'valid/hand-written.json'), '--snat-port-hold', '-5');
  assert.equal(hold.code, 2);
  assert.match(hold.stderr, /--snat-port-hold expects a number > 0, got '-5'/);
  const relay = await sluice('run', join(fixturesPath, 'valid/hand-written.json'), '--tcp-relay', 'splice');
  assert.equal(relay.code, 2);
  assert.match(relay.stderr, /--tcp-relay expects handles or sockets, got 'splice'/);
  for (const value of ['-3', '2000', '1.5']) {
    const poll = await sluice('run', join(fixturesPath, 'valid/hand-written.json'), '--busy-poll', value);
    assert.equal(poll.code, 2, `--busy-poll ${value}`);
    assert.match(
      poll.stderr,
      new RegExp(`--busy-poll expects whole microseconds from 0 to 1000, got '${value}'`),
    );
  }
});

test('run --tcp-relay sockets: the net.Socket relay serves the same rule', async () => {
  const backend = new EchoBackend('via-sockets', '127.0.4.3');
  const backendPort = await freePort('127.0.4.3');
  await backend.listen(backendPort);
  const port = await freePort('127.0.4.12');
  const file = writeConfig('sockets', {
    frontend: '127.0.4.12',
    backends: ['127.0.4.3'],
    rules: [{ name: 'web', frontendPort: port, backendPort, enableTcpReset: true }],
  });
  const run = startSluice([
    'run',
    file,
    '--tcp-relay',
    'sockets',
    '--api',
    'off',
    '--state-dir',
    join(dir, 'state-sockets'),
  ]);
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    assert.equal(ready.tcpRelay, 'sockets');
    const c = tcpClient('127.0.4.12', port);
    assert.equal(await within(2000, 'greeting', c.greeting), 'via-sockets');
    c.socket.destroy();
    assert.equal(await run.stop('SIGTERM'), 0);
  } finally {
    await run.stop('SIGKILL');
    await backend.close();
  }
});
