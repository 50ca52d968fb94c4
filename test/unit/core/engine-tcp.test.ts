import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine } from '../../../src/core/engine.js';
import type { FlowEvent } from '../../../src/core/events.js';
import { FlowKey, PROTO_TCP } from '../../../src/core/flow-key.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../../src/core/tcp-state.js';
import { lbRule, snapshot } from './snapshot-helpers.js';
import { TcpConversation, advance } from './tcp-driver.js';

const MIN = 60_000;

function setup(
  opts: { reset?: boolean; idleMinutes?: number; maxTombstones?: number; maxFlows?: number } = {},
) {
  const clock = new ManualClock(1_000_000);
  const events: FlowEvent[] = [];
  const engine = new FlowEngine({
    clock,
    tickMs: 1,
    snapshot: snapshot([lbRule({ reset: opts.reset ?? false, idleMinutes: opts.idleMinutes ?? 4 })]),
    events: (e) => events.push(e),
    ...(opts.maxTombstones !== undefined ? { maxTombstones: opts.maxTombstones } : {}),
    ...(opts.maxFlows !== undefined ? { maxFlows: opts.maxFlows } : {}),
  });
  return { clock, engine, events };
}

test('B1: a SYN to a rule creates one flow; both directions of the 5-tuple find it', () => {
  const { engine } = setup();
  const c = new TcpConversation(engine);
  const syn = c.fromClient({ flags: TCP_SYN, wscale: 7 });
  assert.equal(syn.action, 'forward');
  assert.equal(syn.created, true);
  assert.equal(syn.direction, 'toBackend');
  assert.equal(syn.backendPort, 8080);
  assert.ok(['10.1.0.1', '10.1.0.2', '10.1.0.3'].includes(syn.member!));
  c.clientNext++;
  c.backendRcv = c.clientNext;
  const synAck = c.fromBackend({ flags: TCP_SYN | TCP_ACK, wscale: 7 });
  assert.equal(synAck.action, 'forward');
  assert.equal(synAck.direction, 'toClient');
  assert.equal(synAck.flowId, syn.flowId);
  assert.equal(synAck.created, false);
  assert.equal(engine.flowCount, 1);
  assert.equal(engine.flow(syn.flowId)!.state, 'SYN_RECV');
  // Another source port is another flow.
  const other = new TcpConversation(engine, '192.0.2.10', 40001);
  assert.equal(other.fromClient({ flags: TCP_SYN }).created, true);
  assert.equal(engine.flowCount, 2);
});

test('packets to an address or port without a rule are dropped as no-rule; non-SYN without a flow as no-flow', () => {
  const { engine } = setup();
  const stray = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.9', 80);
  assert.deepEqual(
    [stray.fromClient({ flags: TCP_SYN }).action, stray.fromClient({ flags: TCP_SYN }).reason],
    ['drop', 'no-rule'],
  );
  const midStream = new TcpConversation(engine);
  const v = midStream.fromClient({ flags: TCP_ACK, len: 10 });
  assert.equal(v.action, 'drop');
  assert.equal(v.reason, 'no-flow');
  assert.equal(engine.flowCount, 0);
});

test('B3: without enableTcpReset an idle established flow is dropped silently, later packets both ways are discarded', () => {
  const { engine, clock, events } = setup({ reset: false });
  const c = new TcpConversation(engine);
  c.handshake();
  c.clientSends(100);
  assert.equal(engine.flow(c.flowId)!.state, 'ESTABLISHED');
  clock.advance(4 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  const actions = advance(engine);
  assert.equal(actions.length, 1);
  assert.equal(actions[0]!.action, 'drop');
  assert.equal(actions[0]!.flowId, c.flowId);
  assert.equal(engine.flowCount, 0);
  assert.equal(engine.tombstoneCount, 1);
  const later = c.clientSends(10, false);
  assert.equal(later.action, 'drop');
  assert.equal(later.reason, 'expired');
  assert.equal(c.fromBackend({ flags: TCP_ACK, len: 5 }).action, 'drop');
  const expired = events.filter((e) => e.type === 'expired');
  assert.equal(expired.length, 1);
  assert.equal(expired[0]!.type === 'expired' && expired[0]!.action, 'drop');
});

test('B4: with enableTcpReset an idle established flow yields a RST to each side with hand-computed seq/ack', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.1', 80, 1000, 5000);
  c.handshake(); // client 1000 -> 1001, backend 5000 -> 5001
  c.clientSends(100); // client end 1101
  c.backendSends(200); // backend end 5201
  clock.advance(4 * MIN);
  const [a, ...rest] = advance(engine);
  assert.equal(rest.length, 0);
  assert.equal(a!.action, 'reset');
  assert.equal(a!.protocol, 'Tcp');
  // Towards the client: its RCV.NXT (= the backend's end = its last ACK); ack = the client's own end.
  assert.deepEqual(a!.toClient, { seq: 5201, ack: 1101 });
  assert.deepEqual(a!.toBackend, { seq: 1101, ack: 5201 });
  assert.equal(a!.key, 'tcp 192.0.2.10:40000 > 10.0.0.1:80');
  assert.equal(a!.backendPort, 8080);
  assert.equal(engine.stats().expiredReset, 1);
});

test('B4 mid-stream: the RST towards an endpoint that received more than it acknowledged carries what it received', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.1', 80, 1000, 5000);
  c.handshake();
  c.clientSends(100); // 1101
  c.backendSends(200); // 5201, acknowledged by the client
  c.backendSends(300, false); // 5501 forwarded to the client, which has not acknowledged it yet
  c.clientSends(40, false); // 1141 forwarded to the backend, not acknowledged; client's ACK still says 5201
  clock.advance(4 * MIN);
  const [a] = advance(engine);
  assert.equal(a!.action, 'reset');
  assert.deepEqual(a!.toClient, { seq: 5501, ack: 1141 });
  assert.deepEqual(a!.toBackend, { seq: 1141, ack: 5501 });
});

test('B4 across sequence wrap-around', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.1', 80, 4294967290, 4294967000);
  c.handshake(); // client 4294967291
  c.clientSends(20); // wraps: (4294967291 + 20) mod 2^32 = 15
  c.backendSends(1000); // 4294967001 + 1000 mod 2^32 = 705
  clock.advance(4 * MIN);
  const [a] = advance(engine);
  assert.deepEqual(a!.toClient, { seq: 705, ack: 15 });
  assert.deepEqual(a!.toBackend, { seq: 15, ack: 705 });
});

test('B5: a flow in its handshake is dropped at idle without RST even with enableTcpReset', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine);
  c.fromClient({ flags: TCP_SYN });
  clock.advance(4 * MIN);
  const [a] = advance(engine);
  assert.equal(a!.action, 'drop');
  // After SYN-ACK but before the final ACK: still not ESTABLISHED.
  const d = new TcpConversation(engine, '192.0.2.11');
  d.fromClient({ flags: TCP_SYN, wscale: 7 });
  d.clientNext++;
  d.backendRcv = d.clientNext;
  d.fromBackend({ flags: TCP_SYN | TCP_ACK, wscale: 7 });
  assert.equal(engine.flow(d.flowId)!.state, 'SYN_RECV');
  clock.advance(4 * MIN);
  const [b] = advance(engine);
  assert.equal(b!.action, 'drop');
});

test('B5: a half-closed flow is dropped at idle without RST', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine);
  c.handshake();
  c.clientSends(10);
  c.clientFin();
  assert.equal(engine.flow(c.flowId)!.state, 'FIN_WAIT');
  c.fromBackend({ flags: TCP_ACK });
  assert.equal(engine.flow(c.flowId)!.state, 'CLOSE_WAIT');
  clock.advance(4 * MIN);
  const [a] = advance(engine);
  assert.equal(a!.action, 'drop');
  assert.equal(engine.stats().expiredReset, 0);
});

test('FIN both ways and the final ACK: the flow lingers, then is removed with reason fin and no idle action', () => {
  const { engine, clock, events } = setup({ reset: true });
  const c = new TcpConversation(engine);
  c.handshake();
  c.clientFin();
  c.fromBackend({ flags: TCP_ACK });
  c.backendFin();
  assert.equal(engine.flow(c.flowId)!.state, 'LAST_ACK');
  c.fromClient({ flags: TCP_ACK });
  assert.equal(engine.flow(c.flowId)!.state, 'TIME_WAIT');
  clock.advance(10_000);
  assert.deepEqual(advance(engine), []);
  assert.equal(engine.flowCount, 0);
  assert.equal(engine.tombstoneCount, 0);
  const closed = events.find((e) => e.type === 'closed');
  assert.ok(closed && closed.type === 'closed' && closed.reason === 'fin');
  // The port can be used again at once.
  const again = new TcpConversation(engine);
  assert.equal(again.fromClient({ flags: TCP_SYN }).created, true);
});

test('a RST with the exact sequence number closes the flow; one outside is forwarded but not trusted', () => {
  const { engine, clock, events } = setup({ reset: true });
  const c = new TcpConversation(engine);
  c.handshake();
  c.clientSends(50);
  const bogus = c.fromClient({ flags: TCP_RST, seq: c.clientNext + 1_000_000 });
  assert.equal(bogus.action, 'forward');
  assert.equal(bogus.trusted, false);
  assert.equal(engine.flow(c.flowId)!.state, 'ESTABLISHED');
  const real = c.clientRst();
  assert.equal(real.trusted, true);
  assert.equal(engine.flow(c.flowId)!.state, 'CLOSED');
  clock.advance(10_000);
  assert.deepEqual(advance(engine), []);
  assert.equal(engine.flowCount, 0);
  assert.ok(events.some((e) => e.type === 'closed' && e.reason === 'rst'));
});

test('B7: a keepalive probe (seq = next - 1, length 0 or 1) refreshes the timer and changes nothing else', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.1', 80, 1000, 5000);
  c.handshake();
  c.clientSends(100); // 1101
  c.backendSends(200); // 5201
  for (let i = 0; i < 5; i++) {
    clock.advance(3 * MIN);
    assert.deepEqual(advance(engine), []);
    // Linux keepalive: zero length; Windows: one garbage byte. Both at SND.NXT - 1.
    const probe = c.fromClient({ flags: TCP_ACK, seq: c.clientNext - 1, len: i % 2 });
    assert.equal(probe.action, 'forward');
    assert.equal(probe.trusted, true);
    const reply = c.fromBackend({ flags: TCP_ACK });
    assert.equal(reply.trusted, true);
  }
  assert.equal(engine.flow(c.flowId)!.state, 'ESTABLISHED');
  clock.advance(4 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  const [a] = advance(engine);
  assert.equal(a!.action, 'reset');
  assert.deepEqual(a!.toClient, { seq: 5201, ack: 1101 });
  assert.deepEqual(a!.toBackend, { seq: 1101, ack: 5201 });
});

test('B7: traffic in either direction alone refreshes the idle timer', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine);
  c.handshake();
  for (let i = 0; i < 4; i++) {
    clock.advance(3 * MIN);
    c.backendSends(1, false);
    assert.deepEqual(advance(engine), []);
  }
  assert.equal(engine.flowCount, 1);
  assert.equal(engine.flow(c.flowId)!.bytesToClient, 4);
});

test('a segment far outside the window is counted, forwarded, and neither moves state nor refreshes the timer', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.1', 80, 1000, 5000);
  c.handshake();
  c.clientSends(100);
  clock.advance(3 * MIN);
  const far = c.fromClient({ flags: TCP_ACK | TCP_FIN, seq: c.clientNext + 500_000_000, len: 10 });
  assert.equal(far.action, 'forward');
  assert.equal(far.trusted, false);
  assert.equal(engine.stats().untrustedSegments, 1);
  assert.equal(engine.flow(c.flowId)!.state, 'ESTABLISHED');
  const badAck = c.fromBackend({ flags: TCP_ACK, ack: c.clientNext + 3_000_000 });
  assert.equal(badAck.trusted, false);
  clock.advance(1 * MIN);
  const [a] = advance(engine);
  assert.equal(a!.action, 'reset');
  assert.deepEqual(a!.toBackend, { seq: 1101, ack: 5001 });
});

test('B6: after a reset-enabled flow expired, later non-SYN packets get a RST per RFC 9293; a SYN starts afresh', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.1', 80, 1000, 5000);
  c.handshake();
  c.clientSends(100);
  clock.advance(4 * MIN);
  advance(engine);
  // The client missed the RST and sends data: seq 1101, ack 5001.
  const late = c.clientSends(10, false);
  assert.equal(late.action, 'reset');
  assert.equal(late.reason, 'expired');
  assert.equal(late.rstSeq, 5001); // its ACK field
  assert.equal(late.rstFlags, TCP_RST);
  // A segment without ACK: seq 0, ack = seq + length, RST|ACK.
  const noAck = c.fromClient({ flags: TCP_FIN, seq: 7000, len: 5 });
  assert.equal(noAck.action, 'reset');
  assert.deepEqual([noAck.rstSeq, noAck.rstAck, noAck.rstFlags], [0, 7006, TCP_RST | TCP_ACK]);
  // The backend's side of the flow is remembered too.
  const fromBackend = c.fromBackend({ flags: TCP_ACK, len: 3, ack: 1111 });
  assert.equal(fromBackend.action, 'reset');
  assert.equal(fromBackend.direction, 'toClient');
  assert.equal(fromBackend.rstSeq, 1111);
  // A RST is never answered.
  assert.equal(c.fromClient({ flags: TCP_RST }).action, 'drop');
  assert.equal(engine.stats().tombstoneResets, 3);
  // A new SYN on the same 5-tuple starts a new flow.
  const syn = c.fromClient({ flags: TCP_SYN, seq: 90_000 });
  assert.equal(syn.action, 'forward');
  assert.equal(syn.created, true);
  assert.equal(engine.flowCount, 1);
  assert.equal(engine.tombstoneCount, 0);
});

test('B6: a reset-enabled flow that expired silently (handshake) still answers later packets with RST', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine);
  c.fromClient({ flags: TCP_SYN });
  clock.advance(4 * MIN);
  assert.equal(advance(engine)[0]!.action, 'drop');
  assert.equal(c.fromClient({ flags: TCP_ACK, ack: 77 }).action, 'reset');
});

test('tombstones are bounded in time and in count', () => {
  const { engine, clock } = setup({ reset: true, maxTombstones: 2 });
  const convs = [40001, 40002, 40003].map((p) => new TcpConversation(engine, '192.0.2.10', p));
  for (const c of convs) c.handshake();
  clock.advance(4 * MIN);
  assert.equal(advance(engine).length, 3);
  assert.equal(engine.tombstoneCount, 2);
  assert.equal(engine.stats().tombstonesEvicted, 1);
  // The oldest was evicted: its later packets are without a flow, and B6 answers them anyway.
  const results = convs.map((c) => c.fromClient({ flags: TCP_ACK, len: 1 }));
  assert.deepEqual(
    results.map((r) => [r.action, r.reason]),
    [
      ['reset', 'no-flow'],
      ['reset', 'expired'],
      ['reset', 'expired'],
    ],
  );
  clock.advance(15 * MIN);
  advance(engine);
  assert.equal(engine.tombstoneCount, 0);
  for (const c of convs)
    assert.deepEqual(
      [c.fromClient({ flags: TCP_ACK, len: 1 }).action, c.fromClient({ flags: TCP_ACK, len: 1 }).reason],
      ['reset', 'no-flow'],
    );
});

test('B6 without a time limit: 20 and 120 minutes after expiry, and with no flow ever seen, a reset rule answers a non-SYN from the segment alone', () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.1', 80, 1000, 5000);
  c.handshake();
  c.clientSends(100);
  clock.advance(4 * MIN);
  assert.equal(advance(engine)[0]!.action, 'reset');
  for (const minutes of [20, 120]) {
    clock.advance((minutes === 20 ? 20 : 100) * MIN);
    advance(engine);
    assert.equal(engine.tombstoneCount, 0, `no tombstone left at ${minutes} minutes`);
    // The client missed the idle RST and writes: seq 1101, ack 5001. The RST's seq is its ACK.
    const late = c.clientSends(10, false);
    assert.deepEqual(
      [late.action, late.reason, late.rstSeq, late.rstAck, late.rstFlags],
      ['reset', 'no-flow', 5001, 0, TCP_RST],
      `at ${minutes} minutes`,
    );
  }
  // Without ACK (RFC 9293 3.10.7.1): seq 0, ack = its sequence end, RST|ACK.
  const fin = c.fromClient({ flags: TCP_FIN, seq: 7000, len: 5 });
  assert.deepEqual([fin.action, fin.rstSeq, fin.rstAck, fin.rstFlags], ['reset', 0, 7006, TCP_RST | TCP_ACK]);
  // A flow Sluice never saw (after a restart, say) is answered the same way.
  const never = new TcpConversation(engine, '192.0.2.77', 51000, '10.0.0.1', 80).fromClient({
    flags: TCP_ACK | TCP_FIN,
    seq: 42,
    ack: 0xfffffff0,
    len: 3,
  });
  assert.deepEqual([never.action, never.rstSeq, never.rstFlags], ['reset', 0xfffffff0, TCP_RST]);
  // A RST is never answered with a RST.
  const rst = c.fromClient({ flags: TCP_RST | TCP_ACK });
  assert.deepEqual([rst.action, rst.reason], ['drop', 'no-flow']);
  assert.equal(engine.stats().noFlowResets, 4);
  assert.equal(engine.stats().noFlowDrops, 1);
  assert.equal(engine.flowCount, 0, 'answering keeps no state');
  // A SYN still starts a flow.
  const syn = c.fromClient({ flags: TCP_SYN, seq: 90_000 });
  assert.deepEqual([syn.action, syn.created], ['forward', true]);
  assert.equal(engine.flowCount, 1);
});

test('B6 and B3: on a drop rule a non-SYN of no flow is dropped silently, however late', () => {
  const { engine, clock } = setup({ reset: false });
  const c = new TcpConversation(engine);
  c.handshake();
  clock.advance(4 * MIN);
  assert.equal(advance(engine)[0]!.action, 'drop');
  for (const minutes of [20, 100]) {
    clock.advance(minutes * MIN);
    advance(engine);
    const late = c.clientSends(10, false);
    assert.deepEqual([late.action, late.reason], ['drop', 'no-flow']);
  }
  const never = new TcpConversation(engine, '192.0.2.77', 51000).fromClient({ flags: TCP_ACK, len: 1 });
  assert.deepEqual([never.action, never.reason], ['drop', 'no-flow']);
  assert.equal(engine.stats().noFlowResets, 0);
  assert.equal(engine.stats().noFlowDrops, 3);
});

test("B6: a backend's reply of no flow is not answered once the tombstone is gone: the packet does not tell its rule", () => {
  const { engine, clock } = setup({ reset: true });
  const c = new TcpConversation(engine);
  c.handshake();
  clock.advance(4 * MIN);
  advance(engine);
  // While the tombstone lasts the backend's late segment is answered (it names the flow).
  assert.equal(c.fromBackend({ flags: TCP_ACK, len: 3 }).action, 'reset');
  clock.advance(20 * MIN);
  advance(engine);
  const late = c.fromBackend({ flags: TCP_ACK, len: 3 });
  assert.deepEqual([late.action, late.reason], ['drop', 'no-rule']);
});

test('capacity: beyond maxFlows new flows are refused and counted', () => {
  const { engine, events } = setup({ maxFlows: 2 });
  for (const p of [1, 2])
    assert.equal(new TcpConversation(engine, '192.0.2.1', p).fromClient({ flags: TCP_SYN }).created, true);
  const v = new TcpConversation(engine, '192.0.2.1', 3).fromClient({ flags: TCP_SYN });
  assert.equal(v.action, 'drop');
  assert.equal(v.reason, 'capacity');
  assert.equal(engine.stats().refused.capacity, 1);
  assert.ok(events.some((e) => e.type === 'refused' && e.reason === 'capacity' && e.client.port === 3));
  assert.equal(engine.flowCount, 2);
});

test('expiry is never early and at most one tick late with a coarse wheel', () => {
  const clock = new ManualClock(123);
  const engine = new FlowEngine({ clock, tickMs: 50, snapshot: snapshot([lbRule({ reset: true })]) });
  const c = new TcpConversation(engine);
  c.handshake();
  clock.advance(7);
  c.clientSends(1);
  const deadline = clock.now() + 4 * MIN;
  while (clock.now() < deadline - 1) {
    clock.advance(997);
    if (clock.now() >= deadline) break;
    assert.deepEqual(advance(engine), []);
    assert.ok(engine.nextDeadline() <= deadline + 50);
  }
  clock.advance(deadline + 50 - clock.now());
  assert.equal(advance(engine).length, 1);
});

test('the engine answers for the frontend port with the rule backend port and keeps the chosen backend', () => {
  const { engine } = setup();
  const c = new TcpConversation(engine);
  c.handshake();
  const key = new FlowKey().set(PROTO_TCP, c.backendAddress, 8080, '192.0.2.10', 40000);
  const found = engine.lookup(key);
  assert.deepEqual(found, { flowId: c.flowId, direction: 'toClient', tombstone: false });
  const info = engine.flow(c.flowId)!;
  assert.equal(info.backend.address, c.backendAddress);
  assert.equal(info.backend.port, 8080);
  assert.equal(info.frontend.port, 80);
  assert.equal(info.client.address, '192.0.2.10');
  assert.equal(info.ruleName, 'web');
});

test('changed idle timeout, packet API: a keepalive probe after a lower timeout starts the new one; a silent flow keeps the old', () => {
  const clock = new ManualClock(1_000_000);
  const web = (idleMinutes: number) => lbRule({ reset: true, idleMinutes });
  const engine = new FlowEngine({ clock, tickMs: 1, snapshot: snapshot([web(10)]) });
  const probed = new TcpConversation(engine, '192.0.2.10', 40000, '10.0.0.1', 80, 1000, 5000);
  const silent = new TcpConversation(engine, '192.0.2.10', 40001, '10.0.0.1', 80, 7000, 9000);
  probed.handshake();
  silent.handshake();
  clock.advance(MIN);
  engine.setSnapshot(snapshot([web(4)]));
  assert.equal(engine.flow(probed.flowId)!.msLeft, 9 * MIN);
  clock.advance(4 * MIN);
  assert.deepEqual(advance(engine), [], 'no flow ends at the new timeout before its next packet');
  // A keepalive probe: one byte below the client's next sequence number.
  const probe = probed.fromClient({ flags: TCP_ACK, seq: probed.clientNext - 1, len: 0 });
  assert.equal(probe.trusted, true);
  assert.equal(engine.flow(probed.flowId)!.timeoutMs, 4 * MIN);
  clock.advance(4 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((a) => [a.flowId, a.action]),
    [[probed.flowId, 'reset']],
  );
  clock.advance(MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((a) => [a.flowId, a.action]),
    [[silent.flowId, 'reset']],
    'the silent flow ends 10 minutes after its handshake',
  );
});

test('changed idle timeout, packet API: a higher timeout applies from the next segment of either side', () => {
  const clock = new ManualClock(1_000_000);
  const web = (idleMinutes: number) => lbRule({ reset: true, idleMinutes });
  const engine = new FlowEngine({ clock, tickMs: 1, snapshot: snapshot([web(4)]) });
  const c = new TcpConversation(engine);
  c.handshake();
  engine.setSnapshot(snapshot([web(20)]));
  clock.advance(3 * MIN);
  assert.equal(engine.flow(c.flowId)!.msLeft, MIN);
  c.backendSends(10, false);
  assert.equal(engine.flow(c.flowId)!.msLeft, 20 * MIN);
  clock.advance(20 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((a) => a.action),
    ['reset'],
  );
});
