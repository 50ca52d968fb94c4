import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SluiceClient, type ResourceAddress } from '../../src/client/index.js';
import { lbDocument } from '../helpers/arm.js';
import { sluice } from '../helpers/cli.js';
import { EchoBackend, freePort, tcpClient, waitUntil, within } from '../helpers/net.js';
import { startSluice } from '../helpers/process.js';
import { SEED, seeded } from '../helpers/seed.js';

/**
 * `sluice apply` of a document with several resources is one deployment: all of it is applied,
 * or none. A public IP and the load balancer it fronts (B9: the IP's idle timeout decides the
 * rules'), through a real `sluice run`.
 */

const SUB = '00000000-0000-0000-0000-000000000000';
const PIP_ID = `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Network/publicIPAddresses/lb-pip`;
const LB_ID = `/subscriptions/${SUB}/resourceGroups/test/providers/Microsoft.Network/loadBalancers/test-lb`;
const LB: ResourceAddress = {
  subscription: SUB,
  resourceGroup: 'test',
  type: 'loadBalancers',
  name: 'test-lb',
};
const PIP: ResourceAddress = { ...LB, type: 'publicIPAddresses', name: 'lb-pip' };
const FRONTEND = '127.0.70.1';
const BACKEND = '127.0.70.2';

function resources(o: { port: number; bport: number; pipIdle: number; ruleIdle?: number }): unknown[] {
  const lb = lbDocument({
    frontend: FRONTEND,
    backends: [BACKEND],
    rules: [
      { name: 'web', frontendPort: o.port, backendPort: o.bport, idleTimeoutInMinutes: o.ruleIdle ?? 4 },
    ],
  });
  const props = lb['properties'] as { frontendIPConfigurations: { properties: Record<string, unknown> }[] };
  props.frontendIPConfigurations[0]!.properties = { publicIPAddress: { id: PIP_ID } };
  const pip = {
    id: PIP_ID,
    name: 'lb-pip',
    type: 'Microsoft.Network/publicIPAddresses',
    sku: { name: 'Standard' },
    properties: { ipAddress: FRONTEND, idleTimeoutInMinutes: o.pipIdle },
  };
  return [pip, lb];
}

test("a valid public IP change with an invalid load balancer: sluice apply fails, and the resources, the flows' timeouts and the state file stay as they were", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-batch-'));
  const backend = new EchoBackend('b', BACKEND);
  const bport = await freePort(BACKEND);
  await backend.listen(bport);
  const port = await freePort(FRONTEND);
  const file = join(dir, 'lb.json');
  writeFileSync(file, JSON.stringify({ resources: resources({ port, bport, pipIdle: 10 }) }));
  const stateFile = join(dir, 'state', 'state.json');
  const run = startSluice(['run', file, '--api', '127.0.70.3:0', '--state-dir', join(dir, 'state')]);
  try {
    const api = String((await run.waitFor((l) => l.msg === 'ready', 10_000)).api);
    const client = new SluiceClient({ base: api });

    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ resources: resources({ port, bport, pipIdle: 12 }) }));
    const ok = await sluice('apply', good, '--api', api);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(
      ok.stdout
        .trim()
        .split('\n')
        .map((l) => l.replace(/\(W\/"[^"]+"\)/, '(etag)')),
      [
        `changed ${PIP_ID} (etag): idleTimeoutInMinutes`,
        `unchanged ${LB_ID} (etag)`,
        'applied as generation 1',
      ],
    );

    const c = tcpClient(FRONTEND, port);
    assert.equal(await within(2000, 'greeting through the rule', c.greeting), 'b');
    const timeouts = async (): Promise<number[]> => (await client.flows()).flows.map((f) => f.timeoutMs);
    await waitUntil(2000, 'the flow is listed', async () => (await timeouts()).length === 1);
    assert.deepEqual(await timeouts(), [12 * 60_000]);

    const before = {
      pip: await client.get(PIP),
      lb: await client.get(LB),
      state: readFileSync(stateFile, 'utf8'),
      generation: (await client.health()).generation,
    };
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ resources: resources({ port, bport, pipIdle: 20, ruleIdle: 3 }) }));
    const rejected = await sluice('apply', bad, '--api', api);
    assert.equal(rejected.code, 1, rejected.stdout);
    assert.equal(rejected.stdout, '', 'nothing is reported as changed');
    assert.match(
      rejected.stderr,
      /^deployment bad: this deployment would leave an invalid configuration.* \[SLUICE_API_VALIDATION\]$/m,
    );
    assert.match(
      rejected.stderr,
      /loadBalancers\/test-lb#\/properties\/loadBalancingRules\/0\/properties\/idleTimeoutInMinutes: .* \[SLUICE_CONFIG_IDLE_TIMEOUT_RANGE\]/,
    );
    assert.match(rejected.stderr, /^nothing changed$/m);

    assert.deepEqual(await client.get(PIP), before.pip);
    assert.deepEqual(await client.get(LB), before.lb);
    assert.equal(readFileSync(stateFile, 'utf8'), before.state);
    assert.equal((await client.health()).generation, before.generation);
    // A packet after the failed apply would carry a changed timeout to the flow: it has none.
    c.socket.write('ping\n');
    await waitUntil(2000, 'the echo', () => Buffer.concat(c.data).includes('ping'));
    assert.deepEqual(await timeouts(), [12 * 60_000]);
    c.socket.destroy();
  } finally {
    await run.stop('SIGKILL');
    await backend.close();
  }
});

interface StateFile {
  generation: number;
  resources: { id: string; body: { properties: Record<string, unknown> } }[];
}

test('kill -9 during 100 consecutive deployments of two resources: the state file holds both from one deployment, never one of each', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-batch-kill-'));
  const stateDir = join(dir, 'state');
  const port = await freePort(FRONTEND);
  const file = join(dir, 'lb.json');
  // Deployment i sets the public IP's idle timeout to 4 + i % 97 and the backend port to 1000 + i.
  const batch = (i: number): unknown[] => resources({ port, bport: 1000 + i, pipIdle: 4 + (i % 97) });
  writeFileSync(file, JSON.stringify({ resources: batch(0) }));
  const run = startSluice(['run', file, '--api', '127.0.70.4:0', '--state-dir', stateDir]);
  let acknowledged = 0;
  try {
    const ready = await run.waitFor((l) => l.msg === 'ready', 10_000);
    const client = new SluiceClient({ base: String(ready.api) });
    const random = seeded(SEED);
    const killAfter = 11 + Math.floor(random() * 80);
    const generations: number[] = [];
    let failure: unknown;
    for (let i = 1; i <= 100; i++) {
      const deploy = client.deploy({ subscription: SUB, resourceGroup: 'test', name: `d${i}` }, batch(i));
      if (i === killAfter) setTimeout(() => run.child.kill('SIGKILL'), random() * 5);
      try {
        generations.push((await deploy).properties.generation);
        acknowledged = i;
      } catch (err) {
        failure = err;
        break;
      }
    }
    // Should a deployment fail before the kill point, the process still goes, and the test says why.
    run.child.kill('SIGKILL');
    await run.exited;
    assert.ok(
      acknowledged >= 10,
      `${acknowledged} deployments acknowledged before the kill (seed ${SEED}): ${String(failure)}`,
    );
    assert.deepEqual(
      generations,
      generations.map((_, k) => k + 1),
      'one generation per deployment',
    );
    assert.ok(acknowledged < 100, 'the kill came before the last deployment');
    const state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as StateFile;
    assert.equal(state.resources.length, 2);
    const pip = state.resources.find((r) => r.id.includes('/publicIPAddresses/'))!;
    const lb = state.resources.find((r) => r.id.includes('/loadBalancers/'))!;
    const rules = lb.body.properties['loadBalancingRules'] as { properties: { backendPort: number } }[];
    const fromLb = rules[0]!.properties.backendPort - 1000;
    assert.equal(
      pip.body.properties['idleTimeoutInMinutes'],
      4 + (fromLb % 97),
      `the public IP and the load balancer are from one deployment (seed ${SEED})`,
    );
    // Every acknowledged deployment is durable; at most the one in flight may be there as well.
    assert.ok(
      fromLb === acknowledged || fromLb === acknowledged + 1,
      `stored #${fromLb}, acknowledged ${acknowledged} (seed ${SEED})`,
    );
    assert.equal(state.generation, fromLb);
  } finally {
    await run.stop('SIGKILL');
  }
});
