/**
 * Flow engine benchmark: key representation, lookups+updates with a million live flows,
 * memory per flow, and the cost of a mass expiry. Run with `npm run bench:core`
 * (node --expose-gc). `--flows N` changes the table size (default 1,000,000).
 * Prints a Markdown table for docs/benchmarks.md.
 */
import { performance } from 'node:perf_hooks';
import { ManualClock } from '../../src/core/clock.js';
import { FlowEngine } from '../../src/core/engine.js';
import { FlowKey, KEY_WORDS, PROTO_TCP, hashKey, parseIpv4 } from '../../src/core/flow-key.js';
import { FlowTable } from '../../src/core/flow-table.js';
import { TCP_ACK, TCP_SYN, type TcpSegment } from '../../src/core/tcp-state.js';
import { lbRule, pool, snapshot } from '../../test/unit/core/snapshot-helpers.js';

const args = process.argv.slice(2);
const flowsArg = args.indexOf('--flows');
const N = flowsArg >= 0 ? Number(args[flowsArg + 1]) : 1_000_000;
const OPS = Number(process.env.SLUICE_BENCH_OPS ?? 4_000_000);

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error('run with node --expose-gc (npm run bench:core does)');
  process.exit(2);
}

function memory(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const rows: [string, string][] = [];
function report(name: string, value: string): void {
  rows.push([name, value]);
  console.error(`${name}: ${value}`);
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits });

const CLIENT_BASE = parseIpv4('100.64.0.0');
const FRONTEND = parseIpv4('10.0.0.1');
const clientOf = (i: number) => CLIENT_BASE + Math.floor(i / 60_000);
const portOf = (i: number) => 1024 + (i % 60_000);

/** A xorshift stream, so every run touches flows in the same order. */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

// ---- 1. key representation -----------------------------------------------------------------

function benchKeys(n: number): void {
  const lookups = 2_000_000;
  const stringKey = (i: number) =>
    String.fromCharCode(
      6,
      clientOf(i) >>> 16,
      clientOf(i) & 0xffff,
      portOf(i),
      FRONTEND >>> 16,
      FRONTEND & 0xffff,
      80,
    );
  const textKey = (i: number) => {
    const c = clientOf(i);
    return `6 ${c >>> 24}.${(c >>> 16) & 255}.${(c >>> 8) & 255}.${c & 255}:${portOf(i)} 10.0.0.1:80`;
  };
  const bigKey = (i: number) =>
    (BigInt(clientOf(i)) << 56n) | (BigInt(portOf(i)) << 40n) | (BigInt(FRONTEND) << 8n) | 6n;

  const variants: [string, () => { insert: number; lookup: number; bytes: number }][] = [
    ['Map<string> (7 UTF-16 units)', () => mapBench(stringKey)],
    ['Map<string> (text "ip:port")', () => mapBench(textKey)],
    ['Map<bigint>', () => mapBench(bigKey)],
    ['typed-array index (FlowTable, whole flow record)', () => tableBench()],
  ];

  function mapBench<K>(make: (i: number) => K) {
    const before = memory();
    const m = new Map<K, number>();
    let t = performance.now();
    for (let i = 0; i < n; i++) m.set(make(i), i);
    const insert = performance.now() - t;
    const bytes = (memory() - before) / n;
    const r = rng(7);
    let hits = 0;
    t = performance.now();
    for (let j = 0; j < lookups; j++) if (m.get(make(Math.floor(r() * n))) !== undefined) hits++;
    const lookup = lookups / ((performance.now() - t) / 1000);
    if (hits !== lookups) throw new Error('lookup missed');
    m.clear();
    return { insert, lookup, bytes };
  }

  function tableBench() {
    const before = memory();
    const table = new FlowTable(n, null);
    const k = new FlowKey();
    let t = performance.now();
    for (let i = 0; i < n; i++) {
      const s = table.alloc();
      k.setV4(PROTO_TCP, clientOf(i), portOf(i), FRONTEND, 80);
      table.keys.set(k.words, s * KEY_WORDS);
      table.setState(s, 1);
      table.insert(s);
    }
    const insert = performance.now() - t;
    const bytes = (memory() - before) / n;
    const r = rng(7);
    let hits = 0;
    t = performance.now();
    for (let j = 0; j < lookups; j++) {
      const i = Math.floor(r() * n);
      k.setV4(PROTO_TCP, clientOf(i), portOf(i), FRONTEND, 80);
      if (table.find(k.words, 0, hashKey(k.words, 0)) !== -1) hits++;
    }
    const lookup = lookups / ((performance.now() - t) / 1000);
    if (hits !== lookups) throw new Error('lookup missed');
    return { insert, lookup, bytes };
  }

  for (const [name, run] of variants) {
    const r = run();
    report(
      `key: ${name}`,
      `insert ${fmt(n)} in ${fmt(r.insert)} ms; ${fmt(r.lookup / 1e6, 2)} M lookups/s; ${fmt(r.bytes, 1)} B/entry`,
    );
  }
}

/** Opens flows 0..n-1 with a full handshake; returns the member index each one got. */
function establish(
  engine: FlowEngine,
  clock: ManualClock,
  n: number,
  members: readonly string[],
): Uint8Array {
  const memberOf = new Uint8Array(n);
  const memberIp = members.map(parseIpv4);
  const k = new FlowKey();
  const seg: TcpSegment = { flags: TCP_SYN, seq: 1000, ack: 0, len: 0, window: 64240, wscale: 7 };
  for (let i = 0; i < n; i++) {
    if ((i & 0xffff) === 0) clock.advance(1);
    k.setV4(PROTO_TCP, clientOf(i), portOf(i), FRONTEND, 80);
    seg.flags = TCP_SYN;
    seg.seq = 1000;
    seg.ack = 0;
    const v = engine.tcp(k, seg);
    if (!v.created) throw new Error(`flow ${i} not created: ${v.reason}`);
    const m = members.indexOf(v.member!.address);
    memberOf[i] = m;
    k.setV4(PROTO_TCP, memberIp[m]!, 8080, clientOf(i), portOf(i));
    seg.flags = TCP_SYN | TCP_ACK;
    seg.seq = 5000;
    seg.ack = 1001;
    engine.tcp(k, seg);
    k.setV4(PROTO_TCP, clientOf(i), portOf(i), FRONTEND, 80);
    seg.flags = TCP_ACK;
    seg.seq = 1001;
    seg.ack = 5001;
    engine.tcp(k, seg);
  }
  return memberOf;
}

// ---- 2. engine with N live flows -----------------------------------------------------------

function benchEngine(n: number): void {
  const clock = new ManualClock(0);
  const members = ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4'];
  const before = memory();
  const engine = new FlowEngine({
    clock,
    maxFlows: n,
    maxTombstones: 0,
    snapshot: snapshot([lbRule({ reset: true, idleMinutes: 30, pool: pool('be', members) })]),
  });
  const t0 = performance.now();
  const memberOf = establish(engine, clock, n, members);
  const memberIp = members.map(parseIpv4);
  const setup = performance.now() - t0;
  const bytes = (memory() - before) / n;
  report(
    `engine: set up ${fmt(n)} flows (3-way handshake each)`,
    `${fmt(setup)} ms (${fmt((3 * n) / setup / 1000, 2)} M segments/s)`,
  );
  report('engine: memory per live flow (heap + typed arrays, index included)', `${fmt(bytes, 1)} B`);
  report('engine: flow table arrays per flow', `${fmt(engine.tableBytes() / n, 1)} B`);

  benchSegments(engine, clock, n, memberOf, memberIp, 'random');
  // Real traffic comes in bursts per flow: 8 segments of one flow, then the next flow.
  benchSegments(engine, clock, n, memberOf, memberIp, 'bursts of 8');
  benchActivity(engine, new FlowKey(), n);
}

/** Lookups + updates: pure ACKs, alternately from client and backend. */
function benchSegments(
  engine: FlowEngine,
  clock: ManualClock,
  n: number,
  memberOf: Uint8Array,
  memberIp: number[],
  pattern: 'random' | 'bursts of 8',
): void {
  const k = new FlowKey();
  const seg: TcpSegment = { flags: TCP_ACK, seq: 0, ack: 0, len: 0, window: 502, wscale: -1 };
  const r = rng(11);
  const t = performance.now();
  let untrusted = 0;
  let i = 0;
  for (let j = 0; j < OPS; j++) {
    if ((j & 0xfff) === 0) clock.advance(1);
    if (pattern === 'random' || (j & 7) === 0) i = Math.floor(r() * n);
    if (j & 1) {
      k.setV4(PROTO_TCP, memberIp[memberOf[i]!]!, 8080, clientOf(i), portOf(i));
      seg.seq = 5001;
      seg.ack = 1001;
    } else {
      k.setV4(PROTO_TCP, clientOf(i), portOf(i), FRONTEND, 80);
      seg.seq = 1001;
      seg.ack = 5001;
    }
    const v = engine.tcp(k, seg);
    if (!v.trusted || v.action !== 'forward') untrusted++;
  }
  const el = performance.now() - t;
  if (untrusted !== 0) throw new Error(`${untrusted} segments not forwarded as trusted`);
  report(
    `engine: packet API lookups+updates, ${fmt(n)} live flows, ${pattern}`,
    `${fmt(OPS / el / 1000, 2)} M segments/s (${fmt((el * 1e6) / OPS)} ns each)`,
  );
}

/** In its own function so that V8 optimises the loop on its own. */
function benchActivity(engine: FlowEngine, k: FlowKey, n: number): void {
  // Ids of every flow, visited in random order: the proxy plane's pattern with many sockets.
  const ids = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    k.setV4(PROTO_TCP, clientOf(i), portOf(i), FRONTEND, 80);
    ids[i] = engine.lookup(k)!.flowId;
  }
  const order = new Uint32Array(OPS);
  const r = rng(5);
  for (let j = 0; j < OPS; j++) order[j] = Math.floor(r() * n);
  const t = performance.now();
  for (let j = 0; j < OPS; j++) engine.activity(ids[order[j]!]!, j & 1 ? 'toClient' : 'toBackend', 100);
  const el2 = performance.now() - t;
  report(
    `engine: connection API activity() by flow id, ${fmt(n)} flows, random order`,
    `${fmt(OPS / el2 / 1000, 2)} M calls/s`,
  );
}

// ---- 3. mass expiry ---------------------------------------------------------------------

function benchExpiry(n: number): void {
  const clock = new ManualClock(0);
  const engine = new FlowEngine({
    clock,
    maxFlows: n,
    snapshot: snapshot([lbRule({ reset: true, idleMinutes: 4 })]),
  });
  establish(engine, clock, n, ['10.1.0.1', '10.1.0.2', '10.1.0.3']);
  clock.advance(4 * 60_000 + 10);
  let resets = 0;
  let seqSum = 0;
  const t = performance.now();
  engine.advance((a) => {
    if (a.action === 'reset') resets++;
    seqSum += a.toClient.seq;
  });
  const el = performance.now() - t;
  report(
    `expiry: ${fmt(n)} flows sharing one deadline, actions emitted`,
    `${fmt(el, 1)} ms (${fmt((el * 1e6) / n)} ns per flow)`,
  );
  if (resets !== n) throw new Error(`expected ${n} actions, got ${resets} (${seqSum})`);
}

const started = performance.now();
console.error(`Node ${process.version}, ${N} flows`);
benchKeys(N);
benchEngine(N);
benchExpiry(100_000);
console.log('| measurement | result |');
console.log('|---|---|');
for (const [a, b] of rows) console.log(`| ${a} | ${b} |`);
console.error(`total ${fmt((performance.now() - started) / 1000, 1)} s`);
