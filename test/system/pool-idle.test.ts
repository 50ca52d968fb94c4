import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  Lab,
  PoolClient,
  nsExec,
  poolTest,
  poolUnavailable,
  sleep,
  type ConnResult,
  type LabJson,
} from '../helpers/pool-lab.js';

/**
 * Idle semantics through a pool whose flows moved (docs/scale-out.md): three instances behind
 * resilient ECMP, then a fourth added, which takes some flows from the others and adopts them,
 * leaving copies behind. 4 minutes at --time-scale 60 are 4 real seconds. nftables counters in
 * the client's and the backends' namespaces count every RST that reaches them.
 *
 * - reset at idle (port 7) reaches both ends exactly once: the copies left behind ask the pool and
 *   retire silently, the instance that carries the flow resets it;
 * - silent drop (port 8) stays silent, at idle and for a later segment;
 * - B6 outside a change window: a reset flow whose idle RST the client never got (a firewall
 *   drops it) gets a RST for its next segment, from the tombstone, and again after the
 *   tombstone is gone (a stray, answered once the grace for late news of a change has passed).
 */

const SCALE = 60;
const IDLE_MS = (4 * 60_000) / SCALE;
/** Tombstones last 15 minutes. */
const TOMBSTONE_MS = (15 * 60_000) / SCALE;
const RESET = 30;
const DROP = 30;
const LATE = 5;

const lab = new Lab();
let s: LabJson;
let client: PoolClient | undefined;
let resetConns: ConnResult[] = [];
let dropConns: ConnResult[] = [];
let lateConns: ConnResult[] = [];
let idleSince = 0;

async function open(port: number, count: number): Promise<ConnResult[]> {
  const r = (await client!.command({ cmd: 'open', host: s.frontend, port, count }, 'opened', 30_000)) as {
    results: ConnResult[];
  };
  assert.deepEqual(
    r.results.filter((c) => !c.ok),
    [],
    `every connection to port ${port} opened and echoed`,
  );
  return r.results;
}

const ports = (list: readonly ConnResult[]): string => list.map((c) => c.port).join(', ');

/** Counters of RSTs in namespace `ns`: `from` is the RSTs' source address, `field` the port that names the connection. */
function countRsts(ns: string, from: string, field: 'dport' | 'sport', extra = ''): void {
  const sets = [
    ['reset', resetConns],
    ['drop', dropConns],
    ['late', lateConns],
  ] as const;
  const lines = [
    'table inet sltest {',
    ...sets.map(([n, list]) => `  set ports_${n} { type inet_service; elements = { ${ports(list)} } }`),
    ...sets.map(([n]) => `  counter rst_${n} { }`),
    '  chain input {',
    '    type filter hook input priority -10; policy accept;',
    ...sets.map(
      ([n]) => `    ip saddr ${from} tcp ${field} @ports_${n} tcp flags & rst != 0 counter name rst_${n}`,
    ),
    extra,
    '  }',
    '}',
    '',
  ];
  execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: lines.join('\n') });
}

function counters(ns: string): Record<string, number> {
  const out = JSON.parse(nsExec(ns, 'nft', '-j', 'list', 'counters')) as {
    nftables: { counter?: { name: string; table: string; packets: number } }[];
  };
  const r: Record<string, number> = {};
  for (const x of out.nftables) if (x.counter?.table === 'sltest') r[x.counter.name] = x.counter.packets;
  return r;
}

/** RSTs counted in the client's namespace and in all the backends', by group. */
function rsts(): { client: Record<string, number>; backends: Record<string, number> } {
  const backends: Record<string, number> = {};
  for (const b of s.backends)
    for (const [k, v] of Object.entries(counters(b.namespace))) backends[k] = (backends[k] ?? 0) + v;
  return { client: counters(s.client.namespace), backends };
}

async function status(): Promise<Map<number, ConnResult>> {
  const r = (await client!.command({ cmd: 'status' }, 'status')) as { results: ConnResult[] };
  return new Map(r.results.map((c) => [c.id, c]));
}

before(async () => {
  if (poolUnavailable() !== undefined) return;
  s = lab.up([
    '--instances',
    '3',
    '--spares',
    '1',
    '--backends',
    '2',
    '--time-scale',
    String(SCALE),
    '--ecmp-idle-timer',
    '0',
  ]);
  client = new PoolClient(s.client.namespace);
  resetConns = await open(s.ports.echo, RESET);
  dropConns = await open(s.ports.echoDrop, DROP);
  lateConns = await open(s.ports.echo, LATE);
  // The client's firewall drops the idle RSTs of the late connections, as a lost RST (B6).
  countRsts(
    s.client.namespace,
    s.frontend,
    'dport',
    `    ip saddr ${s.frontend} tcp dport @ports_late tcp flags & rst != 0 drop`,
  );
  for (const b of s.backends) countRsts(b.namespace, s.client.address, 'sport');
  // A fourth instance takes a share of the buckets at once: the flows in them move to it.
  lab.change('start', 'i4');
  for (let round = 0; round < 3; round++) {
    const r = (await client.command({ cmd: 'echo', timeoutMs: 3000 }, 'echoed')) as { results: ConnResult[] };
    assert.deepEqual(
      r.results.filter((c) => !c.ok),
      [],
      `round ${round}: every connection echoes`,
    );
    await sleep(200);
  }
  idleSince = Date.now();
});

after(async () => {
  if (poolUnavailable() !== undefined) return;
  await client?.stop();
  lab.down();
});

const metric = (name: string, metricName: string, labels = ''): number =>
  lab.metric(lab.namespaceOf(name), metricName, labels);

poolTest(
  'reset at idle reaches both ends exactly once, from the instance that carries the flow: the copies left behind retire silently',
  async (t) => {
    const adopted = metric('i4', 'sluice_pool_flows_adopted_total');
    assert.ok(adopted > 0, 'flows moved to i4 and were adopted');
    const copies = ['i1', 'i2', 'i3'].reduce(
      (n, i) =>
        n +
        lab.flowPorts(lab.namespaceOf(i), s.ports.echo).length +
        lab.flowPorts(lab.namespaceOf(i), s.ports.echoDrop).length,
      0,
    );
    assert.equal(
      copies,
      RESET + DROP + LATE,
      'each flow is still on its first instance: a copy, for those moved to i4',
    );
    // Every reset connection fails once its idle timeout (and a question to the pool) has passed.
    const deadline = Date.now() + IDLE_MS + 8000;
    let st = await status();
    while (resetConns.some((c) => st.get(c.id)!.ok) && Date.now() < deadline) {
      await sleep(200);
      st = await status();
    }
    const afterMs = Date.now() - idleSince;
    assert.deepEqual(
      resetConns.filter((c) => st.get(c.id)!.error !== 'ECONNRESET').map((c) => c.port),
      [],
      'every connection of the reset rule was reset',
    );
    // Copies left behind expire before the flow they copy: any RST from them came by now.
    await sleep(1000);
    const n = rsts();
    const moved = ['i1', 'i2', 'i3'].reduce(
      (k, i) => k + metric(i, 'sluice_flow_closed_total', 'reason="moved"'),
      0,
    );
    const asked = ['i1', 'i2', 'i3', 'i4'].reduce(
      (k, i) => k + metric(i, 'sluice_pool_idle_questions_total'),
      0,
    );
    t.diagnostic(
      `${adopted} of ${RESET + DROP + LATE} flows moved to i4; at idle (${afterMs} ms after the last packet): ` +
        `RSTs at the clients ${n.client.rst_reset}, at the backends ${n.backends.rst_reset} for ${RESET} reset flows; ` +
        `${asked} idle flows asked about, ${moved} copies retired silently as carried elsewhere`,
    );
    assert.equal(n.client.rst_reset, RESET, 'one RST to the client of each reset flow');
    assert.equal(n.backends.rst_reset, RESET, 'one RST to the backend of each reset flow');
    assert.equal(moved, adopted, 'each copy left behind retired silently');
  },
);

poolTest(
  'silent drop stays silent through the pool: nothing at idle, a later segment is dropped',
  async (t) => {
    const st = await status();
    assert.deepEqual(
      dropConns.filter((c) => !st.get(c.id)!.ok).map((c) => c.port),
      [],
      'no connection of the drop rule saw a RST or an end',
    );
    const ids = dropConns.slice(0, 5).map((c) => c.id);
    const r = (await client!.command({ cmd: 'echo', ids, timeoutMs: 2000 }, 'echoed')) as {
      results: ConnResult[];
    };
    assert.deepEqual(
      r.results.map((c) => c.error),
      ids.map(() => 'no echo within 2000 ms'),
      'a line after the idle timeout goes nowhere',
    );
    const n = rsts();
    t.diagnostic(
      `drop rule: RSTs at the clients ${n.client.rst_drop}, at the backends ${n.backends.rst_drop}`,
    );
    assert.equal(n.client.rst_drop, 0);
    assert.equal(n.backends.rst_drop, 0);
  },
);

poolTest(
  'B6 outside a change window: a late segment of a reset flow whose idle RST was lost gets a RST, from its tombstone and after it',
  async (t) => {
    const n0 = rsts();
    assert.equal(
      n0.client.rst_late,
      LATE,
      'the idle RSTs reached the client namespace (and were dropped there)',
    );
    assert.equal(n0.backends.rst_late, LATE, 'the backends got theirs');
    const st = await status();
    assert.ok(
      lateConns.every((c) => st.get(c.id)!.ok),
      'the late connections still think they are open',
    );
    nsExec(s.client.namespace, 'nft', 'flush', 'chain', 'inet', 'sltest', 'input');
    const [first, ...rest] = lateConns;
    const fromTombstone = (await client!.command(
      { cmd: 'echo', ids: [first!.id], timeoutMs: 2000 },
      'echoed',
    )) as { results: ConnResult[] };
    assert.equal(fromTombstone.results[0]!.error, 'ECONNRESET', 'the tombstone answers with a RST');
    // Past the tombstone's life, the segment is a stray: answered once the grace has passed.
    const wait = idleSince + IDLE_MS + TOMBSTONE_MS + 2000 - Date.now();
    if (wait > 0) await sleep(wait);
    const heldBefore = ['i1', 'i2', 'i3', 'i4'].reduce(
      (k, i) => k + metric(i, 'sluice_pool_strays_held_total'),
      0,
    );
    const strays = (await client!.command(
      { cmd: 'echo', ids: rest.map((c) => c.id), timeoutMs: 8000 },
      'echoed',
    )) as { results: ConnResult[] };
    const after = strays.results.map((c) => c.afterMs ?? 0);
    const heldAfter = ['i1', 'i2', 'i3', 'i4'].reduce(
      (k, i) => k + metric(i, 'sluice_pool_strays_held_total'),
      0,
    );
    t.diagnostic(
      `B6: the tombstone's RST at once; ${TOMBSTONE_MS / 1000} s later, no tombstone: ${rest.length} late segments held ${heldAfter - heldBefore} times, then reset ${Math.min(...after)}-${Math.max(...after)} ms after the write (the tombstone's: ${fromTombstone.results[0]!.afterMs} ms)`,
    );
    assert.deepEqual(
      strays.results.map((c) => c.error),
      rest.map(() => 'ECONNRESET'),
      'every late segment ends in a RST',
    );
    assert.ok(heldAfter - heldBefore >= rest.length, 'each was first held for the grace');
    assert.ok(Math.min(...after) >= 1000, 'no RST before the grace (1 s) passed');
  },
);
