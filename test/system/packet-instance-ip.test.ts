import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Agent, SluiceProcess } from '../helpers/netns.js';
import {
  BACKENDS,
  CLIENT,
  FRONTEND,
  INTERNET,
  Topology,
  systemTest,
  systemUnavailable,
} from '../helpers/netns.js';
import { repoRoot } from '../helpers/cli.js';

/**
 * The seeds' own scenario on the packet plane, with real kernel TCP stacks: a VM with a public
 * IP on its NIC and no load balancer, given as `az network nic show` and `az network public-ip
 * show` print them, mapped into the namespaces. Every port is forwarded 1:1 to the same port
 * of the VM, TCP and UDP; at the public IP's idle timeout (4 minutes, 2 s at --time-scale 120)
 * the flow is dropped silently: public IPs send no TCP reset.
 */

const SCALE = 120;
const IDLE_S = (4 * 60) / SCALE;
const VM = BACKENDS[0];
const TCP_PORTS = [22, 5432, 40123];
const UDP_PORT = 5353;
const fixture = (f: string): string => join(repoRoot, 'test/fixtures/exports/single-vm', f);

let topo: Topology;
let sluice: SluiceProcess;
let client: Agent;
let vm: Agent;
let internet: Agent;

before(async () => {
  if (systemUnavailable() !== undefined) return;
  topo = Topology.create();
  vm = topo.agent('backend1');
  for (const port of TCP_PORTS) {
    vm.send({ cmd: 'serve', port });
    await vm.waitFor(`listening on ${port}`, (l) => l.ev === 'listening' && l.port === port, 5000);
  }
  vm.send({ cmd: 'udp-serve', port: UDP_PORT });
  await vm.waitFor('udp listening', (l) => l.ev === 'listening' && l.proto === 'udp', 5000);
  client = topo.agent('client');
  internet = topo.agent('internet');
  internet.send({ cmd: 'serve', port: 9000 });
  await internet.waitFor('internet listening', (l) => l.ev === 'listening', 5000);
  // A blackholed connection then gives up after about 3 s of retransmissions.
  topo.sysctl('client', 'net.ipv4.tcp_retries2', '3');
  topo.sysctl('backend1', 'net.ipv4.tcp_retries2', '3');
  sluice = topo.sluice(fixture('nic.json'), [
    fixture('pip.json'),
    '--map',
    `20.61.14.7=${FRONTEND}`,
    '--map',
    `10.0.0.4=${VM}`,
    '--dataplane',
    'packet',
    '--time-scale',
    String(SCALE),
    '--tun',
    'sltun0',
    '--configure-host',
  ]);
  await sluice.ready();
});

after(async () => {
  await topo?.destroy();
});

let serial = 0;

async function echo(port: number): Promise<{ id: string; localPort: number }> {
  const id = `i${serial++}`;
  client.send({ cmd: 'connect', id, host: FRONTEND, port });
  const connected = await client.event(id, 'connected', 5000);
  client.send({ cmd: 'send', id, text: `to-${port}` });
  await client.waitFor(
    `echo on ${port}`,
    (l) => l.id === id && l.ev === 'data' && l.text === `to-${port}`,
    5000,
  );
  return { id, localPort: connected.localPort as number };
}

systemTest(
  'every port of the public IP reaches the same port of the VM, with the client address kept',
  async () => {
    for (const port of TCP_PORTS) await echo(port);
    // DNAT only: the VM sees the client itself.
    const accepts = vm.lines.filter((l) => l.ev === 'accept');
    assert.ok(accepts.length >= TCP_PORTS.length);
    assert.ok(accepts.every((l) => l.peer === CLIENT));
    // UDP too, on any port.
    client.send({ cmd: 'udp-open', id: 'u1' });
    await client.event('u1', 'udp-open', 5000);
    client.send({ cmd: 'udp-send', id: 'u1', host: FRONTEND, port: UDP_PORT, text: 'dns?' });
    const got = await vm.waitFor('the datagram', (l) => l.ev === 'udp' && l.text === 'dns?', 5000);
    assert.equal(got.peer, CLIENT);
  },
);

systemTest(
  'at the public IP idle timeout the flow is dropped silently: no RST, the next write times out',
  async () => {
    const c = await echo(5432);
    const dropped = await sluice.waitFor(
      'the silent drop logged',
      (l) => String(l.msg).includes('dropped silently') && l.client === `${CLIENT}:${c.localPort}`,
      IDLE_S * 3000,
    );
    assert.equal(dropped.rule, 'inbound');
    assert.equal(client.events(c.id).filter((e) => e.ev === 'error').length, 0, 'no RST reached the client');
    client.send({ cmd: 'send', id: c.id, text: 'late' });
    const err = await client.event(c.id, 'error', 20_000);
    assert.equal(err.code, 'ETIMEDOUT', 'nothing answered: the public IP forgot the flow without a word');
    assert.ok(
      !vm.lines.some((l) => l.ev === 'data' && l.text === 'late'),
      'the VM never heard the late write',
    );
  },
);

systemTest(
  "the VM's own connections leave from its public IP, and are dropped silently after the locked 4 minutes",
  async () => {
    const id = 'out1';
    vm.send({ cmd: 'connect', id, host: INTERNET, port: 9000 });
    const connected = await vm.event(id, 'connected', 5000);
    const accepted = await internet.waitFor(
      'the accept',
      (l) => l.ev === 'accept' && l.peer === FRONTEND,
      5000,
    );
    assert.equal(accepted.peer, FRONTEND, 'the internet sees the public IP, not the private address');
    vm.send({ cmd: 'send', id, text: 'out' });
    await vm.waitFor('echo', (l) => l.id === id && l.ev === 'data' && l.text === 'out', 5000);
    await sluice.waitFor(
      'the outbound drop logged',
      (l) =>
        String(l.msg).includes('dropped silently') && l.client === `${VM}:${connected.localPort as number}`,
      IDLE_S * 3000,
    );
    assert.equal(vm.events(id).filter((e) => e.ev === 'error').length, 0, 'no RST reached the VM');
    vm.send({ cmd: 'send', id, text: 'late' });
    const err = await vm.event(id, 'error', 20_000);
    assert.equal(err.code, 'ETIMEDOUT');
  },
);
