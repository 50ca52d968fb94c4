import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateDocument } from '../../../src/config/index.js';
import { parseIpv4 } from '../../../src/core/flow-key.js';
import { compareMoves, groupArgs, movedFraction, tuples } from '../../../src/lab/ecmp-moves.js';
import { bgpRoutes } from '../../../src/lab/ecmp-sync.js';
import { frrArgs, frrConfigs } from '../../../src/lab/frr.js';
import { returnPath } from '../../../src/lab/network.js';
import {
  labDocument,
  labNameProblem,
  namespacesOf,
  planLab,
  routerSettleS,
  type LabOptions,
} from '../../../src/lab/plan.js';

const OPTIONS: LabOptions = {
  name: 'lab',
  instances: 3,
  backends: 2,
  baseDir: '/run/sluice-lab',
  ecmp: 'resilient',
  bfdMs: 100,
  timeScale: 1,
  etcd: true,
  etcdState: false,
};

const inBenchmarkRange = (a: string): boolean => {
  const n = parseIpv4(a) >>> 0;
  return n >>> 17 === parseIpv4('198.18.0.0') >>> 17;
};

test('the lab plan: every address in 198.18.0.0/15, every namespace named after the lab', () => {
  const plan = planLab(OPTIONS);
  const addresses = [
    plan.frontend,
    plan.client.address,
    plan.client.gateway,
    plan.etcd!.address,
    ...plan.instances.flatMap((i) => [i.address, i.gateway]),
    ...plan.backends.map((b) => b.address),
  ];
  for (const a of addresses) assert.ok(inBenchmarkRange(a), a);
  assert.equal(new Set(addresses).size, addresses.length, 'no address twice');
  const names = namespacesOf(plan);
  assert.equal(names.length, 1 + 1 + 1 + 3 + 2);
  for (const n of names) assert.ok(n.startsWith('sllab-lab-'), n);
  assert.equal(planLab({ ...OPTIONS, etcd: false }).etcd, undefined);
  assert.equal(labNameProblem('pt1234'), undefined);
  assert.match(String(labNameProblem('Bad Name')), /lab name/);
  assert.match(String(labNameProblem('a-very-long-name')), /lab name/);
});

test('the lab document is a valid load balancer: echo on 7 (reset) and 8 (drop) and HTTP on 80 over every backend, probed', () => {
  const plan = planLab(OPTIONS);
  const r = validateDocument(labDocument(plan));
  assert.ok(r.valid && r.snapshot, JSON.stringify(r.errors));
  const lb = r.snapshot.loadBalancers[0]!;
  assert.deepEqual(
    lb.loadBalancingRules.map((x) => [
      x.name,
      x.frontend.address,
      x.frontendPort,
      x.pool.members.length,
      x.probe?.name,
    ]),
    [
      ['echo', '198.18.100.10', 7, 2, 'http'],
      ['http', '198.18.100.10', 80, 2, 'http'],
      ['echo-drop', '198.18.100.10', 8, 2, 'http'],
    ],
  );
  assert.deepEqual(
    lb.loadBalancingRules.map((x) => [x.backendPort, x.enableTcpReset]),
    [
      [7, true],
      [80, true],
      [7, false],
    ],
  );
});

test('spare instances are planned like the others and marked; the router settles after its unbalanced timer', () => {
  const plan = planLab({ ...OPTIONS, spares: 2 });
  assert.deepEqual(
    plan.instances.map((i) => [i.name, i.address, i.spare]),
    [
      ['i1', '198.18.11.2', false],
      ['i2', '198.18.12.2', false],
      ['i3', '198.18.13.2', false],
      ['i4', '198.18.14.2', true],
      ['i5', '198.18.15.2', true],
    ],
  );
  assert.equal(namespacesOf(plan).length, 1 + 1 + 1 + 5 + 2);
  assert.equal(routerSettleS(OPTIONS), 60, 'a busy bucket moves at the unbalanced timer');
  assert.equal(routerSettleS({ ...OPTIONS, ecmpIdleTimerS: 0 }), 0, 'every bucket moves at once');
  assert.equal(routerSettleS({ ...OPTIONS, ecmpUnbalancedTimerS: 20 }), 20);
  assert.equal(routerSettleS({ ...OPTIONS, ecmp: 'hash-threshold' }), 0);
});

test("the router's FRR configuration: any lab instance, every path back (add-path), ECMP, BFD", () => {
  const plan = planLab(OPTIONS);
  const c = frrConfigs(plan);
  assert.match(c.bgpd, /bgp listen range 198\.18\.0\.0\/15 peer-group sluice/);
  assert.match(c.bgpd, /neighbor sluice addpath-tx-all-paths/);
  assert.match(c.bgpd, /maximum-paths 64/);
  assert.match(c.bgpd, /neighbor sluice bfd profile sluice/);
  assert.match(c.bfdd, /receive-interval 100/);
  assert.doesNotMatch(frrConfigs(planLab({ ...OPTIONS, bfdMs: 0 })).bgpd, /bfd/);
  const args = frrArgs(plan, 'bgpd');
  assert.deepEqual(args.slice(0, 4), ['-u', 'frr', '-g', 'frr']);
  assert.ok(args.includes('/run/sluice-lab/lab/router/bgpd.conf'));
});

test("the backends' return path marks each connection with the instance it came in from", () => {
  const text = returnPath(planLab(OPTIONS));
  assert.match(text, /ct mark set iifname map \{ "i1" : 1, "i2" : 2, "i3" : 3 \}/);
  assert.match(text, /meta mark set ct mark/);
});

test('the resilient mirror reads FRR routes as the kernel lists them', () => {
  const routes = bgpRoutes(
    [
      { dst: '198.18.100.10', nhid: 30 },
      { dst: '198.18.100.11', gateway: '198.18.11.2', dev: 'i1' },
      { dst: '198.18.0.0/24', nhid: 30 },
      {
        dst: '198.18.100.12',
        nexthops: [
          { gateway: '198.18.12.2', dev: 'i2' },
          { gateway: '198.18.11.2', dev: 'i1' },
        ],
      },
    ],
    [
      { id: 30, group: [{ id: 31 }, { id: 32 }] },
      { id: 31, gateway: '198.18.12.2', dev: 'i2' },
      { id: 32, gateway: '198.18.11.2', dev: 'i1' },
    ],
  );
  assert.deepEqual(Object.fromEntries(routes), {
    '198.18.100.10': ['198.18.11.2@i1', '198.18.12.2@i2'],
    '198.18.100.11': ['198.18.11.2@i1'],
    '198.18.100.12': ['198.18.11.2@i1', '198.18.12.2@i2'],
  });
});

test('measuring ECMP moves: the same flows every run, and moves counted per survivor', () => {
  assert.deepEqual(tuples(5, '198.18.1'), tuples(5, '198.18.1'));
  const m = compareMoves(['a', 'b', 'c', 'a', 'b', 'c'], ['a', 'a', 'c', 'c', 'a', 'c']);
  assert.deepEqual(
    { s: m.survivorFlows, moved: m.survivorMoved, orphaned: m.orphaned },
    { s: 4, moved: 1, orphaned: 2 },
  );
  assert.deepEqual(m.movedTo, { a: 2, c: 1 });
  assert.equal(movedFraction(['a', 'b'], ['a', 'c']), 0.5);
  assert.deepEqual(groupArgs([1, 2], { kind: 'hash-threshold' }), ['group', '1/2']);
  assert.deepEqual(
    groupArgs([1, 2], { kind: 'resilient', buckets: 8, idleTimerS: 1, unbalancedTimerS: 0 }).slice(2),
    ['type', 'resilient', 'buckets', '8', 'idle_timer', '1', 'unbalanced_timer', '0'],
  );
});
