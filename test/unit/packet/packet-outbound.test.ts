import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateDocument } from '../../../src/config/index.js';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine } from '../../../src/core/engine.js';
import { TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN } from '../../../src/core/tcp-state.js';
import { PacketPlane } from '../../../src/dataplane/packet/packet-plane.js';
import { lbDocument } from '../../helpers/arm.js';
import { FakeTun, tcpPacket, udpPacket } from './packets.js';

const SUB =
  '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test/providers/Microsoft.Network';
const FE = '198.18.100.10';
const B1 = '198.18.2.2';
const B2 = '198.18.3.2';
const OUT1 = '198.18.100.20';
const OUT2 = '198.18.100.21';
const REMOTE = '198.18.4.2';

/** An outbound rule over two frontend IPs for a pool of B1 and B2, `ports` each. */
function snapshot(ports: number) {
  const doc = lbDocument({ frontend: FE, backends: [B1, B2], rules: [] }) as {
    id: string;
    properties: Record<string, unknown[]>;
  };
  const p = doc.properties;
  for (const [name, pip] of [
    ['out1', 'pip1'],
    ['out2', 'pip2'],
  ] as const)
    p.frontendIPConfigurations!.push({
      name,
      properties: { publicIPAddress: { id: `${SUB}/publicIPAddresses/${pip}` } },
    });
  p.outboundRules = [
    {
      name: 'out',
      properties: {
        frontendIPConfigurations: [
          { id: `${doc.id}/frontendIPConfigurations/out1` },
          { id: `${doc.id}/frontendIPConfigurations/out2` },
        ],
        backendAddressPool: { id: `${doc.id}/backendAddressPools/pool` },
        protocol: 'All',
        allocatedOutboundPorts: ports,
        idleTimeoutInMinutes: 4,
        enableTcpReset: true,
      },
    },
  ];
  const pip = (name: string, ipAddress: string) => ({
    name,
    id: `${SUB}/publicIPAddresses/${name}`,
    type: 'Microsoft.Network/publicIPAddresses',
    properties: { ipAddress },
  });
  const result = validateDocument({ resources: [pip('pip1', OUT1), pip('pip2', OUT2), doc] });
  assert.ok(result.valid && result.snapshot, JSON.stringify(result.errors));
  return result.snapshot;
}

async function setup(ports: number, random: () => number = Math.random) {
  const clock = new ManualClock(0);
  const snap = snapshot(ports);
  const engine = new FlowEngine({ clock, snapshot: snap, indexReplies: true, random });
  const tun = new FakeTun();
  const plane = new PacketPlane({ engine, clock, tun: 'fake0', device: tun, host: null });
  await plane.apply(snap);
  return { engine, tun, plane };
}

test('outbound SNAT: the source becomes the rule frontend IP and a port of the member, replies go back to the member; full and partial checksums stay right', async () => {
  for (const partial of [false, true]) {
    const { tun, plane } = await setup(8);
    const payload = Buffer.from('outbound payload, odd length');
    tun.inject(
      tcpPacket({ src: B1, dst: REMOTE, sport: 33000, dport: 443, seq: 7, flags: TCP_SYN, partial }),
    );
    const [syn] = tun.take();
    assert.ok(syn);
    assert.equal(syn.src, OUT1, "the member's ports start on the rule's first frontend IP");
    assert.ok(syn.sport >= 1024 && syn.sport < 1032, `port ${syn.sport} inside B1's 8`);
    assert.deepEqual([syn.dst, syn.dport], [REMOTE, 443]);
    tun.inject(
      tcpPacket({
        src: REMOTE,
        dst: OUT1,
        sport: 443,
        dport: syn.sport,
        seq: 90,
        ack: 8,
        flags: TCP_SYN | TCP_ACK,
        partial,
      }),
    );
    const [synAck] = tun.take();
    tun.inject(
      tcpPacket({
        src: B1,
        dst: REMOTE,
        sport: 33000,
        dport: 443,
        seq: 8,
        ack: 91,
        flags: TCP_ACK | TCP_PSH,
        payload,
        partial,
      }),
    );
    const [data] = tun.take();
    for (const [what, pkt] of [
      ['SYN', syn],
      ['SYN-ACK', synAck],
      ['data', data],
    ] as const) {
      assert.ok(pkt, what);
      assert.ok(pkt.ipChecksumOk, `${what}: IP checksum`);
      assert.ok(pkt.l4ChecksumOk, `${what}: ${partial ? 'partial' : 'full'} TCP checksum`);
      assert.equal(pkt.partial, partial, `${what}: the NEEDS_CSUM flag is kept as it came`);
    }
    assert.deepEqual([synAck!.src, synAck!.sport, synAck!.dst, synAck!.dport], [REMOTE, 443, B1, 33000]);
    assert.deepEqual([data!.src, data!.sport], [OUT1, syn.sport]);
    // UDP of the same member (protocol All) through the same path.
    tun.inject(udpPacket({ src: B1, dst: REMOTE, sport: 5000, dport: 53, payload: Buffer.from('query') }));
    const [dgram] = tun.take();
    assert.ok(dgram && dgram.l4ChecksumOk && dgram.ipChecksumOk);
    assert.equal(dgram.src, OUT1);
    tun.inject(
      udpPacket({ src: REMOTE, dst: OUT1, sport: 53, dport: dgram.sport, payload: Buffer.from('answer!') }),
    );
    const [answer] = tun.take();
    assert.ok(answer && answer.l4ChecksumOk);
    assert.deepEqual([answer.dst, answer.dport], [B1, 5000]);
    await plane.stop();
  }
});

test("outbound SNAT: a member's ports run on from the rule's first frontend IP to its second, and both addresses report them", async () => {
  // 40,000 ports each: B1 takes 1024-41023 of OUT1; B2 the 24,512 left on OUT1, then 15,488 of OUT2.
  // B2's search starts (random) two ports before the end of OUT1.
  const ports = 40_000;
  const start = 65_534 - 41_024;
  let call = 0;
  const random = (): number => (call++ === 1 ? (start + 0.5) / ports : 0);
  const { engine, tun, plane } = await setup(ports, random);
  const seen: [string, number][] = [];
  for (let i = 0; i < 4; i++) {
    tun.inject(tcpPacket({ src: B2, dst: REMOTE, sport: 40000 + i, dport: 443, flags: TCP_SYN }));
    const [syn] = tun.take();
    assert.ok(syn && syn.l4ChecksumOk);
    seen.push([syn.src, syn.sport]);
  }
  assert.deepEqual(seen, [
    [OUT1, 65534],
    [OUT1, 65535],
    [OUT2, 1024],
    [OUT2, 1025],
  ]);
  // A reply to B2's port on the second address finds B2's flow.
  tun.inject(
    tcpPacket({
      src: REMOTE,
      dst: OUT2,
      sport: 443,
      dport: 1024,
      seq: 1,
      ack: 1001,
      flags: TCP_SYN | TCP_ACK,
    }),
  );
  const [reply] = tun.take();
  assert.ok(reply);
  assert.deepEqual([reply.dst, reply.dport], [B2, 40002]);
  const usage = engine.snatUsage().map((u) => [u.address, u.allocated, u.used]);
  assert.deepEqual(usage.sort(), [
    [OUT1, ports + (65_536 - 1024 - ports), 2],
    [OUT2, ports - (65_536 - 1024 - ports), 2],
  ]);
  await plane.stop();
});

/** B1 opens an outbound flow to REMOTE and both sides exchange a segment; returns B1's SNAT port. */
function established(tun: FakeTun, sport = 33000): number {
  tun.inject(tcpPacket({ src: B1, dst: REMOTE, sport, dport: 443, seq: 7, flags: TCP_SYN }));
  const [syn] = tun.take();
  tun.inject(
    tcpPacket({
      src: REMOTE,
      dst: syn!.src,
      sport: 443,
      dport: syn!.sport,
      seq: 90,
      ack: 8,
      flags: TCP_SYN | TCP_ACK,
    }),
  );
  tun.inject(tcpPacket({ src: B1, dst: REMOTE, sport, dport: 443, seq: 8, ack: 91, flags: TCP_ACK }));
  tun.take();
  return syn!.sport;
}

test('a removed outbound rule ends its flows as it would at idle: a RST to the member and to the remote when it had TCP reset on', async () => {
  const { engine, tun, plane } = await setup(8);
  const port = established(tun);
  // The same load balancer without its outbound rule.
  const doc = lbDocument({ frontend: FE, backends: [B1, B2], rules: [] });
  const without = validateDocument(doc);
  assert.ok(without.valid && without.snapshot);
  engine.setSnapshot(without.snapshot);
  await plane.apply(without.snapshot);
  const rsts = tun.take();
  assert.equal(rsts.length, 2);
  const toMember = rsts.find((r) => r.dst === B1)!;
  const toRemote = rsts.find((r) => r.dst === REMOTE)!;
  assert.ok(toMember.flags & TCP_RST && toRemote.flags & TCP_RST);
  assert.deepEqual([toMember.src, toMember.sport, toMember.dport, toMember.seq], [REMOTE, 443, 33000, 91]);
  assert.deepEqual([toRemote.src, toRemote.sport, toRemote.dport, toRemote.seq], [OUT1, port, 443, 8]);
  await plane.stop();
});

test('adminState Down leaves a member its outbound flows and its new ones (admin state steers inbound distribution only)', async () => {
  const { engine, tun, plane } = await setup(8);
  established(tun);
  const member = engine.snapshot.loadBalancers[0]!.pools[0]!.members.find((m) => m.address === B1)!;
  engine.setAdminState(member.id, 'Down');
  assert.equal(plane.endFlowsOfMember(member.id, 'reset'), 0, 'no outbound flow is ended with the member');
  assert.equal(tun.written.length, 0, 'no RST');
  tun.inject(
    tcpPacket({
      src: B1,
      dst: REMOTE,
      sport: 33000,
      dport: 443,
      seq: 8,
      ack: 91,
      flags: TCP_ACK | TCP_PSH,
      payload: Buffer.from('on'),
    }),
  );
  assert.equal(tun.take()[0]?.src, OUT1, 'the existing flow still flows');
  tun.inject(tcpPacket({ src: B1, dst: REMOTE, sport: 33001, dport: 443, seq: 1, flags: TCP_SYN }));
  assert.equal(tun.take()[0]?.src, OUT1, 'and a new one is SNATed');
  await plane.stop();
});
