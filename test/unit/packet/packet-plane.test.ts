import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine } from '../../../src/core/engine.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../../src/core/tcp-state.js';
import { PacketPlane } from '../../../src/dataplane/packet/packet-plane.js';
import { compileLb } from '../../helpers/arm.js';
import { FakeTun, tcpPacket, udpPacket } from './packets.js';
import { seeded } from '../../helpers/seed.js';

const FE = '198.18.100.10';
const CLIENT = '198.18.1.2';
const B1 = '198.18.2.2';
const SNAT = '198.18.100.99';
const MIN = 60_000;

async function setup(opts: { reset?: boolean; inboundSnat?: string } = {}) {
  const clock = new ManualClock(0);
  const snapshot = compileLb({
    frontend: FE,
    backends: [B1],
    rules: [
      { name: 'web', frontendPort: 80, backendPort: 8080, enableTcpReset: opts.reset ?? true },
      { name: 'dns', protocol: 'Udp', frontendPort: 53, backendPort: 5353 },
    ],
  });
  const engine = new FlowEngine({ clock, snapshot, indexReplies: true });
  const tun = new FakeTun();
  const plane = new PacketPlane({
    engine,
    clock,
    tun: 'fake0',
    device: tun,
    host: null,
    ...(opts.inboundSnat ? { inboundSnat: opts.inboundSnat } : {}),
  });
  await plane.apply(snapshot);
  return { clock, engine, tun, plane };
}

/** Client SYN, backend SYN-ACK, client ACK; returns the backend's view (address, port). */
function handshake(tun: FakeTun, partial = false) {
  tun.inject(tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 100, flags: TCP_SYN, partial }));
  const [syn] = tun.take();
  assert.ok(syn);
  tun.inject(
    tcpPacket({
      src: syn.dst,
      dst: syn.src,
      sport: 8080,
      dport: syn.sport,
      seq: 5000,
      ack: 101,
      flags: TCP_SYN | TCP_ACK,
      partial,
    }),
  );
  const [synAck] = tun.take();
  assert.ok(synAck);
  tun.inject(
    tcpPacket({
      src: CLIENT,
      dst: FE,
      sport: 40000,
      dport: 80,
      seq: 101,
      ack: 5001,
      flags: TCP_ACK,
      partial,
    }),
  );
  tun.take();
  return { syn, synAck };
}

test('DNAT: the client SYN goes to the backend with the client address kept; replies come from the frontend', async () => {
  for (const partial of [false, true]) {
    const { tun, plane } = await setup();
    const { syn, synAck } = handshake(tun, partial);
    assert.deepEqual(
      [syn.src, syn.sport, syn.dst, syn.dport],
      [CLIENT, 40000, B1, 8080],
      'to the backend, the client address and port kept',
    );
    assert.deepEqual([synAck.src, synAck.sport, synAck.dst, synAck.dport], [FE, 80, CLIENT, 40000]);
    for (const p of [syn, synAck]) {
      assert.ok(p.ipChecksumOk, 'IP header checksum');
      assert.ok(p.l4ChecksumOk, `${partial ? 'partial' : 'full'} TCP checksum`);
      assert.equal(p.partial, partial);
    }
    assert.equal(plane.stats.forwardedToBackend, 2);
    assert.equal(plane.stats.forwardedToClient, 1);
    await plane.stop();
  }
});

test('idle reset: one RST to each side, as each sees the flow, with the sequence number each expects', async () => {
  const { tun, plane, clock } = await setup();
  handshake(tun);
  tun.inject(
    tcpPacket({
      src: CLIENT,
      dst: FE,
      sport: 40000,
      dport: 80,
      seq: 101,
      ack: 5001,
      flags: TCP_ACK | TCP_PSH,
      payload: Buffer.from('hello'),
    }),
  );
  tun.inject(
    tcpPacket({ src: B1, dst: CLIENT, sport: 8080, dport: 40000, seq: 5001, ack: 106, flags: TCP_ACK }),
  );
  tun.take();
  clock.advance(4 * MIN - 1);
  plane.runDue(clock.now());
  assert.equal(tun.written.length, 0, 'not before the timeout');
  clock.advance(20);
  plane.runDue(clock.now());
  const [toClient, toBackend] = tun.take();
  assert.ok(toClient && toBackend);
  assert.deepEqual([toClient.src, toClient.sport, toClient.dst, toClient.dport], [FE, 80, CLIENT, 40000]);
  assert.equal(toClient.seq, 5001, "the client's RCV.NXT");
  assert.deepEqual(
    [toBackend.src, toBackend.sport, toBackend.dst, toBackend.dport],
    [CLIENT, 40000, B1, 8080],
  );
  assert.equal(toBackend.seq, 106, "the backend's RCV.NXT");
  for (const r of [toClient, toBackend]) {
    assert.ok(r.flags & TCP_RST);
    assert.ok(r.ipChecksumOk && r.l4ChecksumOk);
  }
  assert.equal(plane.stats.rstToClient, 1);
  assert.equal(plane.stats.rstToBackend, 1);
  // B6: a later segment of the expired flow is answered with a RST whose seq is its ACK.
  tun.inject(
    tcpPacket({
      src: CLIENT,
      dst: FE,
      sport: 40000,
      dport: 80,
      seq: 106,
      ack: 5001,
      flags: TCP_ACK | TCP_PSH,
      payload: Buffer.from('x'),
    }),
  );
  const [answer] = tun.take();
  assert.ok(answer);
  assert.deepEqual(
    [answer.src, answer.sport, answer.dst, answer.dport, answer.seq],
    [FE, 80, CLIENT, 40000, 5001],
  );
  assert.equal(plane.stats.rstAnswers, 1);
  await plane.stop();
});

test('silent drop: nothing is sent at idle and later segments are discarded (B3); half-closed flows get no RST (B5)', async () => {
  const { tun, plane, clock } = await setup({ reset: false });
  handshake(tun);
  clock.advance(4 * MIN + 20);
  plane.runDue(clock.now());
  assert.equal(tun.written.length, 0);
  tun.inject(
    tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 101, ack: 5001, flags: TCP_ACK }),
  );
  assert.equal(tun.written.length, 0);
  assert.equal(plane.stats.drops.expired, 1);
  await plane.stop();

  const r = await setup({ reset: true });
  handshake(r.tun);
  r.tun.inject(
    tcpPacket({
      src: CLIENT,
      dst: FE,
      sport: 40000,
      dport: 80,
      seq: 101,
      ack: 5001,
      flags: TCP_ACK | TCP_FIN,
    }),
  );
  r.tun.take();
  r.clock.advance(4 * MIN + 20);
  r.plane.runDue(r.clock.now());
  assert.equal(r.tun.written.length, 0, 'no RST for a closing flow');
  await r.plane.stop();
});

test('B6: a segment of no flow on a reset rule gets a checksummed RST from the frontend; on a drop rule nothing', async () => {
  for (const inboundSnat of [undefined, SNAT]) {
    const { tun, plane } = await setup({ reset: true, ...(inboundSnat ? { inboundSnat } : {}) });
    const stray = { src: CLIENT, dst: FE, sport: 41000, dport: 80, seq: 7000, ack: 9000 };
    tun.inject(tcpPacket({ ...stray, flags: TCP_ACK | TCP_PSH, payload: Buffer.from('late') }));
    const [answer] = tun.take();
    assert.ok(answer);
    assert.deepEqual(
      [answer.src, answer.sport, answer.dst, answer.dport, answer.seq, answer.flags],
      [FE, 80, CLIENT, 41000, 9000, TCP_RST],
    );
    assert.ok(answer.ipChecksumOk && answer.l4ChecksumOk);
    tun.inject(tcpPacket({ ...stray, flags: TCP_RST }));
    assert.equal(tun.written.length, 0, 'a RST is not answered');
    assert.equal(plane.stats.rstAnswers, 1);
    assert.equal(plane.stats.drops['no-flow'], 1);
    await plane.stop();
  }
  const { tun, plane } = await setup({ reset: false });
  tun.inject(tcpPacket({ src: CLIENT, dst: FE, sport: 41000, dport: 80, seq: 1, ack: 2, flags: TCP_ACK }));
  assert.equal(tun.written.length, 0);
  assert.equal(plane.stats.drops['no-flow'], 1);
  await plane.stop();
});

test('UDP: datagrams are DNATed and replies come back from the frontend', async () => {
  const { tun, plane } = await setup();
  tun.inject(udpPacket({ src: CLIENT, dst: FE, sport: 5000, dport: 53, payload: Buffer.from('query') }));
  const [q] = tun.take();
  assert.ok(q);
  assert.deepEqual([q.src, q.sport, q.dst, q.dport], [CLIENT, 5000, B1, 5353]);
  assert.ok(q.ipChecksumOk && q.l4ChecksumOk);
  tun.inject(udpPacket({ src: B1, dst: CLIENT, sport: 5353, dport: 5000, payload: Buffer.from('answer') }));
  const [a] = tun.take();
  assert.ok(a);
  assert.deepEqual([a.src, a.sport, a.dst, a.dport], [FE, 53, CLIENT, 5000]);
  assert.ok(a.ipChecksumOk && a.l4ChecksumOk);
  await plane.stop();
});

test('--inbound-snat: the backend sees the SNAT address and a port of its own; replies find the client', async () => {
  const { tun, plane, clock } = await setup({ inboundSnat: SNAT });
  tun.inject(tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 100, flags: TCP_SYN }));
  const [syn] = tun.take();
  assert.ok(syn);
  assert.equal(syn.src, SNAT);
  assert.equal(syn.dst, B1);
  assert.ok(syn.ipChecksumOk && syn.l4ChecksumOk);
  tun.inject(
    tcpPacket({
      src: B1,
      dst: SNAT,
      sport: 8080,
      dport: syn.sport,
      seq: 5000,
      ack: 101,
      flags: TCP_SYN | TCP_ACK,
    }),
  );
  const [synAck] = tun.take();
  assert.ok(synAck);
  assert.deepEqual([synAck.src, synAck.sport, synAck.dst, synAck.dport], [FE, 80, CLIENT, 40000]);
  assert.ok(synAck.ipChecksumOk && synAck.l4ChecksumOk);
  tun.inject(
    tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 101, ack: 5001, flags: TCP_ACK }),
  );
  tun.take();
  clock.advance(4 * MIN + 20);
  plane.runDue(clock.now());
  const [, toBackend] = tun.take();
  assert.ok(toBackend);
  assert.deepEqual(
    [toBackend.src, toBackend.sport, toBackend.dst],
    [SNAT, syn.sport, B1],
    'the RST as the backend sees the flow',
  );
  // A second client with the same source port gets another SNAT port.
  tun.inject(tcpPacket({ src: '198.18.1.3', dst: FE, sport: 40000, dport: 80, seq: 100, flags: TCP_SYN }));
  const [other] = tun.take();
  assert.ok(other);
  assert.notEqual(other.sport, syn.sport);
  await plane.stop();
});

test('fuzz: 1,000,000 random and malformed packets crash nothing and every one is accounted for', async () => {
  const { tun, plane } = await setup({ reset: true });
  const rand = seeded(0x51c3);
  const templates = [
    tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 100, flags: TCP_SYN }),
    tcpPacket({
      src: CLIENT,
      dst: FE,
      sport: 40001,
      dport: 80,
      seq: 100,
      ack: 7,
      flags: TCP_ACK,
      payload: Buffer.alloc(30),
    }),
    tcpPacket({
      src: B1,
      dst: CLIENT,
      sport: 8080,
      dport: 40000,
      seq: 1,
      ack: 101,
      flags: TCP_SYN | TCP_ACK,
      partial: true,
    }),
    udpPacket({ src: CLIENT, dst: FE, sport: 5000, dport: 53, payload: Buffer.alloc(12) }),
  ];
  const N = 1_000_000;
  const batch: Buffer[] = [];
  let forwardedOrAnswered = 0;
  for (let i = 0; i < N; i++) {
    const t = templates[Math.floor(rand() * templates.length)]!;
    let p = Buffer.from(t);
    const kind = Math.floor(rand() * 8);
    if (kind === 0)
      p = p.subarray(0, Math.floor(rand() * p.length)); // truncated
    else if (kind === 1)
      p.writeUInt16BE(Math.floor(rand() * 65536), 12); // lying IP length
    else if (kind === 2)
      p.writeUInt16BE(0x2000 | Math.floor(rand() * 100), 16); // fragment
    else if (kind === 3)
      p[10] = Math.floor(rand() * 256); // version and header length
    else if (kind === 4)
      p[10 + 20 + 13] = Math.floor(rand() * 256); // flags
    else if (kind === 5)
      p[10 + 9] = Math.floor(rand() * 256); // protocol
    else if (kind === 6)
      for (let j = 0; j < 4; j++) p[Math.floor(rand() * p.length)] = Math.floor(rand() * 256);
    else p = Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256)));
    batch.push(p);
    if (batch.length === 64 || i === N - 1) {
      tun.inject(...batch);
      batch.length = 0;
      forwardedOrAnswered += tun.written.length;
      tun.written.length = 0;
    }
  }
  const s = plane.stats;
  const dropped = Object.values(s.drops).reduce((a, b) => a + b, 0);
  assert.equal(s.packetsIn, N);
  assert.equal(s.drops.other, 0, 'no packet made the plane throw');
  assert.equal(
    dropped + s.forwardedToBackend + s.forwardedToClient + s.rstAnswers,
    N,
    'each packet forwarded, answered or dropped by reason',
  );
  assert.equal(forwardedOrAnswered, s.forwardedToBackend + s.forwardedToClient + s.rstAnswers);
  for (const reason of ['truncated', 'bad-ip-length', 'fragment', 'not-ipv4', 'protocol', 'no-flow'] as const)
    assert.ok(s.drops[reason] > 0, `some dropped as ${reason}`);
  await plane.stop();
});
