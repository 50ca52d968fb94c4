import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { lbDocument } from '../helpers/arm.js';
import type { Agent } from '../helpers/netns.js';
import { BACKENDS, FRONTEND, INTERNET, Topology, systemTest, systemUnavailable } from '../helpers/netns.js';

/**
 * Outbound rules in the packet data plane, against kernel TCP stacks: backends reach a server
 * in the internet namespace through Sluice, SNATed to the outbound rule's address (or, for a
 * member whose subnet has a NAT gateway, the gateway's), with that path's idle behaviour.
 * --time-scale 60: the rule's 4 minutes are 4 s, the gateway's 6 minutes 6 s.
 */

const SUB =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network';
const OUT_IP = '198.18.100.20';
const GW_IP = '198.18.100.30';
const PORTS = 8;
let dir = '';
const topologies: Topology[] = [];

before(() => {
  if (systemUnavailable() !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'sluice-outbound-'));
});

after(async () => {
  for (const t of topologies) await t.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** backend1 leaves through the outbound rule; backend2's subnet has a NAT gateway. */
function config(name: string, enableTcpReset: boolean): string {
  const doc = lbDocument({ frontend: FRONTEND, backends: BACKENDS, rules: [] }) as {
    id: string;
    properties: Record<string, unknown[]> & {
      backendAddressPools: { properties: { loadBalancerBackendAddresses: { properties: object }[] } }[];
    };
  };
  const p = doc.properties;
  p.frontendIPConfigurations!.push({
    name: 'out',
    properties: { publicIPAddress: { id: `${SUB}/publicIPAddresses/out-pip` } },
  });
  const members = p.backendAddressPools[0]!.properties.loadBalancerBackendAddresses;
  members[1]!.properties = {
    ...members[1]!.properties,
    subnet: { id: `${SUB}/virtualNetworks/vnet/subnets/gw` },
  };
  p.outboundRules = [
    {
      name: 'out',
      properties: {
        frontendIPConfigurations: [{ id: `${doc.id}/frontendIPConfigurations/out` }],
        backendAddressPool: { id: `${doc.id}/backendAddressPools/pool` },
        protocol: 'All',
        allocatedOutboundPorts: PORTS,
        idleTimeoutInMinutes: 4,
        enableTcpReset,
      },
    },
  ];
  const pip = (n: string, ipAddress: string) => ({
    name: n,
    id: `${SUB}/publicIPAddresses/${n}`,
    type: 'Microsoft.Network/publicIPAddresses',
    properties: { ipAddress },
  });
  const resources = [
    pip('out-pip', OUT_IP),
    pip('gw-pip', GW_IP),
    {
      name: 'gw',
      id: `${SUB}/natGateways/gw`,
      type: 'Microsoft.Network/natGateways',
      properties: {
        idleTimeoutInMinutes: 6,
        subnets: [{ id: `${SUB}/virtualNetworks/vnet/subnets/gw` }],
        publicIpAddresses: [{ id: `${SUB}/publicIPAddresses/gw-pip` }],
      },
    },
    doc,
  ];
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify({ resources }));
  return path;
}

async function setup(name: string, reset: boolean, tun: string) {
  const t = Topology.create();
  topologies.push(t);
  const internet = t.agent('internet');
  internet.send({ cmd: 'serve', port: 9000 });
  await internet.waitFor('listening', (l) => l.ev === 'listening', 5000);
  const s = t.sluice(config(name, reset), [
    '--dataplane',
    'packet',
    '--tun',
    tun,
    '--configure-host',
    '--time-scale',
    '60',
  ]);
  await s.ready();
  return { t, s, internet, b1: t.agent('backend1'), b2: t.agent('backend2') };
}

/** Connects from a backend to the internet server; returns the server's view of the peer. */
async function connect(
  from: Agent,
  internet: Agent,
  id: string,
): Promise<{ peer: string; peerPort: number; sid: string }> {
  const accepts = (): Record<string, unknown>[] => internet.lines.filter((l) => l.ev === 'accept');
  const before = accepts().length;
  from.send({ cmd: 'connect', id, host: INTERNET, port: 9000 });
  await from.event(id, 'connected', 5000);
  await internet.waitFor(`accept of ${id}`, () => accepts().length > before, 5000);
  const a = accepts()[before]!;
  return { peer: a.peer as string, peerPort: a.peerPort as number, sid: a.id as string };
}

async function echo(from: Agent, id: string, text: string): Promise<void> {
  const before = from.events(id).filter((l) => l.ev === 'data').length;
  from.send({ cmd: 'send', id, text });
  await from.waitFor(
    `echo on ${id}`,
    (l) => l.id === id && l.ev === 'data' && from.events(id).filter((x) => x.ev === 'data').length > before,
    3000,
  );
}

systemTest(
  'outbound rule: SNAT from the frontend IP within the allocation, the 9th flow refused, idle reset to both ends; NAT gateway: its address and timeout, silent drop, RST to a later sender only',
  async () => {
    const { s, internet, b1, b2 } = await setup('outbound-reset.json', true, 'sltun6');
    // backend1 is the pool's first member: its 8 ports are the first 8 of the address.
    const conns: { peer: string; peerPort: number; sid: string }[] = [];
    for (let i = 0; i < PORTS; i++) conns.push(await connect(b1, internet, `o${i}`));
    for (const c of conns) {
      assert.equal(c.peer, OUT_IP, 'the internet server sees the outbound rule frontend IP');
      assert.ok(c.peerPort >= 1024 && c.peerPort < 1024 + PORTS, `port ${c.peerPort} inside the allocation`);
    }
    assert.equal(new Set(conns.map((c) => c.peerPort)).size, PORTS);
    await echo(b1, 'o0', 'hello');
    const gw = await connect(b2, internet, 'g0');
    assert.equal(gw.peer, GW_IP, "backend2 leaves through its subnet's NAT gateway");
    const t0 = Date.now();
    // The 9th concurrent flow of backend1 has no port: its SYNs are refused and counted.
    b1.send({ cmd: 'connect', id: 'o8', host: INTERNET, port: 9000 });
    await s.waitFor(
      'snat-ports refusal',
      (l) => l.msg === 'new flow refused' && l.reason === 'snat-ports',
      3000,
    );
    // Keep o1 busy past the rule's 4 s so that only the others go idle.
    await sleep(2500);
    assert.deepEqual(
      b1.events('o8').filter((l) => l.ev === 'connected'),
      [],
      'the 9th connection does not get through while the 8 hold their ports',
    );
    await echo(b1, 'o1', 'still here');
    await echo(b2, 'g0', 'still here');
    // At 4 s idle the outbound rule resets both the backend and the internet server.
    const reset = await b1.event('o0', 'error', 6000);
    assert.equal(reset.code, 'ECONNRESET');
    const serverSide = await internet.event(conns[0]!.sid, 'error', 2000);
    assert.equal(serverSide.code, 'ECONNRESET');
    const idleS = (Date.now() - t0) / 1000;
    assert.ok(idleS > 3 && idleS < 6, `reset after ${idleS} s`);
    // The gateway flow was active at 2.5 s: at 6 s after that it is dropped without a word.
    await sleep(6500);
    assert.deepEqual(
      b2.events('g0').filter((l) => l.ev === 'error'),
      [],
      'no reset at idle through a NAT gateway',
    );
    assert.deepEqual(
      internet.events(gw.sid).filter((l) => l.ev === 'error'),
      [],
    );
    const heard = internet.events(gw.sid).length;
    b2.send({ cmd: 'send', id: 'g0', text: 'late' });
    const late = await b2.event('g0', 'error', 3000);
    assert.equal(late.code, 'ECONNRESET', 'the late sender is answered with a RST');
    await sleep(500);
    assert.deepEqual(
      internet.events(gw.sid).slice(heard),
      [],
      'the internet server hears nothing: neither the late data nor a RST',
    );
    await s.stop();
  },
  60_000,
);

systemTest(
  'outbound rule with reset off: an idle flow is dropped silently, later packets go nowhere',
  async () => {
    const { s, internet, b1 } = await setup('outbound-drop.json', false, 'sltun7');
    const c = await connect(b1, internet, 'd0');
    assert.equal(c.peer, OUT_IP);
    await echo(b1, 'd0', 'hello');
    await sleep(5000);
    b1.send({ cmd: 'send', id: 'd0', text: 'after idle' });
    internet.send({ cmd: 'send', id: c.sid, text: 'from the server' });
    await sleep(1500);
    assert.deepEqual(
      b1.events('d0').filter((l) => l.ev !== 'connected' && l.ev !== 'data'),
      [],
    );
    assert.equal(b1.events('d0').filter((l) => l.ev === 'data').length, 1, 'only the first echo arrived');
    assert.deepEqual(
      internet.events(c.sid).filter((l) => l.ev === 'error'),
      [],
    );
    assert.equal(
      internet.events(c.sid).filter((l) => l.ev === 'data').length,
      1,
      'the late data never reached the server',
    );
    await s.stop();
  },
);
