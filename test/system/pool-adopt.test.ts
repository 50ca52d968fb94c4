import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  Lab,
  PoolClient,
  poolTest,
  poolUnavailable,
  sleep,
  type ConnResult,
  type LabJson,
} from '../helpers/pool-lab.js';

/**
 * Flows through changes of the pool (docs/scale-out.md, "Keeping flows across a change of
 * instances"): 300 long-lived TCP connections, each exchanging a line every 100 ms, through a lab
 * of three instances (and a spare) behind resilient ECMP, while an instance is killed, a fourth
 * is added, and every instance is restarted in turn. A connection breaks at an error (a reset),
 * its end, or a line not echoed within 2 s. The figures printed are those of docs/scale-out.md.
 */

const FLOWS = 300;
const lab = new Lab();
let s: LabJson;
let client: PoolClient | undefined;
/** Connections broken so far, by id. */
const broken = new Map<number, ConnResult>();

before(async () => {
  if (poolUnavailable() !== undefined) return;
  // Buckets move to a new instance at once (idle timer 0): adding one moves flows to it.
  s = lab.up([
    '--instances',
    '3',
    '--spares',
    '1',
    '--backends',
    '2',
    '--time-scale',
    '10',
    '--ecmp-idle-timer',
    '0',
  ]);
  client = new PoolClient(s.client.namespace);
  const opened = (await client.command(
    { cmd: 'open', host: s.frontend, port: s.ports.echo, count: FLOWS },
    'opened',
    60_000,
  )) as { results: ConnResult[] };
  assert.deepEqual(
    opened.results.filter((r) => !r.ok),
    [],
    'every connection opened and echoed',
  );
  await client.command({ cmd: 'run', intervalMs: 100, timeoutMs: 2000 }, 'running');
  await sleep(1000);
});

after(async () => {
  if (poolUnavailable() !== undefined) return;
  await client?.stop();
  lab.down();
});

/** The connections that broke since the last call. */
async function newlyBroken(): Promise<ConnResult[]> {
  const r = (await client!.command({ cmd: 'report' }, 'report')) as { results: ConnResult[] };
  const fresh = r.results.filter((c) => !c.ok && !broken.has(c.id));
  for (const c of fresh) broken.set(c.id, c);
  return fresh;
}

/** Which instance carries each connection, by client port. */
function carriers(): Map<number, string> {
  const out = new Map<number, string>();
  for (const i of s.instances)
    for (const port of lab.flowPorts(i.namespace, s.ports.echo)) out.set(port, i.name);
  return out;
}

const adopted = (name: string): number =>
  lab.metric(lab.namespaceOf(name), 'sluice_pool_flows_adopted_total');
const held = (name: string): number => lab.metric(lab.namespaceOf(name), 'sluice_pool_strays_held_total');

/** Lets the connections run `ms` (a round not echoed within 2 s shows by then). */
const settle = (ms = 3000): Promise<void> => sleep(ms);

poolTest(
  'kill -9 of one of three instances: no flow of the others breaks, and its own go on on the survivors',
  async (t) => {
    assert.deepEqual(await newlyBroken(), [], 'nothing broken before');
    const carrier = carriers();
    const byPort = (r: ConnResult): string => carrier.get(r.port) ?? '?';
    const own = [...carrier.values()].filter((n) => n === 'i2').length;
    assert.ok(own > 0, 'i2 carries some of the flows');
    const heldBefore = held('i1') + held('i3');
    const killed = lab.change('stop', 'i2', true);
    await settle(4000);
    const gone = await newlyBroken();
    const report = (await client!.command({ cmd: 'report' }, 'report')) as { results: ConnResult[] };
    const survivorsOwn = gone.filter((c) => byPort(c) !== 'i2');
    assert.deepEqual(survivorsOwn, [], 'no flow of the surviving instances broke');
    const lost = gone.filter((c) => byPort(c) === 'i2').length;
    const kept = own - lost;
    const adoptedNow = adopted('i1') + adopted('i3');
    const rtt = (n: string): number =>
      Math.max(...report.results.filter((c) => byPort(c) === n && c.ok).map((c) => c.maxRttMs ?? 0));
    t.diagnostic(
      `kill -9 of i2 (${killed.stoppedMs} ms to reap): ${kept} of its ${own} flows go on on i1 and i3 (${lost} broke); ` +
        `${FLOWS - own} flows of i1 and i3: none broke; adopted by the survivors: ${adoptedNow}; ` +
        `held strays (segments that came before the news): ${held('i1') + held('i3') - heldBefore}; ` +
        `slowest round trip of i2's flows ${rtt('i2')} ms, of the others' ${Math.max(rtt('i1'), rtt('i3'))} ms`,
    );
    assert.ok(kept / own >= 0.99, `${kept} of ${own} of the killed instance's flows went on, less than 99%`);
    assert.ok(adoptedNow >= kept, `the survivors adopted ${adoptedNow} flows, ${kept} went on`);
  },
);

poolTest('the killed instance started again, then a fourth added: no flow breaks', async (t) => {
  const back = lab.change('start', 'i2');
  await settle();
  assert.deepEqual(await newlyBroken(), [], 'no flow broke when i2 came back');
  const adoptedBack = adopted('i2');
  const added = lab.change('start', 'i4');
  await settle();
  assert.deepEqual(await newlyBroken(), [], 'no flow broke when i4 was added');
  const adoptedAdded = adopted('i4');
  t.diagnostic(
    `i2 started again (in the route after ${back.startedMs} ms): adopted ${adoptedBack} flows the router gave back; ` +
      `i4 added (${added.startedMs} ms): adopted ${adoptedAdded}; no flow broke`,
  );
  assert.ok(adoptedBack > 0, 'flows moved back to i2 and went on there');
  assert.ok(adoptedAdded > 0, 'flows moved to i4 and went on there');
});

poolTest(
  'a graceful stop of the fourth, then a rolling restart of the three others: no flow breaks',
  async (t) => {
    const stopped = lab.change('stop', 'i4');
    await settle(2000);
    assert.deepEqual(await newlyBroken(), [], 'no flow broke when i4 left');
    const lines: string[] = [`i4 stopped gracefully in ${stopped.stoppedMs} ms`];
    for (const name of ['i1', 'i2', 'i3']) {
      const others = ['i1', 'i2', 'i3'].filter((n) => n !== name);
      const heldBefore = others.reduce((n, o) => n + held(o), 0);
      const address = s.instances.find((i) => i.name === name)!.address;
      const heard = (o: string): number =>
        lab
          .instanceLog(o)
          .filter((l) => l.msg === 'pool: an instance says it is leaving' && l.instance === address).length;
      const heardBefore = others.map(heard);
      const r = lab.change('restart', name);
      await settle(2000);
      assert.deepEqual(await newlyBroken(), [], `no flow broke when ${name} restarted`);
      const heldDuring = others.reduce((n, o) => n + held(o), 0) - heldBefore;
      lines.push(
        `${name}: stopped in ${r.stoppedMs} ms, in the route again after ${r.startedMs} ms, adopted ${adopted(name)} flows back; strays held on the others ${heldDuring}`,
      );
      // The others heard it leave before the router moved its flows.
      assert.ok(
        others.every((o, k) => heard(o) > heardBefore[k]!),
        `${others.join(' and ')} heard ${name} leave`,
      );
    }
    t.diagnostic(lines.join('; '));
    const halted = (await client!.command({ cmd: 'halt', timeoutMs: 2000 }, 'halted', 10_000)) as {
      results: ConnResult[];
    };
    const total = halted.results.filter((c) => !c.ok).length;
    const rounds = halted.results.reduce((n, c) => n + (c.rounds ?? 0), 0);
    t.diagnostic(
      `in all: ${total} of ${FLOWS} connections broke over ${rounds} round trips (${broken.size} counted phase by phase)`,
    );
    assert.ok(total <= 0.01 * FLOWS, `${total} connections broke in all`);
  },
);
