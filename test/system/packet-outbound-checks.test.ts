import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { lbDocument } from '../helpers/arm.js';
import type { Agent, SluiceProcess } from '../helpers/netns.js';
import {
  BACKENDS,
  INTERNET,
  Topology,
  ethtoolAvailable,
  systemTest,
  systemUnavailable,
} from '../helpers/netns.js';

/**
 * The outbound (SNAT) path of the packet data plane, checked from outside: receivers that verify
 * every checksum accept what Sluice rewrote, and GET /metrics of the running `sluice run` shows
 * the SNAT ports taken and given back as flows open, close and end at idle.
 * --time-scale 60: the rule's 4 minutes are 4 s.
 */

const SUB =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network';
const OUT_IP = '198.18.100.20';
const PORTS = 64;
let dir = '';
let topo: Topology;
let sluice: SluiceProcess;
let internet: Agent;
let b1: Agent;

function config(): string {
  const doc = lbDocument({ frontend: '198.18.100.10', backends: BACKENDS, rules: [] }) as {
    id: string;
    properties: Record<string, unknown[]>;
  };
  doc.properties.frontendIPConfigurations!.push({
    name: 'out',
    properties: { publicIPAddress: { id: `${SUB}/publicIPAddresses/out-pip` } },
  });
  doc.properties.outboundRules = [
    {
      name: 'out',
      properties: {
        frontendIPConfigurations: [{ id: `${doc.id}/frontendIPConfigurations/out` }],
        backendAddressPool: { id: `${doc.id}/backendAddressPools/pool` },
        protocol: 'All',
        allocatedOutboundPorts: PORTS,
        idleTimeoutInMinutes: 4,
        enableTcpReset: true,
      },
    },
  ];
  const pip = {
    name: 'out-pip',
    id: `${SUB}/publicIPAddresses/out-pip`,
    type: 'Microsoft.Network/publicIPAddresses',
    properties: { ipAddress: OUT_IP },
  };
  const path = join(dir, 'outbound.json');
  writeFileSync(path, JSON.stringify({ resources: [pip, doc] }));
  return path;
}

before(async () => {
  if (systemUnavailable() !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'sluice-outbound-checks-'));
  topo = Topology.create();
  internet = topo.agent('internet');
  internet.send({ cmd: 'serve', port: 9000 });
  internet.send({ cmd: 'udp-serve', port: 5353 });
  await internet.waitFor('listening', (l) => l.ev === 'listening' && l.proto === 'udp', 5000);
  sluice = topo.sluice(config(), [
    '--dataplane',
    'packet',
    '--tun',
    'sltun11',
    '--configure-host',
    '--time-scale',
    '60',
  ]);
  await sluice.ready();
  b1 = topo.agent('backend1');
});

after(async () => {
  await topo?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Connects backend1 to the internet server; returns the server's connection id. */
async function connect(id: string): Promise<string> {
  const accepts = (): Record<string, unknown>[] => internet.lines.filter((l) => l.ev === 'accept');
  const n = accepts().length;
  b1.send({ cmd: 'connect', id, host: INTERNET, port: 9000 });
  await b1.event(id, 'connected', 5000);
  await internet.waitFor(`accept of ${id}`, () => accepts().length > n, 5000);
  const a = accepts()[n]!;
  assert.equal(a.peer, OUT_IP, 'SNATed to the outbound rule frontend IP');
  return a.id as string;
}

/** Sends `bytes` from backend1 and waits for all of them to come back. */
async function echoBulk(id: string, bytes: number): Promise<void> {
  b1.send({ cmd: 'send', id, text: 'x'.repeat(bytes) });
  assert.equal(await b1.received(id, bytes), bytes);
}

systemTest(
  'outbound checksums: with offload off on the egress, receivers that verify every checksum accept what SNAT rewrote (partial and full sums, TCP and UDP)',
  async (ctx) => {
    if (!ethtoolAvailable(ctx)) return;
    // Receivers check every byte; lb's egress towards them completes partial sums in software.
    for (const role of ['internet', 'backend1'] as const)
      topo.exec(role, 'ethtool', '-K', 'eth0', 'rx', 'off');
    for (const dev of ['lbi', 'lbb1']) topo.exec('lb', 'ethtool', '-K', dev, 'tx', 'off');
    const errors = (): number[] => [
      topo.snmpCounter('internet', 'Tcp', 'InCsumErrors'),
      topo.snmpCounter('backend1', 'Tcp', 'InCsumErrors'),
      topo.snmpCounter('internet', 'Udp', 'InCsumErrors'),
      topo.snmpCounter('backend1', 'Udp', 'InCsumErrors'),
    ];
    const before = errors();
    // backend1 with offload sends partial sums and GSO super-packets into the TUN...
    await connect('partial');
    await echoBulk('partial', 1_000_000);
    b1.send({ cmd: 'udp-open', id: 'u0' });
    await b1.event('u0', 'udp-open', 3000);
    b1.send({ cmd: 'udp-send', id: 'u0', host: INTERNET, port: 5353, text: 'datagram with offload' });
    await b1.waitFor('udp echo', (l) => l.id === 'u0' && l.ev === 'udp', 3000);
    // ...without it, complete checksums that Sluice updates incrementally.
    topo.exec('backend1', 'ethtool', '-K', 'eth0', 'tx', 'off');
    await connect('full');
    await echoBulk('full', 1_000_000);
    b1.send({ cmd: 'udp-send', id: 'u0', host: INTERNET, port: 5353, text: 'datagram, software sum' });
    await b1.waitFor(
      'second udp echo',
      (l) => l.id === 'u0' && l.ev === 'udp' && l.text === 'datagram, software sum',
      3000,
    );
    assert.deepEqual(errors(), before, 'no TCP or UDP checksum errors at either receiver');
    assert.ok(
      internet.lines.some((l) => l.ev === 'udp' && l.peer === OUT_IP),
      'the datagrams were SNATed too',
    );
  },
);

/** The SNAT gauges of the outbound rule's address, from GET /metrics of the running Sluice. */
function snatGauges(): { allocated: number; used: number } {
  const text = topo.exec('lb', 'curl', '-sf', 'http://127.0.0.1:9180/metrics');
  const value = (name: string): number => {
    const line = text
      .split('\n')
      .find(
        (l) => l.startsWith(`${name}{`) && l.includes(`frontend="${OUT_IP}"`) && l.includes('rule="out"'),
      );
    assert.ok(line, `${name} for ${OUT_IP} in /metrics`);
    return Number(line.split(' ').at(-1));
  };
  return { allocated: value('sluice_snat_allocated_ports'), used: value('sluice_snat_used_ports') };
}

async function usedBecomes(n: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let last = snatGauges().used;
  while (last !== n && Date.now() < deadline) {
    await sleep(100);
    last = snatGauges().used;
  }
  assert.equal(last, n, `sluice_snat_used_ports reached ${n}`);
}

systemTest(
  'SNAT metrics of a running sluice run --dataplane packet: used ports follow flows opening, closing and ending at idle',
  async () => {
    // Earlier flows end at idle (4 s): start from none.
    await usedBecomes(0, 8000);
    assert.equal(snatGauges().allocated, PORTS * BACKENDS.length, 'every member of the pool has its ports');
    const server: string[] = [];
    for (let i = 0; i < 3; i++) server.push(await connect(`m${i}`));
    await usedBecomes(3, 2000);
    // A graceful close on both sides gives its port back once the flow has lingered.
    b1.send({ cmd: 'close', id: 'm0' });
    await internet.event(server[0]!, 'end', 3000);
    internet.send({ cmd: 'close', id: server[0]! });
    await usedBecomes(2, 3000);
    // The other two end at idle with a reset, and give their ports back too.
    await usedBecomes(0, 8000);
    assert.equal(snatGauges().allocated, PORTS * BACKENDS.length);
    // The gauge drops when Sluice ends the flow; the backend's agent reports the RST just after.
    const reset = await b1.event('m1', 'error', 2000);
    assert.equal(reset.code, 'ECONNRESET', 'the idle flows ended by the outbound rule reset');
  },
);
