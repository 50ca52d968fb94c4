import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine } from '../../../src/core/engine.js';
import { TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN } from '../../../src/core/tcp-state.js';
import { PacketPlane } from '../../../src/dataplane/packet/packet-plane.js';
import { compileLb } from '../../helpers/arm.js';
import { FakeTun, tcpPacket } from './packets.js';

const FE = '198.18.100.10';
const CLIENT = '198.18.1.2';
const B1 = '198.18.2.2';
const SNAT = '198.18.100.99';
const MIN = 60_000;

/** A floating-IP rule (80 -> 8080) and a plain one (81 -> 8080) on one frontend, one backend. */
async function setup(inboundSnat?: string) {
  const clock = new ManualClock(0);
  const snapshot = compileLb({
    frontend: FE,
    backends: [B1],
    rules: [
      { name: 'floating', frontendPort: 80, backendPort: 8080, enableTcpReset: true, enableFloatingIP: true },
      { name: 'plain', frontendPort: 81, backendPort: 8080, enableTcpReset: true },
    ],
  });
  const engine = new FlowEngine({ clock, snapshot, indexReplies: true });
  const tun = new FakeTun();
  const opened = new Map<string, FakeTun>();
  const plane = new PacketPlane({
    engine,
    clock,
    tun: 'fake0',
    device: tun,
    host: null,
    ...(inboundSnat !== undefined ? { inboundSnat } : {}),
    openDevice: (name) => {
      const d = new FakeTun();
      opened.set(name, d);
      return d;
    },
  });
  await plane.apply(snapshot);
  return { clock, tun, plane, opened };
}

test('floating IP: the backend gets the packet still addressed to the frontend IP, on its own device; replies from the frontend IP go back to the client', async () => {
  for (const partial of [false, true]) {
    const { tun, plane, opened } = await setup();
    assert.deepEqual([...opened.keys()], ['fake0f0'], 'one device for the one floating backend');
    const dev = opened.get('fake0f0')!;
    tun.inject(
      tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 100, flags: TCP_SYN, partial }),
    );
    assert.equal(tun.written.length, 0, 'nothing written where it would route back into Sluice');
    const [syn] = dev.take();
    assert.ok(syn);
    assert.deepEqual([syn.src, syn.sport, syn.dst, syn.dport], [CLIENT, 40000, FE, 8080]);
    assert.ok(
      syn.ipChecksumOk && syn.l4ChecksumOk,
      `${partial ? 'partial' : 'full'} checksum after the port map`,
    );
    assert.equal(syn.partial, partial);
    // The backend answers from the frontend IP and the backend port.
    tun.inject(
      tcpPacket({
        src: FE,
        dst: CLIENT,
        sport: 8080,
        dport: 40000,
        seq: 5000,
        ack: 101,
        flags: TCP_SYN | TCP_ACK,
        partial,
      }),
    );
    const [synAck] = tun.take();
    assert.ok(synAck);
    assert.deepEqual([synAck.src, synAck.sport, synAck.dst, synAck.dport], [FE, 80, CLIENT, 40000]);
    assert.ok(synAck.ipChecksumOk && synAck.l4ChecksumOk);
    assert.equal(dev.written.length, 0);
    // The plain rule on the same frontend still DNATs to the backend's own address, by the TUN.
    tun.inject(
      tcpPacket({ src: CLIENT, dst: FE, sport: 40001, dport: 81, seq: 100, flags: TCP_SYN, partial }),
    );
    const [plain] = tun.take();
    assert.deepEqual([plain!.dst, plain!.dport], [B1, 8080]);
    assert.equal(dev.written.length, 0);
    await plane.stop();
  }
});

test('floating IP: at idle the backend is reset at the frontend IP through its device, the client from the frontend; a late backend packet is answered there too', async () => {
  const { tun, plane, opened, clock } = await setup();
  const dev = opened.get('fake0f0')!;
  tun.inject(tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 100, flags: TCP_SYN }));
  tun.inject(
    tcpPacket({
      src: FE,
      dst: CLIENT,
      sport: 8080,
      dport: 40000,
      seq: 5000,
      ack: 101,
      flags: TCP_SYN | TCP_ACK,
    }),
  );
  tun.inject(
    tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 101, ack: 5001, flags: TCP_ACK }),
  );
  tun.inject(
    tcpPacket({
      src: CLIENT,
      dst: FE,
      sport: 40000,
      dport: 80,
      seq: 101,
      ack: 5001,
      flags: TCP_ACK | TCP_PSH,
      payload: Buffer.from('hi'),
    }),
  );
  tun.inject(
    tcpPacket({ src: FE, dst: CLIENT, sport: 8080, dport: 40000, seq: 5001, ack: 103, flags: TCP_ACK }),
  );
  tun.take();
  dev.take();
  clock.advance(4 * MIN + 20);
  plane.runDue(clock.now());
  const [toClient] = tun.take();
  const [toBackend] = dev.take();
  assert.ok(toClient && toBackend);
  assert.deepEqual(
    [toClient.src, toClient.sport, toClient.dst, toClient.dport, toClient.seq],
    [FE, 80, CLIENT, 40000, 5001],
  );
  assert.ok(toClient.flags & TCP_RST);
  assert.deepEqual(
    [toBackend.src, toBackend.sport, toBackend.dst, toBackend.dport, toBackend.seq],
    [CLIENT, 40000, FE, 8080, 103],
    'the RST to the backend is addressed to the frontend IP it owns',
  );
  assert.ok(toBackend.flags & TCP_RST);
  assert.ok(toBackend.ipChecksumOk && toBackend.l4ChecksumOk);
  // B6: the backend writes after the reset; the answer goes back through its device.
  tun.inject(
    tcpPacket({
      src: FE,
      dst: CLIENT,
      sport: 8080,
      dport: 40000,
      seq: 5001,
      ack: 103,
      flags: TCP_ACK | TCP_PSH,
      payload: Buffer.from('late'),
    }),
  );
  assert.equal(tun.written.length, 0);
  const [answer] = dev.take();
  assert.ok(answer);
  assert.deepEqual([answer.src, answer.sport, answer.dst, answer.dport], [CLIENT, 40000, FE, 8080]);
  assert.ok(answer.flags & TCP_RST);
  await plane.stop();
});

test('floating IP with --inbound-snat: the backend sees the SNAT address and the frontend IP; its replies to the SNAT port find the client', async () => {
  const { tun, plane, opened } = await setup(SNAT);
  const dev = opened.get('fake0f0')!;
  tun.inject(tcpPacket({ src: CLIENT, dst: FE, sport: 40000, dport: 80, seq: 100, flags: TCP_SYN }));
  const [syn] = dev.take();
  assert.ok(syn);
  assert.equal(syn.src, SNAT);
  assert.deepEqual([syn.dst, syn.dport], [FE, 8080]);
  tun.inject(
    tcpPacket({
      src: FE,
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
  assert.ok(synAck.l4ChecksumOk);
  await plane.stop();
});

test('floating IP: a backend that no longer floats loses its device once the configuration changes', async () => {
  const { plane, opened } = await setup();
  const closed: string[] = [];
  for (const [name, d] of opened) d.close = () => closed.push(name);
  const next = compileLb({
    frontend: FE,
    backends: [B1],
    rules: [{ name: 'plain', frontendPort: 81, backendPort: 8080, enableTcpReset: true }],
  });
  await plane.apply(next);
  assert.deepEqual(closed, ['fake0f0']);
  await plane.stop();
});
