import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/core/clock.js';
import { FlowEngine, type PoolQuestion } from '../../../src/core/engine.js';
import { carriesRather } from '../../../src/core/engine-pool.js';
import type { FlowEvent } from '../../../src/core/events.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../../src/core/tcp-state.js';
import { lbRule, pool, probe, snapshot } from './snapshot-helpers.js';
import { TcpConversation, advance } from './tcp-driver.js';

/**
 * The engine as one instance of a pool (engine-pool.ts): the adoption window after a change,
 * B3/B6 outside it, the grace for late news of a change, and asking the pool before an idle end.
 */

const MIN = 60_000;
const GRACE = 1000;
const ASK = 200;
const T0 = 1_000_000;

interface Setup {
  clock: ManualClock;
  engine: FlowEngine;
  events: FlowEvent[];
  asked: PoolQuestion[];
}

function setup(
  opts: { reset?: boolean; pool?: boolean; settleMs?: number; clock?: ManualClock; rules?: 'two' } = {},
): Setup {
  const clock = opts.clock ?? new ManualClock(T0);
  const events: FlowEvent[] = [];
  const asked: PoolQuestion[] = [];
  const reset = opts.reset ?? true;
  const rules =
    opts.rules === 'two'
      ? [lbRule({ reset }), lbRule({ name: 'other', address: '10.0.0.2', reset })]
      : [lbRule({ reset })];
  const engine = new FlowEngine({
    clock,
    tickMs: 1,
    snapshot: snapshot(rules),
    events: (e) => events.push(e),
    ...(opts.pool === false
      ? {}
      : {
          pool: {
            graceMs: GRACE,
            askMs: ASK,
            ...(opts.settleMs !== undefined ? { settleMs: opts.settleMs } : {}),
            ask: (q) => asked.push(q),
          },
        }),
  });
  return { clock, engine, events, asked };
}

/** A flow established on `engine`, with data both ways. */
function established(engine: FlowEngine, port = 40000): TcpConversation {
  const c = new TcpConversation(engine, '192.0.2.10', port, '10.0.0.1', 80, 1000, 5000);
  c.handshake();
  c.clientSends(100);
  c.backendSends(200);
  return c;
}

/**
 * The same flow as `c`, as seen by another engine: the client's next segment and its sequence
 * numbers, so the other engine receives it mid-flow.
 */
function moved(c: TcpConversation, to: FlowEngine): TcpConversation {
  const m = new TcpConversation(to, c.client, c.clientPort, c.frontend, c.frontendPort);
  m.clientNext = c.clientNext;
  m.backendNext = c.backendNext;
  m.clientRcv = c.clientRcv;
  m.backendRcv = c.backendRcv;
  return m;
}

test('a single instance (no pool) answers a mid-flow segment of no flow with a RST at once (B6), or drops it (B3)', () => {
  const reset = setup({ pool: false });
  reset.engine.poolChanged(T0);
  const v = new TcpConversation(reset.engine).fromClient({ flags: TCP_ACK, len: 10, ack: 777 });
  assert.equal(v.action, 'reset');
  assert.equal(v.rstSeq, 777);
  assert.equal(reset.engine.flowCount, 0);
  const drop = setup({ pool: false, reset: false });
  assert.equal(new TcpConversation(drop.engine).fromClient({ flags: TCP_ACK, len: 10 }).action, 'drop');
  assert.equal(reset.engine.inPool, false);
});

test('in a change window a mid-flow segment is adopted: the member Maglev picks on the other instance, ESTABLISHED, idle timer from that packet', () => {
  const clock = new ManualClock(T0);
  const a = setup({ clock });
  const b = setup({ clock });
  // 40 flows on A; A is lost; B learns of the change and receives them mid-flow.
  const flows = Array.from({ length: 40 }, (_, i) => established(a.engine, 40000 + i));
  clock.advance(30_000);
  b.engine.poolChanged(clock.now());
  clock.advance(50);
  for (const c of flows) {
    const m = moved(c, b.engine);
    const v = m.clientSends(10, false);
    assert.equal(v.action, 'forward', `flow ${c.clientPort}`);
    assert.equal(v.created, true);
    assert.equal(v.trusted, true);
    assert.equal(v.member, c.backendAddress, 'the same member as on A');
    assert.equal(v.backendPort, 8080);
    const f = b.engine.flow(v.flowId)!;
    assert.equal(f.state, 'ESTABLISHED');
    assert.equal(f.adopted, true);
    assert.equal(f.idleMs, 0);
    // The backend's answer finds the adopted flow by its reply tuple.
    assert.equal(m.fromBackend({ flags: TCP_ACK, len: 10 }).flowId, v.flowId);
  }
  assert.equal(b.engine.flowCount, 40);
  assert.equal(b.engine.stats().adopted, 40);
  assert.equal(b.engine.stats().syns, 0, 'an adopted flow is no SYN');
  const created = b.events.filter((e) => e.type === 'created');
  assert.equal(created.length, 40);
  assert.ok(created.every((e) => e.type === 'created' && e.flow.adopted === true));
});

test('an adopted flow lives its idle timeout from its last packet here, and is reset at idle with the sequence numbers of what it carried', () => {
  const clock = new ManualClock(T0);
  const a = setup({ clock });
  const b = setup({ clock });
  const c = established(a.engine);
  b.engine.poolChanged(clock.now());
  clock.advance(10);
  const m = moved(c, b.engine);
  m.clientSends(100); // client end 1201, acknowledged by the backend
  m.backendSends(50); // backend end 5251, acknowledged by the client
  const last = clock.now();
  // Well past the change: no pool question (its last packet came after the change and its news).
  clock.advance(5 * GRACE);
  m.clientSends(1);
  clock.advance(4 * MIN - 1);
  assert.deepEqual(advance(b.engine), []);
  clock.advance(1);
  const actions = advance(b.engine);
  assert.equal(actions.length, 1);
  assert.equal(actions[0]!.action, 'reset');
  assert.deepEqual(actions[0]!.toClient, { seq: 5251, ack: 1202 });
  assert.deepEqual(actions[0]!.toBackend, { seq: 1202, ack: 5251 });
  assert.equal(b.asked.length, 0);
  assert.ok(last > T0);
});

test('the window lasts one idle timeout (plus the settle time) after the change, per frontend; a change of every frontend opens all', () => {
  const { engine, clock } = setup({ rules: 'two' });
  engine.poolChanged(clock.now(), '10.0.0.1');
  clock.advance(4 * MIN);
  const edge = new TcpConversation(engine, '192.0.2.10', 40001).fromClient({ flags: TCP_ACK, len: 1 });
  assert.equal(edge.action, 'forward', 'adopted at exactly one idle timeout');
  const other = new TcpConversation(engine, '192.0.2.10', 40002, '10.0.0.2', 80);
  assert.equal(other.fromClient({ flags: TCP_ACK, len: 1 }).action, 'drop', 'another frontend: no window');
  clock.advance(1);
  const late = new TcpConversation(engine, '192.0.2.10', 40003).fromClient({ flags: TCP_ACK, len: 1 });
  assert.equal(late.action, 'drop', 'after the window: B6 (held first)');
  engine.poolChanged(clock.now());
  assert.equal(other.fromClient({ flags: TCP_ACK, len: 1 }).action, 'forward');

  const settled = setup({ settleMs: 60_000 });
  settled.engine.poolChanged(settled.clock.now());
  settled.clock.advance(4 * MIN + 60_000);
  const v = new TcpConversation(settled.engine).fromClient({ flags: TCP_ACK, len: 1 });
  assert.equal(v.action, 'forward', 'within the idle timeout plus the settle time');
});

test('outside a window, a stray of a reset rule is dropped silently first and answered with a RST (B6) once still a stray after the grace; a drop rule drops it (B3)', () => {
  const { engine, clock } = setup();
  const c = new TcpConversation(engine);
  const seg = { flags: TCP_ACK, len: 10, ack: 777 };
  const first = c.fromClient(seg);
  assert.deepEqual([first.action, first.reason], ['drop', 'no-flow']);
  clock.advance(GRACE / 2);
  assert.equal(c.fromClient(seg).action, 'drop', 'a retransmission within the grace');
  clock.advance(GRACE / 2);
  const due = c.fromClient(seg);
  assert.equal(due.action, 'reset');
  assert.equal(due.rstSeq, 777);
  assert.equal(engine.stats().strayHeld, 2);
  assert.equal(engine.stats().noFlowResets, 1);
  assert.equal(engine.flowCount, 0);
  // A RST is never answered, nor adopted.
  assert.equal(c.fromClient({ flags: TCP_RST | TCP_ACK }).action, 'drop');

  const drop = setup({ reset: false });
  const d = new TcpConversation(drop.engine);
  assert.equal(d.fromClient(seg).action, 'drop');
  drop.clock.advance(GRACE);
  assert.equal(d.fromClient(seg).action, 'drop');
  assert.equal(drop.engine.stats().strayHeld, 0);
  assert.equal(drop.engine.stats().noFlowDrops, 2);
});

test('a stray held before the news of a change is adopted at its retransmission once the window opens', () => {
  const { engine, clock } = setup();
  const c = new TcpConversation(engine);
  assert.equal(c.fromClient({ flags: TCP_ACK, len: 10 }).action, 'drop');
  clock.advance(150);
  engine.poolChanged(clock.now());
  clock.advance(100);
  const v = c.fromClient({ flags: TCP_ACK, len: 10 });
  assert.equal(v.action, 'forward');
  assert.equal(v.created, true);
});

test('in a window, a tombstone still answers (B6): a flow that expired here is not adopted back', () => {
  const { engine, clock } = setup();
  const c = established(engine);
  clock.advance(4 * MIN);
  assert.equal(advance(engine)[0]!.action, 'reset');
  engine.poolChanged(clock.now());
  const late = c.clientSends(10, false);
  assert.deepEqual([late.action, late.reason], ['reset', 'expired']);
  assert.equal(engine.flowCount, 0);
});

test('never adopted: a segment for a rule that no longer exists, a segment without ACK, a RST; a SYN starts a flow as ever', () => {
  const { engine, clock } = setup();
  const c = established(engine);
  engine.poolChanged(clock.now());
  engine.setSnapshot(snapshot([lbRule({ name: 'moved', address: '10.0.0.9' })]));
  const other = setup({ clock });
  other.engine.setSnapshot(snapshot([lbRule({ name: 'moved', address: '10.0.0.9' })]));
  other.engine.poolChanged(clock.now());
  const m = moved(c, other.engine);
  assert.deepEqual(
    [m.clientSends(10, false).action, m.fromClient({ flags: TCP_ACK }).reason],
    ['drop', 'no-rule'],
  );
  const { engine: e2, clock: k2 } = setup();
  e2.poolChanged(k2.now());
  const bare = new TcpConversation(e2, '192.0.2.10', 40005);
  assert.notEqual(bare.fromClient({ flags: TCP_FIN, len: 0 }).action, 'forward', 'no ACK: not mid-flow');
  assert.equal(bare.fromClient({ flags: TCP_RST | TCP_ACK }).action, 'drop');
  assert.equal(e2.flowCount, 0);
  const syn = new TcpConversation(e2, '192.0.2.10', 40006).fromClient({ flags: TCP_SYN });
  assert.equal(syn.created, true);
  assert.equal(e2.flow(syn.flowId)!.state, 'SYN_SENT');
  assert.equal(e2.flow(syn.flowId)!.adopted, undefined);
});

test('a flow that may have moved is not reset at idle before the pool is asked: carried elsewhere, it is retired silently', () => {
  const { engine, clock, asked, events } = setup();
  const c = established(engine);
  // The pool changes just after the flow's last packet here: the router may have moved it.
  clock.advance(20);
  engine.poolChanged(clock.now());
  clock.advance(4 * MIN);
  assert.deepEqual(advance(engine), [], 'no RST while the pool is asked');
  assert.equal(asked.length, 1);
  assert.equal(asked[0]!.flowId, c.flowId);
  assert.equal(asked[0]!.key.toString(), 'tcp 192.0.2.10:40000 > 10.0.0.1:80');
  assert.ok(asked[0]!.idleMs >= 4 * MIN);
  assert.equal(engine.flow(c.flowId)!.state, 'ESTABLISHED');
  const actions: string[] = [];
  assert.equal(
    engine.settleAsk(c.flowId, true, (a) => actions.push(a.action)),
    true,
  );
  assert.deepEqual(actions, []);
  assert.equal(engine.flowCount, 0);
  assert.equal(engine.tombstoneCount, 0, 'no tombstone: a later packet here may be adopted again');
  const closed = events.find((e) => e.type === 'closed');
  assert.ok(closed?.type === 'closed' && closed.reason === 'moved');
  assert.equal(engine.stats().closed.moved, 1);
  assert.equal(engine.settleAsk(c.flowId, false), false, 'answered once');
});

test('carried by nobody (every answer no, or no answer within the wait), it ends as its timeout says: one RST each way', () => {
  const { engine, clock, asked } = setup();
  const c = established(engine);
  engine.poolChanged(clock.now());
  clock.advance(4 * MIN);
  advance(engine);
  const actions: string[] = [];
  assert.equal(
    engine.settleAsk(asked[0]!.flowId, false, (a) => actions.push(a.action)),
    true,
  );
  assert.deepEqual(actions, ['reset']);
  assert.equal(engine.tombstoneCount, 1);
  assert.equal(c.clientSends(1, false).action, 'reset', 'B6 from the tombstone');

  const quiet = setup();
  established(quiet.engine);
  quiet.engine.poolChanged(quiet.clock.now());
  quiet.clock.advance(4 * MIN);
  assert.deepEqual(advance(quiet.engine), []);
  quiet.clock.advance(ASK - 1);
  assert.deepEqual(advance(quiet.engine), []);
  quiet.clock.advance(1);
  assert.deepEqual(
    advance(quiet.engine).map((a) => a.action),
    ['reset'],
    'no answer within the wait',
  );
  assert.equal(quiet.engine.flowCount, 0);
});

test('a packet while the pool is asked keeps the flow here; a late answer changes nothing', () => {
  const { engine, clock, asked } = setup();
  const c = established(engine);
  engine.poolChanged(clock.now());
  clock.advance(4 * MIN);
  advance(engine);
  assert.equal(asked.length, 1);
  clock.advance(50);
  assert.equal(c.clientSends(5).action, 'forward');
  assert.equal(engine.settleAsk(c.flowId, true), false);
  assert.equal(engine.flowCount, 1);
  clock.advance(4 * MIN - 1);
  assert.deepEqual(advance(engine), []);
  // The pool changed long before this packet: the next idle end needs no question.
  clock.advance(1);
  assert.deepEqual(
    advance(engine).map((a) => a.action),
    ['reset'],
  );
  assert.equal(asked.length, 1);
});

test('a flow whose packets came after the change and its news is reset at idle at once, and so is every flow of a stable pool', () => {
  const { engine, clock, asked } = setup();
  engine.poolChanged(clock.now());
  clock.advance(2 * GRACE);
  established(engine);
  clock.advance(4 * MIN);
  assert.deepEqual(
    advance(engine).map((a) => a.action),
    ['reset'],
  );
  const stable = setup();
  established(stable.engine);
  stable.clock.advance(4 * MIN);
  assert.deepEqual(
    advance(stable.engine).map((a) => a.action),
    ['reset'],
  );
  assert.equal(asked.length + stable.asked.length, 0);
});

test('a silently dropped flow that may have moved is asked about too, and never reset', () => {
  const { engine, clock, asked } = setup({ reset: false });
  const c = established(engine);
  engine.poolChanged(clock.now());
  clock.advance(4 * MIN);
  assert.deepEqual(advance(engine), []);
  clock.advance(ASK);
  const actions = advance(engine);
  assert.equal(asked.length, 1);
  assert.deepEqual(
    actions.map((a) => a.action),
    ['drop'],
  );
  assert.equal(c.clientSends(1, false).action, 'drop');
});

test('which copy carries a flow: the one with the more recent packet; ties go to one side only', () => {
  assert.equal(carriesRather(10, 20, false), true);
  assert.equal(carriesRather(20, 10, true), false);
  assert.equal(carriesRather(10, 10, true), true);
  assert.equal(carriesRather(10, 10, false), false);
  const { engine, clock } = setup();
  const c = established(engine);
  clock.advance(1000);
  assert.equal(engine.carries(c.origKey(), 2000, false), true);
  assert.equal(engine.carries(c.origKey(), 500, true), false);
  assert.equal(engine.carries(c.replyKey(), 2000, true), false, 'asked by the original tuple only');
  clock.advance(4 * MIN);
  advance(engine);
  assert.equal(engine.carries(c.origKey(), 10 * MIN, true), false, 'a tombstone carries nothing');
});

test('two instances: the copy left behind asks, the adopter says it carries the flow; at idle both ends get one RST, from the adopter', () => {
  const clock = new ManualClock(T0);
  const rsts: string[] = [];
  const a = setup({ clock });
  const b = setup({ clock });
  const c = established(a.engine);
  // The router moves the flow from A to B (another instance came into the pool).
  clock.advance(1000);
  a.engine.poolChanged(clock.now());
  b.engine.poolChanged(clock.now());
  clock.advance(100);
  const m = moved(c, b.engine);
  for (let i = 0; i < 10; i++) {
    m.clientSends(10);
    m.backendSends(10);
    clock.advance(100);
  }
  // Both copies go idle; A's (older) first, and it asks.
  const answer = (from: Setup, to: Setup, winsTie: boolean): void => {
    for (const q of from.asked.splice(0)) {
      const carried = to.engine.carries(q.key, q.idleMs, winsTie);
      from.engine.settleAsk(q.flowId, carried, (x) =>
        rsts.push(`${x.action} from ${from === a ? 'A' : 'B'}`),
      );
    }
  };
  for (let i = 0; i < 60 && (a.engine.flowCount > 0 || b.engine.flowCount > 0); i++) {
    clock.advance(10_000);
    for (const [x, y, tie] of [
      [a, b, false],
      [b, a, true],
    ] as const) {
      x.engine.advance((e) => rsts.push(`${e.action} from ${x === a ? 'A' : 'B'}`));
      answer(x, y, tie);
    }
  }
  assert.equal(a.engine.flowCount + b.engine.flowCount, 0);
  assert.deepEqual(rsts, ['reset from B'], 'one reset, by the instance that carried the flow last');
  assert.equal(a.engine.stats().closed.moved, 1);
});

test('the wait for an answer runs from the question, even when the clock is moved far at once', () => {
  const { engine, clock, asked } = setup();
  const c = established(engine);
  engine.poolChanged(clock.now());
  clock.advance(10 * MIN);
  assert.deepEqual(advance(engine), []);
  assert.equal(asked.length, 1);
  const f = engine.flow(c.flowId)!;
  assert.equal(f.msLeft, ASK);
  clock.advance(ASK);
  assert.deepEqual(
    advance(engine).map((a) => a.action),
    ['reset'],
  );
});

test('healthKnown: an instance of a pool waits for every probed member to have a result', () => {
  const p = probe('tcp');
  const rule = lbRule({ probe: p, pool: pool('be', ['10.1.0.1', '10.1.0.2']) });
  const engine = new FlowEngine({
    clock: new ManualClock(0),
    snapshot: snapshot([rule]),
    initialHealth: 'down',
  });
  assert.equal(engine.healthKnown(rule), false);
  engine.setHealth(rule.pool.members[0]!.id, true, p.id);
  assert.equal(engine.canServe(rule), true);
  assert.equal(engine.healthKnown(rule), false, 'one member still unprobed');
  engine.setHealth(rule.pool.members[1]!.id, false, p.id);
  assert.equal(engine.healthKnown(rule), true);
  assert.equal(engine.healthKnown(lbRule()), true, 'no probe: nothing to wait for');
});

test('a flow that comes back with its sequence numbers moved on is tracked again in a window, and only then', () => {
  const jump = (c: TcpConversation): void => {
    // 100 MB sent and acknowledged elsewhere, beyond any window this record knows.
    c.clientNext = (c.clientNext + 100_000_000) >>> 0;
    c.backendRcv = c.clientNext;
    c.backendNext = (c.backendNext + 50_000_000) >>> 0;
    c.clientRcv = c.backendNext;
  };
  const stable = setup();
  const a = established(stable.engine);
  jump(a);
  assert.equal(a.clientSends(10, false).trusted, false, 'outside a window: untrusted, as ever');
  assert.equal(stable.engine.stats().resynced, 0);

  const { engine, clock } = setup();
  const c = established(engine);
  clock.advance(60_000);
  engine.poolChanged(clock.now());
  jump(c);
  const v = c.clientSends(10);
  assert.equal(v.trusted, true);
  assert.equal(v.flowId, c.flowId, 'the same flow, its member kept');
  assert.equal(engine.stats().resynced, 1);
  assert.equal(engine.flow(c.flowId)!.idleMs, 0, 'its idle timer starts again');
  assert.equal(engine.flow(c.flowId)!.adopted, true);
  assert.equal(c.backendSends(10).trusted, true, 'the backend side follows');
});
