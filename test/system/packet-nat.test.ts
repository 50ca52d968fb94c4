import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lbDocument } from '../helpers/arm.js';
import type { Agent } from '../helpers/netns.js';
import { BACKENDS, CLIENT, FRONTEND, Topology, systemTest, systemUnavailable } from '../helpers/netns.js';

/**
 * Address rewriting choices of the packet data plane: full NAT (`--inbound-snat`) for backends
 * that cannot route their replies through Sluice, and HA ports (every port of the frontend).
 */

const SNAT = '198.18.100.99';
let dir = '';
const topologies: Topology[] = [];

before(() => {
  if (systemUnavailable() !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'sluice-system-'));
});

after(async () => {
  for (const t of topologies) await t.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function config(name: string, doc: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(doc));
  return path;
}

async function serve(t: Topology, ports: number[]): Promise<Agent[]> {
  const agents = [t.agent('backend1'), t.agent('backend2')];
  for (const a of agents) {
    for (const port of ports) {
      a.send({ cmd: 'serve', port });
      await a.waitFor(`listening on ${port}`, (l) => l.ev === 'listening' && l.port === port, 5000);
    }
  }
  return agents;
}

async function echo(client: Agent, id: string, port: number): Promise<number> {
  client.send({ cmd: 'connect', id, host: FRONTEND, port });
  const c = await client.event(id, 'connected', 5000);
  client.send({ cmd: 'send', id, text: `hello ${id}` });
  await client.waitFor(`echo on ${id}`, (l) => l.id === id && l.ev === 'data', 5000);
  return c.localPort as number;
}

systemTest(
  '--inbound-snat: backends with no route to the client get flows from the SNAT address',
  async () => {
    const t = Topology.create();
    topologies.push(t);
    // Without a route back to the client, only full NAT can work.
    for (const b of ['backend1', 'backend2'] as const) {
      t.exec(b, 'ip', 'route', 'del', 'default');
      t.exec(b, 'ip', 'route', 'add', `${SNAT}/32`, 'via', b === 'backend1' ? '198.18.2.1' : '198.18.3.1');
    }
    const backends = await serve(t, [8080]);
    const path = config(
      'snat.json',
      lbDocument({
        frontend: FRONTEND,
        backends: BACKENDS,
        rules: [{ name: 'web', frontendPort: 80, backendPort: 8080, enableTcpReset: true }],
      }),
    );
    const s = t.sluice(path, [
      '--dataplane',
      'packet',
      '--tun',
      'sltun4',
      '--configure-host',
      '--inbound-snat',
      SNAT,
    ]);
    await s.ready();
    const client = t.agent('client');
    const ports = new Set<number>();
    for (let i = 0; i < 4; i++) {
      await echo(client, `n${i}`, 80);
      const accepts = backends.flatMap((b) => b.lines.filter((l) => l.ev === 'accept'));
      assert.equal(accepts.length, i + 1);
      const last = accepts.sort((a, b) => (a.t as number) - (b.t as number)).at(-1)!;
      assert.equal(last.peer, SNAT, 'the backend sees the SNAT address, not the client');
      ports.add(last.peerPort as number);
    }
    assert.equal(ports.size, 4, 'each flow has its own SNAT port');
    assert.ok(!backends.some((b) => b.lines.some((l) => l.peer === CLIENT)));
    await s.stop();
  },
);

systemTest('HA ports: one rule balances every TCP port of an internal frontend', async () => {
  const t = Topology.create();
  topologies.push(t);
  const ports = [22, 443, 8443];
  const backends = await serve(t, ports);
  const doc = lbDocument({ frontend: FRONTEND, backends: BACKENDS, rules: [] });
  const props = (doc as { properties: Record<string, unknown[]> }).properties;
  const id = (doc as { id: string }).id;
  props.loadBalancingRules = [
    {
      name: 'ha',
      properties: {
        frontendIPConfiguration: { id: `${id}/frontendIPConfigurations/fe` },
        backendAddressPool: { id: `${id}/backendAddressPools/pool` },
        protocol: 'All',
        frontendPort: 0,
        backendPort: 0,
        idleTimeoutInMinutes: 4,
      },
    },
  ];
  const s = t.sluice(config('ha.json', doc), [
    '--dataplane',
    'packet',
    '--tun',
    'sltun5',
    '--configure-host',
  ]);
  await s.ready();
  const client = t.agent('client');
  for (const port of ports) {
    const localPort = await echo(client, `ha${port}`, port);
    const hit = backends
      .flatMap((b) => b.lines)
      .find((l) => l.ev === 'accept' && l.peerPort === localPort && l.port === port);
    assert.ok(hit, `port ${port} reached a backend on the same port`);
  }
  await s.stop();
});
