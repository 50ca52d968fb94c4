import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClientError, SluiceClient, type ResourceAddress } from '../../src/client/index.js';
import { lbDocument } from '../helpers/arm.js';
import { sluice } from '../helpers/cli.js';
import { EchoBackend, freePort, tcpClient, within } from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';

/**
 * A running Sluice refuses a second load balancer on the frontend of the first: 409, and the
 * store, the state file and the traffic stay as they were. Over real HTTP, an encoded "/" in a
 * name and a body nested 10,000 levels deep are 400s, never a 500.
 */

const FRONTEND = '127.0.40.1';
const BACKEND_A = '127.0.40.2';
const BACKEND_B = '127.0.40.3';

const address = (name: string): ResourceAddress => ({
  subscription: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'test',
  type: 'loadBalancers',
  name,
});

function lb(
  name: string,
  port: number,
  backend: string,
  backendPort: number,
  idle = 4,
): Record<string, unknown> {
  return lbDocument({
    name,
    frontend: FRONTEND,
    backends: [backend],
    rules: [{ name: 'web', frontendPort: port, backendPort, idleTimeoutInMinutes: idle }],
  });
}

async function refusal(p: Promise<unknown>): Promise<ApiClientError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiClientError) return err;
    throw err;
  }
  assert.fail('the request was accepted');
}

test('a PUT of a second load balancer on the address and port of the first: 409, nothing changed, traffic still to the first', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-conflict-'));
  const stateDir = join(dir, 'state');
  const port = await freePort(FRONTEND);
  const a = new EchoBackend('a', BACKEND_A);
  const b = new EchoBackend('b', BACKEND_B);
  const portA = await freePort(BACKEND_A);
  const portB = await freePort(BACKEND_B);
  await a.listen(portA);
  await b.listen(portB);
  const file = join(dir, 'lb.json');
  writeFileSync(file, JSON.stringify(lb('lb-a', port, BACKEND_A, portA)));
  const run = startSluice(['run', file, '--api', `${FRONTEND}:0`, '--state-dir', stateDir]);
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    const client = new SluiceClient({ base: String(ready.api) });
    // A first change writes the state file, so that the refused one can be seen not to touch it.
    await client.put(address('lb-a'), lb('lb-a', port, BACKEND_A, portA, 5));
    const statePath = join(stateDir, 'state.json');
    const stateBefore = readFileSync(statePath, 'utf8');
    const healthBefore = await client.health();

    const err = await refusal(client.put(address('lb-b'), lb('lb-b', port, BACKEND_B, portB)));
    assert.equal(err.status, 409);
    assert.equal(err.code, 'SLUICE_API_CONFLICT');
    const detail = err.body?.error.details.find((d) => d.code === 'SLUICE_CONFIG_FRONTEND_CONFLICT');
    assert.match(
      detail?.message ?? '',
      new RegExp(`'lb-b'.*'lb-a'.*${FRONTEND.replaceAll('.', '\\.')} Tcp port ${port}`),
    );

    assert.equal(readFileSync(statePath, 'utf8'), stateBefore);
    assert.deepEqual(await client.health(), healthBefore);
    assert.equal((await refusal(client.get(address('lb-b')))).status, 404);
    const c = tcpClient(FRONTEND, port);
    try {
      assert.equal(await within(5000, 'the greeting', c.greeting), 'a');
    } finally {
      c.socket.destroy();
    }
    assert.equal(b.sockets.length, 0);

    // Over real HTTP: the router decodes %2F, and the name that results is refused.
    const slash = await refusal(
      client.put(address('lb-a/loadBalancingRules/web'), lb('x', port, BACKEND_A, portA)),
    );
    assert.equal(slash.status, 400);
    assert.equal(slash.code, 'SLUICE_CONFIG_INVALID_NAME');

    const deep = await fetch(
      `${client.base}/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network/loadBalancers/lb-c?api-version=2024-05-01`,
      {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: `{"tags":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`,
      },
    );
    assert.equal(deep.status, 400);
    const deepBody = (await deep.json()) as { error: { details: { code: string }[] } };
    assert.deepEqual(
      deepBody.error.details.map((d) => d.code),
      ['SLUICE_CONFIG_TOO_DEEP'],
    );
    assert.equal(readFileSync(statePath, 'utf8'), stateBefore);
    assert.equal(await run.stop('SIGTERM'), 0);
  } finally {
    await run.stop('SIGKILL');
    await a.close();
    await b.close();
  }
});

test('sluice validate of two load balancers on one frontend in one document: exit 1 naming both', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-conflict-validate-'));
  const file = join(dir, 'both.json');
  writeFileSync(file, JSON.stringify([lb('lb-a', 8080, BACKEND_A, 80), lb('lb-b', 8080, BACKEND_B, 80)]));
  const r = await sluice('validate', file);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const out = r.stdout + r.stderr;
  assert.match(out, /SLUICE_CONFIG_FRONTEND_CONFLICT/);
  assert.match(
    out,
    /loadBalancers 'lb-b' loadBalancingRules 'web' and loadBalancers 'lb-a' loadBalancingRules 'web'/,
  );
});
