import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine } from '../../../src/core/engine.js';
import type { FlowEvent } from '../../../src/core/events.js';
import { FlowKey, PROTO_TCP, PROTO_UDP } from '../../../src/core/flow-key.js';
import { TCP_ACK, TCP_SYN } from '../../../src/core/tcp-state.js';
import { lbRule, natRule, pool, probe, snapshot } from './snapshot-helpers.js';
import { advance } from './tcp-driver.js';

const MIN = 60_000;

function opened(r: ReturnType<FlowEngine['open']>) {
  assert.ok(r.ok, `refused: ${r.ok ? '' : r.reason}`);
  return r;
}

test('connection API: open chooses a backend; activity refreshes the timer; idle reset for an established flow', () => {
  const clock = new ManualClock(0);
  const events: FlowEvent[] = [];
  const engine = new FlowEngine({
    clock,
    tickMs: 1,
    indexReplies: false,
    snapshot: snapshot([lbRule({ reset: true, idleMinutes: 5 })]),
    events: (e) => events.push(e),
  });
  const r = opened(engine.open('Tcp', '::ffff:192.0.2.7', 50000, '10.0.0.1', 80));
  assert.equal(r.backendPort, 8080);
  assert.equal(r.rule.name, 'web');
  assert.equal(engine.flow(r.flowId)!.client.address, '192.0.2.7');
  assert.equal(engine.flow(r.flowId)!.state, 'ESTABLISHED');
  for (let i = 0; i < 6; i++) {
    clock.advance(4 * MIN);
    assert.equal(engine.activity(r.flowId, i % 2 ? 'toClient' : 'toBackend', 10), true);
    assert.deepEqual(advance(engine), []);
  }
  const info = engine.flow(r.flowId)!;
  assert.equal(info.bytesToBackend, 30);
  assert.equal(info.bytesToClient, 30);
  assert.equal(info.ageMs, 24 * MIN);
  assert.equal(info.idleMs, 0);
  assert.equal(info.msLeft, 5 * MIN);
  clock.advance(5 * MIN);
  const actions = advance(engine);
  assert.deepEqual(
    actions.map((a) => [a.flowId, a.action]),
    [[r.flowId, 'reset']],
  );
  assert.equal(engine.activity(r.flowId, 'toBackend', 1), false);
  assert.deepEqual(
    events.map((e) => e.type),
    ['created', 'expired'],
  );
});

test('connection API: a half-closed flow is dropped at idle, not reset (B5)', () => {
  const clock = new ManualClock(0);
  const engine = new FlowEngine({ clock, snapshot: snapshot([lbRule({ reset: true })]) });
  const r = opened(engine.open('Tcp', '192.0.2.7', 50000, '10.0.0.1', 80));
  assert.equal(engine.halfClose(r.flowId, 'toBackend'), true);
  assert.equal(engine.flow(r.flowId)!.state, 'CLOSE_WAIT');
  clock.advance(4 * MIN + 10);
  assert.deepEqual(
    advance(engine).map((a) => a.action),
    ['drop'],
  );
});

test('connection API: close removes the flow with its reason; both half-closes end in a short linger', () => {
  const clock = new ManualClock(0);
  const events: FlowEvent[] = [];
  const engine = new FlowEngine({ clock, snapshot: snapshot([lbRule()]), events: (e) => events.push(e) });
  const a = opened(engine.open('Tcp', '192.0.2.7', 50000, '10.0.0.1', 80));
  assert.equal(engine.close(a.flowId, 'backend-unreachable'), true);
  assert.equal(engine.flow(a.flowId), undefined);
  assert.equal(engine.close(a.flowId, 'rst'), false, 'a stale id is refused');
  const b = opened(engine.open('Tcp', '192.0.2.7', 50001, '10.0.0.1', 80));
  assert.notEqual(b.flowId, a.flowId);
  engine.halfClose(b.flowId, 'toBackend');
  engine.halfClose(b.flowId, 'toClient');
  assert.equal(engine.flow(b.flowId)!.state, 'TIME_WAIT');
  clock.advance(10_000);
  assert.deepEqual(advance(engine), []);
  assert.equal(engine.flowCount, 0);
  const reasons = events.flatMap((e) => (e.type === 'closed' ? [e.reason] : []));
  assert.deepEqual(reasons, ['backend-unreachable', 'fin']);
  assert.equal(engine.stats().closed.fin, 1);
});

test('connection API: refusals name their reason', () => {
  const clock = new ManualClock(0);
  const nat = pool('nat', ['10.2.0.1', '10.2.0.2'], ['None', 'Down']);
  const engine = new FlowEngine({
    clock,
    maxFlows: 1,
    snapshot: snapshot([lbRule()], [natRule({ pool: nat, portStart: 2200, backendPort: 22 })]),
  });
  assert.deepEqual(engine.open('Tcp', '192.0.2.7', 1, '10.0.0.1', 81), { ok: false, reason: 'no-rule' });
  assert.deepEqual(engine.open('Udp', '192.0.2.7', 1, '10.0.0.1', 80), { ok: false, reason: 'no-rule' });
  assert.deepEqual(engine.open('Tcp', '192.0.2.7', 1, '10.0.0.1', 2201), {
    ok: false,
    reason: 'member-down',
  });
  const first = engine.open('Tcp', '192.0.2.7', 1, '10.0.0.1', 2200);
  assert.ok(first.ok && first.backendAddress === '10.2.0.1' && first.backendPort === 22);
  assert.deepEqual(engine.open('Tcp', '192.0.2.7', 2, '10.0.0.1', 80), { ok: false, reason: 'capacity' });
  assert.equal(engine.stats().refused['no-rule'], 2);
});

test('inbound NAT port range: the i-th member gets frontend port start + i', () => {
  const clock = new ManualClock(0);
  const members = pool('vms', ['10.2.0.1', '10.2.0.2', '10.2.0.3']);
  const engine = new FlowEngine({
    clock,
    snapshot: snapshot([], [natRule({ pool: members, portStart: 50000, backendPort: 3389 })]),
  });
  for (let i = 0; i < 3; i++) {
    const r = opened(engine.open('Tcp', '192.0.2.7', 1000 + i, '10.0.0.1', 50000 + i));
    assert.equal(r.backendAddress, `10.2.0.${i + 1}`);
    assert.equal(r.backendPort, 3389);
  }
});

test('B8: a UDP flow keeps its own timeout, ignores the TCP idle timeout, and is never reset', () => {
  const clock = new ManualClock(0);
  const engine = new FlowEngine({
    clock,
    tickMs: 1,
    udpTimeoutMs: 10 * MIN,
    snapshot: snapshot([
      lbRule({ protocols: ['Tcp', 'Udp'], reset: true, idleMinutes: 4, frontendPort: 53, backendPort: 53 }),
    ]),
  });
  const key = new FlowKey().set(PROTO_UDP, '192.0.2.9', 5353, '10.0.0.1', 53);
  const first = engine.udp(key, 40);
  assert.equal(first.action, 'forward');
  assert.equal(first.created, true);
  const reply = new FlowKey().set(PROTO_UDP, first.member!.address, 53, '192.0.2.9', 5353);
  clock.advance(6 * MIN);
  assert.deepEqual(advance(engine), []);
  const back = engine.udp(reply, 100);
  assert.equal(back.action, 'forward');
  assert.equal(back.direction, 'toClient');
  clock.advance(10 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  const actions = advance(engine);
  assert.deepEqual(
    actions.map((a) => [a.protocol, a.action]),
    [['Udp', 'drop']],
  );
  // No tombstone: the next datagram simply starts a new flow.
  assert.equal(engine.tombstoneCount, 0);
  assert.equal(engine.udp(key, 1).created, true);
  // The connection API: same timeout, same rules.
  const conn = opened(engine.open('Udp', '192.0.2.9', 5354, '10.0.0.1', 53));
  clock.advance(9 * MIN);
  assert.deepEqual(advance(engine), []);
  assert.equal(engine.flow(conn.flowId)!.protocol, 'Udp');
});

test('distribution: SourceIP sends one client address to one member whatever its ports', () => {
  const clock = new ManualClock(0);
  const big = pool('big', ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5']);
  const engine = new FlowEngine({
    clock,
    snapshot: snapshot([
      lbRule({ name: 'sticky', pool: big, distribution: 'SourceIP', frontendPort: 80 }),
      lbRule({ name: 'spread', pool: big, distribution: 'Default', frontendPort: 81 }),
    ]),
  });
  const sticky = new Set<string>();
  const spread = new Set<string>();
  for (let p = 1; p <= 200; p++) {
    sticky.add(opened(engine.open('Tcp', '192.0.2.50', p, '10.0.0.1', 80)).backendAddress);
    spread.add(opened(engine.open('Tcp', '192.0.2.50', p, '10.0.0.1', 81)).backendAddress);
  }
  assert.equal(sticky.size, 1);
  assert.equal(spread.size, 5);
});

test('health: new flows go only to healthy members; established flows keep their member; AllProbedUp', () => {
  const clock = new ManualClock(0);
  const p = pool('web', ['10.1.0.1', '10.1.0.2']);
  const pr = probe('hp');
  const engine = new FlowEngine({ clock, snapshot: snapshot([lbRule({ pool: p, probe: pr })]) });
  const before = Array.from({ length: 50 }, (_, i) =>
    opened(engine.open('Tcp', '192.0.2.1', 1000 + i, '10.0.0.1', 80)),
  );
  const down = p.members[0]!;
  engine.setHealth(down.id, false, pr.id);
  for (const r of before)
    assert.equal(engine.flow(r.flowId)!.memberId, r.member.id, 'flow table first, hash second');
  assert.ok(engine.flowsOfMember(down.id).length > 0);
  for (let i = 0; i < 50; i++) {
    assert.equal(
      opened(engine.open('Tcp', '192.0.2.2', 1000 + i, '10.0.0.1', 80)).backendAddress,
      '10.1.0.2',
    );
  }
  engine.setHealth(p.members[1]!.id, false, pr.id);
  assert.deepEqual(engine.open('Tcp', '192.0.2.3', 1, '10.0.0.1', 80), { ok: false, reason: 'no-backend' });
  // adminState Up keeps a member in rotation whatever the probe says.
  engine.setAdminState(down.id, 'Up');
  assert.equal(opened(engine.open('Tcp', '192.0.2.3', 2, '10.0.0.1', 80)).backendAddress, '10.1.0.1');
  engine.setAdminState(down.id, undefined);

  const up = new FlowEngine({
    clock,
    snapshot: snapshot([lbRule({ pool: p, probe: probe('hp', 'AllProbedUp') })]),
  });
  up.setHealth(p.members[0]!.id, false, '/probe/hp');
  up.setHealth(p.members[1]!.id, false, '/probe/hp');
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++)
    seen.add(opened(up.open('Tcp', '192.0.2.4', i + 1, '10.0.0.1', 80)).backendAddress);
  assert.equal(seen.size, 2);
  // adminState Down: out of rotation even under AllProbedUp.
  up.setAdminState(p.members[0]!.id, 'Down');
  for (let i = 0; i < 20; i++) {
    assert.equal(opened(up.open('Tcp', '192.0.2.5', i + 1, '10.0.0.1', 80)).backendAddress, '10.1.0.2');
  }
});

test('terminate: ends a flow now with a reset or a drop (adminState Down, drain)', () => {
  const clock = new ManualClock(0);
  const engine = new FlowEngine({ clock, snapshot: snapshot([lbRule({ reset: false })]) });
  const r = opened(engine.open('Tcp', '192.0.2.1', 1, '10.0.0.1', 80));
  const got: string[] = [];
  assert.equal(
    engine.terminate(r.flowId, 'reset', (a) => got.push(`${a.flowId}:${a.action}`)),
    true,
  );
  assert.deepEqual(got, [`${r.flowId}:reset`]);
  assert.equal(engine.flowCount, 0);
  assert.equal(engine.terminate(r.flowId, 'reset'), false);
});

test('snapshot swap: flows of kept rules go on under new settings; removed rules are reported; new rules take effect', () => {
  const clock = new ManualClock(0);
  const web = lbRule({ name: 'web', frontendPort: 80, idleMinutes: 10, reset: true });
  const api = lbRule({ name: 'api', frontendPort: 443, backendPort: 8443 });
  const engine = new FlowEngine({ clock, tickMs: 1, snapshot: snapshot([web, api]) });
  const w = opened(engine.open('Tcp', '192.0.2.1', 1, '10.0.0.1', 80));
  const a = opened(engine.open('Tcp', '192.0.2.1', 2, '10.0.0.1', 443));
  clock.advance(MIN);
  const web2 = lbRule({ name: 'web', frontendPort: 80, idleMinutes: 4, reset: true });
  const extra = lbRule({ name: 'extra', frontendPort: 8000, backendPort: 9000 });
  engine.setSnapshot(snapshot([web2, extra]));
  assert.deepEqual(engine.flowsOfRemovedRules(), [a.flowId]);
  assert.equal(engine.flow(a.flowId)!.ruleRemoved, true);
  assert.equal(engine.flow(w.flowId)!.ruleRemoved, false);
  assert.deepEqual(engine.open('Tcp', '192.0.2.1', 3, '10.0.0.1', 443), { ok: false, reason: 'no-rule' });
  const x = opened(engine.open('Tcp', '192.0.2.1', 4, '10.0.0.1', 8000));
  assert.equal(x.backendPort, 9000);
  // The removed rule's flow keeps its old rule's settings (4 minutes, drop) until it ends; the
  // kept rule's flow keeps the 10 minutes in force at its last packet, since it sent nothing since.
  clock.advance(3 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((x) => [x.flowId, x.action]),
    [[a.flowId, 'drop']],
  );
  assert.equal(engine.flow(w.flowId)!.timeoutMs, 10 * MIN);
  clock.advance(MIN);
  assert.deepEqual(
    advance(engine).map((y) => [y.flowId, y.action]),
    [[x.flowId, 'drop']],
  );
  clock.advance(5 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((x) => [x.flowId, x.action]),
    [[w.flowId, 'reset']],
  );
});

test('changed idle timeout, connection API: a lower timeout reaches a flow with its next bytes, not before', () => {
  const clock = new ManualClock(0);
  const web = (idleMinutes: number) => lbRule({ name: 'web', frontendPort: 80, idleMinutes, reset: true });
  const engine = new FlowEngine({ clock, tickMs: 1, indexReplies: false, snapshot: snapshot([web(10)]) });
  const quiet = opened(engine.open('Tcp', '192.0.2.1', 1, '10.0.0.1', 80));
  const busy = opened(engine.open('Tcp', '192.0.2.1', 2, '10.0.0.1', 80));
  clock.advance(2 * MIN);
  engine.setSnapshot(snapshot([web(4)]));
  // Nothing moves at the swap: both flows still count 10 minutes from their last bytes.
  assert.equal(engine.flow(quiet.flowId)!.msLeft, 8 * MIN);
  assert.equal(engine.flow(busy.flowId)!.msLeft, 8 * MIN);
  clock.advance(3 * MIN);
  // Bytes towards the client count too; from them on, 4 minutes.
  assert.equal(engine.activity(busy.flowId, 'toClient', 1), true);
  assert.equal(engine.flow(busy.flowId)!.timeoutMs, 4 * MIN);
  assert.equal(engine.flow(busy.flowId)!.msLeft, 4 * MIN);
  assert.equal(engine.flow(quiet.flowId)!.timeoutMs, 10 * MIN);
  clock.advance(4 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((x) => [x.flowId, x.action]),
    [[busy.flowId, 'reset']],
  );
  // The quiet flow still had the old 10 minutes: it ends 10 minutes after its creation.
  clock.advance(MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((x) => [x.flowId, x.action]),
    [[quiet.flowId, 'reset']],
  );
});

test('changed idle timeout, connection API: a higher timeout reaches a flow with its next bytes, not before', () => {
  const clock = new ManualClock(0);
  const web = (idleMinutes: number) => lbRule({ name: 'web', frontendPort: 80, idleMinutes, reset: false });
  const engine = new FlowEngine({ clock, tickMs: 1, indexReplies: false, snapshot: snapshot([web(4)]) });
  const quiet = opened(engine.open('Tcp', '192.0.2.1', 1, '10.0.0.1', 80));
  const busy = opened(engine.open('Tcp', '192.0.2.1', 2, '10.0.0.1', 80));
  clock.advance(MIN);
  engine.setSnapshot(snapshot([web(30)]));
  clock.advance(2 * MIN);
  assert.equal(engine.activity(busy.flowId, 'toBackend', 5), true);
  assert.equal(engine.flow(busy.flowId)!.msLeft, 30 * MIN);
  // The quiet flow is dropped on its old schedule: 4 minutes after its last bytes.
  clock.advance(MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((x) => [x.flowId, x.action]),
    [[quiet.flowId, 'drop']],
  );
  clock.advance(29 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((x) => [x.flowId, x.action]),
    [[busy.flowId, 'drop']],
  );
});

test('HA ports: any port on the frontend matches, the backend port is the packet port', () => {
  const clock = new ManualClock(0);
  const engine = new FlowEngine({
    clock,
    snapshot: snapshot([lbRule({ haPorts: true, protocols: ['Tcp', 'Udp'], address: '10.0.5.5' })]),
  });
  const t = engine.tcp(new FlowKey().set(PROTO_TCP, '10.9.0.1', 3333, '10.0.5.5', 5432), {
    flags: TCP_SYN,
    seq: 1,
    ack: 0,
    len: 0,
    window: 1000,
  });
  assert.equal(t.created, true);
  assert.equal(t.backendPort, 5432);
  assert.equal(t.frontendPort, 5432);
  const u = engine.udp(new FlowKey().set(PROTO_UDP, '10.9.0.1', 3333, '10.0.5.5', 6000), 10);
  assert.equal(u.backendPort, 6000);
});

test('floating IP: the backend answers from the frontend address, and that reply tuple finds the flow', () => {
  const clock = new ManualClock(0);
  const engine = new FlowEngine({
    clock,
    snapshot: snapshot([lbRule({ floatingIP: true, frontendPort: 80 })]),
  });
  const syn = engine.tcp(new FlowKey().set(PROTO_TCP, '192.0.2.1', 4000, '10.0.0.1', 80), {
    flags: TCP_SYN,
    seq: 100,
    ack: 0,
    len: 0,
    window: 1000,
  });
  const id = syn.flowId;
  assert.equal(syn.backendPort, 8080);
  const reply = engine.tcp(new FlowKey().set(PROTO_TCP, '10.0.0.1', 8080, '192.0.2.1', 4000), {
    flags: TCP_SYN | TCP_ACK,
    seq: 900,
    ack: 101,
    len: 0,
    window: 1000,
  });
  assert.equal(reply.flowId, id);
  assert.equal(reply.direction, 'toClient');
});

test('IPv6 flows are keyed and listed like IPv4 ones', () => {
  const clock = new ManualClock(0);
  const engine = new FlowEngine({
    clock,
    snapshot: snapshot([
      lbRule({ address: '2001:db8::1', pool: pool('v6', ['2001:db8:1::10', '2001:db8:1::11']) }),
    ]),
  });
  const r = opened(engine.open('Tcp', '2001:db8:ff::7', 4444, '2001:DB8:0::1', 80));
  const info = engine.flow(r.flowId)!;
  assert.equal(info.client.address, '2001:db8:ff::7');
  assert.equal(info.frontend.address, '2001:db8::1');
  const replyKey = new FlowKey().set(PROTO_TCP, r.backendAddress, 8080, '2001:db8:ff::7', 4444);
  assert.deepEqual(engine.lookup(replyKey), { flowId: r.flowId, direction: 'toClient', tombstone: false });
  assert.equal(engine.flows().length, 1);
});
