import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { PoolGossip, type GossipFlow, type GossipHandlers } from '../../src/pool/gossip.js';
import { sleep } from '../helpers/net.js';

/**
 * The pool's datagrams between instances (src/pool/gossip.ts), on loopback: three instances at
 * 127.0.88.1-3 on one port, as instances of a pool at their router IDs.
 */

const PORT = 39182;
const WAIT = 300;
const log = pino({ level: 'silent' });

interface Node {
  gossip: PoolGossip;
  leaving: string[];
  asked: { from: string; flows: readonly GossipFlow[] }[];
  settled: [number, boolean][];
}

function node(address: string, peers: () => string[], carry: (f: GossipFlow) => boolean = () => false): Node {
  const n: Node = { gossip: undefined as unknown as PoolGossip, leaving: [], asked: [], settled: [] };
  const handlers: GossipHandlers = {
    leaving: (from) => n.leaving.push(from),
    carries: (from, flows) => {
      n.asked.push({ from, flows });
      return flows.flatMap((f, i) => (carry(f) ? [i] : []));
    },
    settled: (id, carried) => n.settled.push([id, carried]),
  };
  n.gossip = new PoolGossip({
    instance: address,
    port: PORT,
    bind: address,
    peers,
    handlers,
    waitMs: WAIT,
    log,
  });
  return n;
}

const flow = (srcPort: number, idleMs = 240_000): GossipFlow => ({
  protocol: 6,
  src: '198.18.1.2',
  srcPort,
  dst: '198.18.100.10',
  dstPort: 7,
  idleMs,
});

async function until(what: string, check: () => boolean, ms = 2000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(5);
  }
}

const ALL = ['127.0.88.1', '127.0.88.2', '127.0.88.3'];

test('leaving reaches every other instance; a question is settled as soon as one carries the flow, the rest once all answered', async () => {
  const peers = (): string[] => ALL;
  const a = node(ALL[0]!, peers);
  const b = node(ALL[1]!, peers, (f) => f.srcPort === 40001);
  const c = node(ALL[2]!, peers);
  await Promise.all([a, b, c].map((n) => n.gossip.start()));
  try {
    a.gossip.leaving();
    await until('b and c hear a leave', () => b.leaving.length > 0 && c.leaving.length > 0);
    assert.equal(b.leaving[0], ALL[0]);
    assert.equal(a.leaving.length, 0, 'not told to itself');
    a.gossip.ask(7, flow(40001));
    a.gossip.ask(8, flow(40002, 123_456));
    await until('both settled', () => a.settled.length === 2);
    assert.deepEqual(a.settled, [
      [7, true],
      [8, false],
    ]);
    // Both flows went out in one question, with what identifies them and how long they were idle.
    assert.equal(b.asked.length, 1);
    assert.deepEqual(b.asked[0]!.flows, [flow(40001), flow(40002, 123_456)]);
    assert.equal(b.asked[0]!.from, ALL[0]);
  } finally {
    for (const n of [a, b, c]) n.gossip.close();
  }
});

test('with no other instance a question is settled at once as carried by none', async () => {
  const a = node(ALL[0]!, () => [ALL[0]!]);
  await a.gossip.start();
  try {
    a.gossip.ask(1, flow(40001));
    await until('settled', () => a.settled.length === 1);
    assert.deepEqual(a.settled, [[1, false]]);
  } finally {
    a.gossip.close();
  }
});

test('a question unanswered is asked again halfway through the wait; datagrams from outside the pool are not read', async () => {
  const a = node(ALL[0]!, () => ALL.slice(0, 2));
  const b = node(
    ALL[1]!,
    () => ALL.slice(0, 2),
    () => true,
  );
  const stranger = node(
    ALL[2]!,
    () => ALL,
    () => true,
  );
  await a.gossip.start();
  await stranger.gossip.start();
  try {
    // b is not listening yet: the first question is lost.
    a.gossip.ask(3, flow(40003));
    await sleep(WAIT / 4);
    await b.gossip.start();
    await until('settled by the second question', () => a.settled.length === 1, WAIT * 2);
    assert.deepEqual(a.settled, [[3, true]]);
    // The stranger's words count for nothing with a, which does not know it as a peer.
    stranger.gossip.leaving();
    await sleep(50);
    assert.deepEqual(a.leaving, []);
    assert.ok(a.gossip.counts.ignored >= 1);
  } finally {
    for (const n of [a, b, stranger]) n.gossip.close();
  }
});
