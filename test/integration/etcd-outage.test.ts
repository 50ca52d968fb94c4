import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClientError, SluiceClient } from '../../src/client/index.js';
import { Etcd3 } from 'etcd3';
import { ETCD_HOST, etcdTest, pickEtcdPorts, startEtcd, type RunningEtcd } from '../helpers/etcd.js';
import { EchoBackend, freePort, tcpClient, waitUntil, within } from '../helpers/net.js';
import {
  BACKEND,
  LB,
  converged,
  greetingThrough,
  health,
  poolDocument,
  startInstance,
  stopAll,
  withRules,
  type Instance,
} from '../helpers/pool.js';
import { startSluice } from '../helpers/process.js';
import { metricValue } from '../helpers/scrape.js';

/**
 * etcd lost and found again: instances keep serving their last state and say the store is
 * down; writes get 503 with SLUICE_STATE_STORE_UNAVAILABLE; once etcd is back (its data kept)
 * they reconnect and catch up; an instance started while etcd is down waits, then serves.
 */

etcdTest(
  'etcd killed and restarted under two instances, and a third started while it is down',
  60_000,
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-etcd-outage-'));
    const backendPort = await freePort(BACKEND);
    const backend = new EchoBackend('b1', BACKEND);
    const ports = await pickEtcdPorts();
    let etcd: RunningEtcd | undefined;
    const instances: (Instance | undefined)[] = [];
    let late: ReturnType<typeof startSluice> | undefined;
    try {
      await backend.listen(backendPort);
      etcd = await startEtcd(join(dir, 'etcd'), ports);
      const url = etcd.url('sluice/outage');
      const [p1, p2] = [await freePort('127.0.87.21'), await freePort('127.0.87.21')];
      const file = join(dir, 'lb.json');
      writeFileSync(file, JSON.stringify(poolDocument([{ name: 'web', frontendPort: p1, backendPort }])));
      const i1 = await startInstance('i1', '127.0.87.21', [file, '--state', url]);
      instances.push(i1);
      const i2 = await startInstance('i2', '127.0.87.22', ['--state', url]);
      instances.push(i2);
      const open = tcpClient(i2.address, p1);
      assert.equal(await within(2000, 'a connection through i2', open.greeting), 'b1');

      await etcd.kill();
      const killedAt = Date.now();
      await t.test(
        'without etcd: the last state is served, /healthz and metrics say the store is down, a write gets 503',
        async () => {
          for (const i of [i1, i2]) {
            const h = await waitUntil(2000, `${i.name} to see etcd gone`, async () => {
              const s = await health(i);
              return s.stateStore.up ? undefined : s;
            });
            t.diagnostic(
              `${i.name} reported the store down ${Date.now() - killedAt} ms after etcd was killed`,
            );
            assert.equal(h.stateStore.kind, 'etcd');
            assert.ok(h.stateStore.reason !== undefined && h.stateStore.reason.length > 0, 'it says why');
            assert.equal(h.listeners, 1);
            assert.equal(metricValue(await i.api.metrics(), 'sluice_state_store_up_ratio'), 0);
            assert.equal(
              await greetingThrough(i.address, p1),
              'b1',
              `${i.name} still serves new connections`,
            );
          }
          open.socket.write('still there');
          await waitUntil(2000, 'the open connection to echo', () =>
            Buffer.concat(open.data).toString().includes('still there'),
          );
          const body = await withRules(i1, [
            { name: 'web', frontendPort: p1, backendPort },
            { name: 'web2', frontendPort: p2, backendPort },
          ]);
          const started = Date.now();
          const err = await i1.api.put(LB, body).then(
            () => undefined,
            (e: unknown) => e,
          );
          assert.ok(err instanceof ApiClientError, 'the PUT fails');
          assert.equal(err.status, 503);
          assert.equal(err.body?.error.code, 'SLUICE_STATE_STORE_UNAVAILABLE');
          t.diagnostic(`the PUT was refused with 503 in ${Date.now() - started} ms`);
          assert.ok(Date.now() - started < 1000, 'at once, not after a timeout');
          assert.equal((await health(i1)).listeners, 1, 'nothing of the refused change is served');
        },
      );

      await t.test('an instance started while etcd is down waits and says why', async () => {
        late = startSluice([
          'run',
          '--state',
          url,
          '--map',
          '127.0.87.10=127.0.87.23',
          '--api',
          '127.0.87.1:0',
        ]);
        await waitUntil(5000, 'the late instance to say it waits', () =>
          late!.stderr.some((l) =>
            /waiting for the shared state store.*SLUICE_STATE_STORE_UNAVAILABLE/.test(l),
          ),
        );
        assert.equal(
          late.lines.find((l) => l.msg === 'ready'),
          undefined,
          'it serves nothing yet',
        );
      });

      etcd = await startEtcd(join(dir, 'etcd'), ports);
      const backAt = Date.now();
      // A write made at once, by a writer the instances do not see (as another instance would):
      // the state as stored, with a second rule, as the next generation.
      const writer = new Etcd3({ hosts: `http://${ETCD_HOST}:${ports.client}` });
      try {
        const key = 'sluice/outage/state';
        const stored = JSON.parse((await writer.get(key).string())!) as {
          generation: number;
          resources: { body: { properties: Record<string, unknown> } }[];
        };
        const next = poolDocument([
          { name: 'web', frontendPort: p1, backendPort },
          { name: 'web2', frontendPort: p2, backendPort },
        ]) as { properties: Record<string, unknown> };
        stored.resources[0]!.body.properties = next.properties;
        stored.generation += 1;
        await writer.put(key).value(JSON.stringify(stored));
      } finally {
        writer.close();
      }
      await t.test(
        'etcd back: the instances reconnect and catch up with a write made meanwhile, the late one starts serving',
        async () => {
          for (const i of [i1, i2]) {
            await waitUntil(5000, `${i.name} to reconnect`, async () => (await health(i)).stateStore.up);
            t.diagnostic(
              `${i.name} reported the store up ${Date.now() - backAt} ms after etcd answered again`,
            );
          }
          const ready = await late!.waitFor((l) => l.msg === 'ready', 10_000);
          t.diagnostic(`the late instance was ready ${Date.now() - backAt} ms after etcd answered again`);
          const i3: Instance = {
            name: 'late',
            address: '127.0.87.23',
            run: late!,
            api: new SluiceClient({ base: String(ready.api) }),
          };
          for (const i of [i1, i2, i3]) {
            assert.ok((await health(i)).stateStore.up, `${i.name}: the store is up`);
            await waitUntil(
              2000,
              `${i.name} to serve the write`,
              async () => (await health(i)).listeners === 2,
            );
            assert.equal(await greetingThrough(i.address, p2), 'b1', `${i.name} serves the new rule`);
            assert.equal(metricValue(await i.api.metrics(), 'sluice_state_store_up_ratio'), 1);
          }
          const body = await withRules(i1, [{ name: 'web', frontendPort: p1, backendPort }]);
          const put = await i1.api.put(LB, body, { ifMatch: body.etag });
          const took = await converged([i2, i3], put.resource.etag, 1000);
          t.diagnostic(`after etcd came back, a PUT reached the others ${took} ms after its answer`);
          open.socket.write(' and after');
          await waitUntil(2000, 'the connection opened before the outage to echo', () =>
            Buffer.concat(open.data).toString().includes('and after'),
          );
          open.socket.destroy();
        },
      );
    } finally {
      if (late !== undefined) {
        const killer = setTimeout(() => late!.child.kill('SIGKILL'), 5000);
        await late.stop();
        clearTimeout(killer);
      }
      await stopAll(instances);
      await etcd?.kill();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
