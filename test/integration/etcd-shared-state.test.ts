import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClientError, type ArmResource } from '../../src/client/index.js';
import { etcdTest, pickEtcdPorts, startEtcd, type RunningEtcd } from '../helpers/etcd.js';
import { EchoBackend, freePort, tcpClient, waitUntil } from '../helpers/net.js';
import { metricValue } from '../helpers/scrape.js';
import {
  BACKEND,
  LB,
  converged,
  etagOn,
  greetingThrough,
  health,
  poolDocument,
  startInstance,
  stopAll,
  withRules,
  type Instance,
} from '../helpers/pool.js';

/**
 * Three instances share one desired state in etcd: a change through any of them reaches the
 * others within a second, on their API and on their listeners; conflicting changes made at
 * once through two of them: exactly one wins; a deployment is all or nothing everywhere.
 */

const PIPS =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network/publicIPAddresses';

function pip(name: string, idle = 4): Record<string, unknown> {
  return {
    id: `${PIPS}/${name}`,
    name,
    type: 'Microsoft.Network/publicIPAddresses',
    sku: { name: 'Standard' },
    properties: { publicIPAllocationMethod: 'Static', ipAddress: '198.18.87.1', idleTimeoutInMinutes: idle },
  };
}

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiClientError) return err.status;
    throw err;
  }
}

etcdTest(
  'three instances on one etcd: changes reach all within 1 s, one of two conflicting writes wins, deployments all or nothing',
  60_000,
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-etcd-'));
    const backendPort = await freePort(BACKEND);
    const backend = new EchoBackend('b1', BACKEND);
    let etcd: RunningEtcd | undefined;
    const instances: Instance[] = [];
    try {
      await backend.listen(backendPort);
      etcd = await startEtcd(join(dir, 'etcd'), await pickEtcdPorts());
      const url = etcd.url('sluice/test');
      const [p1, p2] = [await freePort('127.0.87.11'), await freePort('127.0.87.11')];
      const file = join(dir, 'lb.json');
      writeFileSync(file, JSON.stringify(poolDocument([{ name: 'web', frontendPort: p1, backendPort }])));
      // The first writes CONFIG to etcd; the others start from what etcd holds.
      instances.push(await startInstance('i1', '127.0.87.11', [file, '--state', url]));
      instances.push(await startInstance('i2', '127.0.87.12', ['--state', url]));
      instances.push(await startInstance('i3', '127.0.87.13', ['--state', url]));
      const [i1, i2, i3] = instances as [Instance, Instance, Instance];
      assert.match(i1.run.stderr.join('\n'), /written to etcd:\/\/.* as generation 0/);
      for (const i of instances)
        assert.equal(await greetingThrough(i.address, p1), 'b1', `${i.name} serves CONFIG`);
      const h2 = await health(i2);
      assert.deepEqual(
        { kind: h2.stateStore.kind, location: h2.stateStore.location, up: h2.stateStore.up },
        { kind: 'etcd', location: url, up: true },
      );

      await t.test('a PUT through instance 1 is served by instances 2 and 3 within 1 s', async () => {
        const body = await withRules(i1, [
          { name: 'web', frontendPort: p1, backendPort },
          { name: 'web2', frontendPort: p2, backendPort },
        ]);
        const put = await i1.api.put(LB, body, { ifMatch: body.etag });
        const took = await converged([i2, i3], put.resource.etag, 1000);
        t.diagnostic(`instances 2 and 3 served the PUT's etag ${took} ms after its answer`);
        for (const i of [i2, i3]) {
          await waitUntil(
            1000,
            `${i.name} to listen on port ${p2}`,
            async () => (await health(i)).listeners === 2,
          );
          assert.equal(await greetingThrough(i.address, p2), 'b1', `${i.name} serves the new rule`);
          assert.equal((await health(i)).generation, (await health(i1)).generation);
        }
        // A flow through instance 3 is instance 3's: it lists it.
        const c = tcpClient(i3.address, p2);
        try {
          await c.greeting;
          const flows = await i3.api.flows({ rule: 'web2' });
          assert.equal(flows.total, 1);
        } finally {
          c.socket.destroy();
        }
      });

      await t.test(
        'conflicting PUTs with one If-Match through two instances at once: one wins, the other gets 412',
        async () => {
          for (let round = 0; round < 5; round++) {
            const base = await i1.api.get(LB);
            await converged(instances, base.etag, 2000);
            const change = (idle: number): ArmResource => {
              const rules = [
                { name: 'web', frontendPort: p1, backendPort, idleTimeoutInMinutes: idle },
                { name: 'web2', frontendPort: p2, backendPort },
              ];
              return { ...base, properties: (poolDocument(rules) as ArmResource).properties };
            };
            const answers = await Promise.all([
              i1.api.put(LB, change(10 + round), { ifMatch: base.etag }).then(
                (r) => ({ status: 200, etag: r.resource.etag }),
                (e: unknown) => ({ status: e instanceof ApiClientError ? e.status : -1, etag: '' }),
              ),
              i2.api.put(LB, change(20 + round), { ifMatch: base.etag }).then(
                (r) => ({ status: 200, etag: r.resource.etag }),
                (e: unknown) => ({ status: e instanceof ApiClientError ? e.status : -1, etag: '' }),
              ),
            ]);
            assert.deepEqual(
              answers.map((a) => a.status).sort(),
              [200, 412],
              `round ${round}: ${JSON.stringify(answers)}`,
            );
            const winner = answers.find((a) => a.status === 200)!;
            await converged(instances, winner.etag, 1000);
            const served = await i3.api.get(LB);
            const idle = (
              served.properties['loadBalancingRules'] as { properties: { idleTimeoutInMinutes: number } }[]
            )[0]!.properties.idleTimeoutInMinutes;
            assert.equal(
              idle,
              answers[0]!.status === 200 ? 10 + round : 20 + round,
              'the winner is what is served',
            );
          }
        },
      );

      await t.test(
        'PUTs of two resources through two instances at once: both are stored, none is lost',
        async () => {
          const [a, b] = await Promise.all([
            i1.api.put({ ...LB, type: 'publicIPAddresses', name: 'pip-a' }, pip('pip-a')),
            i2.api.put({ ...LB, type: 'publicIPAddresses', name: 'pip-b' }, pip('pip-b')),
          ]);
          await waitUntil(1000, 'instance 3 to hold both public IPs', async () => {
            const list = await i3.api.list(LB.subscription, 'publicIPAddresses', 'test');
            const etags = list.map((r) => r.etag).sort();
            return JSON.stringify(etags) === JSON.stringify([a.resource.etag, b.resource.etag].sort());
          });
        },
      );

      await t.test('a deployment through instance 2 is all or nothing on every instance', async () => {
        const before = await Promise.all(instances.map(etagOn));
        const gen = (await health(i1)).stateStore.generation;
        const lb = await i2.api.get(LB);
        const bad = { ...lb, properties: { ...lb.properties } } as ArmResource;
        (bad.properties['loadBalancingRules'] as { properties: Record<string, unknown> }[])[0]!.properties[
          'idleTimeoutInMinutes'
        ] = 200;
        const refused = await statusOf(
          i2.api.deploy({ ...LB, name: 'bad' }, [pip('pip-c'), pip('pip-d'), bad]),
        );
        assert.equal(refused, 400);
        await new Promise((r) => setTimeout(r, 300));
        assert.deepEqual(
          await Promise.all(instances.map(etagOn)),
          before,
          'a refused deployment changed nothing',
        );
        for (const i of instances) assert.equal((await health(i)).stateStore.generation, gen);
        const seen: number[] = [];
        let watching = true;
        const watch = (async () => {
          for (let n = 0; watching && n < 500; n++) {
            const list = await i3.api.list(LB.subscription, 'publicIPAddresses', 'test');
            seen.push(list.filter((r) => r.name === 'pip-c' || r.name === 'pip-d').length);
          }
        })();
        const deployed = await i2.api.deploy({ ...LB, name: 'good' }, [pip('pip-c'), pip('pip-d')]);
        assert.equal(deployed.properties.generation, gen + 1);
        await waitUntil(1000, 'instances 1 and 3 to hold the deployment', async () => {
          const hs = await Promise.all([i1, i3].map(health));
          return hs.every((h) => h.stateStore.generation === gen + 1 && h.generation === gen + 1);
        });
        await new Promise((r) => setTimeout(r, 50));
        watching = false;
        await watch;
        assert.ok(seen.includes(2), 'instance 3 shows the deployment');
        assert.ok(
          seen.every((n) => n === 0 || n === 2),
          `instance 3 never showed half a deployment: ${seen.join(',')}`,
        );
      });

      await t.test(
        'a generation one instance cannot serve: it logs and counts it, serves the last one, and catches up later',
        async () => {
          const p3 = await freePort('127.0.87.13');
          // Something else holds instance 3's address and port: its plane refuses the new rule.
          const squatter = createServer().listen(p3, '127.0.87.13');
          await once(squatter, 'listening');
          try {
            const before = await health(i3);
            const body = await withRules(i1, [
              { name: 'web', frontendPort: p1, backendPort },
              { name: 'web3', frontendPort: p3, backendPort },
            ]);
            const put = await i1.api.put(LB, body, { ifMatch: body.etag });
            await converged([i2], put.resource.etag, 1000);
            const h = await waitUntil(1000, 'instance 3 to refuse the generation', async () => {
              const now = await health(i3);
              return now.stateStore.generation > before.stateStore.generation ? now : undefined;
            });
            assert.equal(h.generation, before.generation, 'instance 3 serves the generation it had');
            assert.equal(await etagOn(i3), put.resource.etag, 'its API shows what is stored');
            assert.equal(
              metricValue(await i3.api.metrics(), 'sluice_state_not_served_total', { reason: 'failed' }),
              1,
            );
            assert.ok(
              i3.run.lines.some((l) => l['code'] === 'SLUICE_STATE_NOT_SERVED' && l['reason'] === 'failed'),
              'it logs why',
            );
            assert.equal(await greetingThrough(i3.address, p1), 'b1', 'and goes on serving');
            assert.equal(await greetingThrough(i2.address, p3), 'b1', 'the others serve the new rule');
          } finally {
            await new Promise((r) => squatter.close(r));
          }
          const back = await withRules(i1, [
            { name: 'web', frontendPort: p1, backendPort },
            { name: 'web2', frontendPort: p2, backendPort },
          ]);
          const put = await i1.api.put(LB, back, { ifMatch: back.etag });
          await converged(instances, put.resource.etag, 1000);
          await waitUntil(1000, 'instance 3 to serve the stored generation again', async () => {
            const h = await health(i3);
            return h.generation === h.stateStore.generation;
          });
        },
      );

      await t.test(
        'CONFIG at start: the one the pool started from is not written again; another one replaces the state',
        async () => {
          const gen = (await health(i2)).stateStore.generation;
          const etag = await etagOn(i2);
          await stopAll([instances[0]]);
          instances[0] = await startInstance('i1', '127.0.87.11', [file, '--state', url]);
          assert.match(instances[0].run.stderr.join('\n'), /is already the state in .*nothing written/);
          assert.equal(await etagOn(instances[0]), etag, 'the restarted instance serves the stored state');
          assert.equal((await health(i2)).stateStore.generation, gen, 'nothing was written');
          await stopAll([instances[0]]);
          const other = join(dir, 'lb2.json');
          writeFileSync(
            other,
            JSON.stringify(
              poolDocument([{ name: 'web', frontendPort: p1, backendPort, idleTimeoutInMinutes: 7 }]),
            ),
          );
          instances[0] = await startInstance('i1', '127.0.87.11', [other, '--state', url]);
          assert.match(
            instances[0].run.stderr.join('\n'),
            new RegExp(`replaces the state in .* \\(generation ${gen}\\) as generation ${gen + 1}`),
          );
          const replaced = await etagOn(instances[0]);
          await converged([i2, i3], replaced!, 1000);
          await waitUntil(
            1000,
            'instance 2 to close the listener CONFIG no longer has',
            async () => (await health(i2)).listeners === 1,
          );
        },
      );
    } finally {
      await stopAll(instances);
      await etcd?.kill();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
